"""The evaluate model against the real cold start (issue 21 item 4): predicted vs measured, per variant and link.

For each link profile of the lazy sandbox node, ``nydus-top evaluate``'s ``predicted_start_s``
(stargz policy: the start waits for the prefetch) of each variant's list, from the starts
``nydus-top record`` recorded of the workload (the source image, local: no fetch in their times),
beside the cold start ``bench/coldstart.py`` measures for the same variant on the node:

* ``esgz``: no list (everything on demand); ``optimize`` and ``nydus-top``: their lists;
* ``full``: the whole image, held until downloaded and unpacked (no timeout);
* ``floor``: nothing fetched.

Printed per link: variant, predicted, measured (median, min-max), error % and whether the variants
rank the same (every two whose measured spreads do not overlap); target (issue 21): every error at
most 25 %, the same ranking. The model's constants are printed with it: measured (the runtime's
fixed cost from the floor, each file's gzip size, the unpack rate, the link's rate by a range GET)
or fitted on the *other* link profiles (pull costs, each on-demand fetch's cost, the request
size), so no row is predicted from its own measurement. ``--save FILE`` keeps the measurements
(runs, lists, samples) as JSON as they are taken; ``--load FILE`` evaluates them again without the
node (for changing the model).

Usage: ``.venv/bin/python bench/predict_check.py [--quick] [--rounds 3] [--link 100mbit,20ms ...]
[--save FILE | --load FILE]`` (root, except with --load). ``--quick``: one round at one link of
the variants that need no conversion (full, floor).
"""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import benchkit

ROOT = benchkit.ROOT
sys.path.insert(1, str(ROOT / "bench"))

LINKS = ("100mbit,0ms", "100mbit,20ms", "100mbit,50ms")
ERROR_TARGET = 0.25
QUICK_VARIANTS = ("full", "floor")
PREDICTED = ("full", "esgz", "optimize", "nydus-top", "floor")  # the variants the model predicts
RECORDED = 3  # starts recorded (the first makes the nydus-top list)
WORKLOAD = "python"  # bench/coldstart.py's workload the model is checked on


# ---------------------------------------------------------------- measuring on the node


def measure(links: list[str], rounds: int, variants: list[str], containerd: str,
            save: Path | None = None) -> dict[str, Any]:
    """Everything the comparison needs, measured on a lazy node: the recorded runs, each variant's
    list, the image's files and layer, the unpack rate and the cold starts per link."""
    import coldstart

    from nydus_top.runs.runset import read_runs
    from sandbox import images
    from sandbox.node import SandboxNode

    work = Path(tempfile.mkdtemp(prefix="nydus-top-predict-"))
    nodes = {link: SandboxNode(work / "node", containerd, lazy=True, link=link) for link in links}
    samples: dict[str, dict[str, list[list[float]]]] = {link: {} for link in links}
    try:
        first = nodes[links[0]]
        first.up()
        registry = first.registry
        workload = coldstart.WORKLOADS[WORKLOAD]
        if set(variants) <= set(QUICK_VARIANTS):  # no conversion: the source image, one recorded start
            images.import_image(first, coldstart.source_archive(workload))
            lists = {WORKLOAD: coldstart.record_lists(first, work / WORKLOAD, workload, 1)}
            tagged, _ = coldstart.prepare(first, work, [workload], variants, 1)
        else:  # prepare records RECORDED starts (the first one's list is nydus-top's) before it tags the
            # image; it records several only for a consensus variant, which is built but not timed here
            tagged, lists = coldstart.prepare(first, work, [workload], [*variants, "consensus"], RECORDED)
        refs = {variant: ref for (_, variant), ref in tagged.items() if variant in variants}
        got_runs = read_runs(work / WORKLOAD / "persist", workload.source)
        runs, warnings = list(got_runs[0]), list(got_runs[1])
        if warnings or not runs:
            raise RuntimeError(f"recorded runs: {warnings or 'none'}")
        data: dict[str, Any] = {
            "runs": [{"name": r.name, "entries": [[e.path, e.size, e.elapsed_us] for e in r.entries]} for r in runs],
            "lists": lists_of(lists[WORKLOAD], variants), "image": image_of(), "links": links, "samples": samples,
            "measured_links": {}}
        compressed(data)
        for link in links:  # the link as a transfer sees it: a small and a large range of the layer
            nodes[link].down()
            nodes[link].up()
            data["measured_links"][link] = link_timing(registry, refs["esgz" if "esgz" in refs else "full"])
            print(f"link {link}: {data['measured_links'][link]}", file=sys.stderr)
        for round_no in range(rounds):
            for link in coldstart._rotated(links, round_no):
                for variant in coldstart._rotated(variants, round_no):
                    s = coldstart.run_once(nodes[link], workload, variant, refs[variant], registry,
                                           coldstart.HELD_OUT + round_no)
                    samples[link].setdefault(variant, []).append([s.seconds, s.fetched_mb, s.on_demand])
                    if save is not None:  # as it goes: a failure later keeps what was measured
                        save.write_text(json.dumps(data))
                    print(f"round {round_no + 1} {link} {variant}: {s.seconds:.2f} s, {s.fetched_mb:.1f} MB, "
                          f"{s.on_demand} on demand", file=sys.stderr)
    finally:
        nodes[links[0]].down(purge=True)
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)
    return data


def link_timing(registry: str, ref: str, large: int = 8_000_000) -> dict[str, float]:
    """A small (4 kB) and a *large* range GET of the image's largest layer from the registry behind
    the link (medians of 5 and 3): the round trip an on-demand fetch pays, and the rate a
    transfer runs at over and above it."""
    from urllib.request import Request, urlopen

    repo, tag = ref.split("/", 1)[1].rsplit(":", 1)
    base = f"http://{registry}/v2/{repo}"
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
                        "application/vnd.docker.distribution.manifest.v2+json"}
    with urlopen(Request(f"{base}/manifests/{tag}", headers=accept), timeout=60) as reply:
        manifest = json.load(reply)
    if "manifests" in manifest:
        with urlopen(Request(f"{base}/manifests/{manifest['manifests'][0]['digest']}", headers=accept),
                     timeout=60) as reply:
            manifest = json.load(reply)
    layer = max(manifest["layers"], key=lambda item: item["size"])

    def get(nbytes: int) -> float:
        started = time.perf_counter()
        request = Request(f"{base}/blobs/{layer['digest']}", headers={"Range": f"bytes=0-{nbytes - 1}"})
        with urlopen(request, timeout=120) as reply:
            reply.read()
        return time.perf_counter() - started

    small = statistics.median(get(4096) for _ in range(5))
    nbytes = min(large, layer["size"])
    took = statistics.median(get(nbytes) for _ in range(3))
    return {"round_trip_s": small, "rate": nbytes / max(took - small, 1e-6)}


def lists_of(lists: Any, variants: list[str]) -> dict[str, list[str]]:
    """Each variant's list in prefetch order (esgz: none; full and floor: not a list), from
    ``coldstart.prepare``'s lists of the workload."""
    out: dict[str, list[str]] = {"esgz": []}
    if "optimize" in variants:
        out["optimize"] = list((lists.optimize or {})["optimize"])
    if "nydus-top" in variants:
        out["nydus-top"] = list(lists.single)
    return out


def image_of() -> dict[str, Any]:
    """The source image: its regular files with sizes, its compressed layers' bytes, and how long
    unpacking them takes here (gzip -d | tar -x into a temporary directory, the snapshotter's work)."""
    import coldstart

    image = coldstart.image_files(coldstart.WORKLOADS[WORKLOAD])
    files = [[path, content.stat().st_size] for path, content in sorted(image.items()) if isinstance(content, Path)]
    archive = coldstart.source_archive(coldstart.WORKLOADS[WORKLOAD])
    layers = 0
    took = 0.0
    with tarfile.open(archive) as tar, tempfile.TemporaryDirectory(prefix="nydus-top-unpack-") as into:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        manifest = _blob(tar, index["manifests"][0]["digest"])
        if manifest.get("mediaType", "").endswith("index.v1+json"):
            manifest = _blob(tar, manifest["manifests"][0]["digest"])
        for layer in manifest["layers"]:
            layers += layer["size"]
            blob = tar.extractfile(f"blobs/sha256/{layer['digest'].split(':', 1)[1]}")
            assert blob is not None
            started = time.perf_counter()
            done = subprocess.run(["tar", "-xzf", "-", "-C", into], input=blob.read(), capture_output=True)
            took += time.perf_counter() - started
            if done.returncode != 0:
                raise RuntimeError(f"unpack: {done.stderr.decode(errors='replace')[-200:]}")
    return {"files": files, "layer_bytes": layers, "unpack_s": took}


def _blob(tar: tarfile.TarFile, digest: str) -> Any:
    member = tar.extractfile(f"blobs/sha256/{digest.split(':', 1)[1]}")
    assert member is not None
    return json.load(member)


# ---------------------------------------------------------------- the model's side

PULL_RTTS = 4  # round trips of any pull before the start: manifest (HEAD, GET), config, the layer or its TOC
WINDOWS = (0.0, 128e3, 256e3, 384e3, 512e3, 768e3, 1e6, 2e6)  # request sizes tried when fitting (0: one request)
VARIANTS = ("full", "esgz", "optimize", "nydus-top", "floor")
LAZY = ("esgz", "optimize", "nydus-top")


@dataclass(frozen=True)
class Constants:
    """What the model is given besides the runs, the lists and the link profile."""

    fixed_s: float  # the runtime's own cost: the floor's start minus the runs' recorded duration
    unpack_rate: float  # file bytes per second, gzip -d | tar -x of the layer here
    lazy_s: float = 0.0  # a lazy pull's fixed cost (rpull, the FUSE mount, the TOC; fitted)
    full_s: float = 0.0  # a plain pull's fixed cost beyond download and unpack (fitted)
    request_s: float = 0.0  # each on-demand fetch's own cost (fitted)
    window: float = 0.0  # bytes a transfer moves per request, each paying the rtt (fitted; 0: one request)


def _path(path: str) -> str:
    """A list's path as the runs name it (ctr-remote's record has no leading slash)."""
    return "/" + path.lstrip("/")


def _runs(data: dict[str, Any]) -> list[Any]:
    from nydus_top.model.records import ListedFile

    return [_Run(r["name"], [ListedFile(p, s, t) for p, s, t in r["entries"]]) for r in data["runs"]]


def _duration(data: dict[str, Any]) -> float:
    return statistics.mean(max((e[2] or 0 for e in r["entries"]), default=0) / 1e6 for r in data["runs"])


def compressed(data: dict[str, Any]) -> dict[str, int]:
    """Per image file its gzip size (level 6, as the layers): measured once, kept in *data*."""
    if "gz" not in data["image"]:
        data["image"]["gz"] = {path: len(zlib.compress(Path(path).read_bytes(), 6))
                               for path, _ in data["image"]["files"]}
    return cast("dict[str, int]", data["image"]["gz"])


def wire(data: dict[str, Any], paths: set[str]) -> float:
    """Bytes on the wire per file byte for *paths* (their gzip sizes over their sizes)."""
    sizes = dict(data["image"]["files"])
    gz = compressed(data)
    raw = sum(sizes.get(p, 0) for p in paths)
    return sum(gz.get(p, 0) for p in paths) / raw if raw else 1.0


def measured_constants(data: dict[str, Any], links: list[str]) -> Constants:
    """The constants measured without fitting: the runtime's cost from the floor at *links* and
    the unpack rate from the image."""
    files = sum(size for _, size in data["image"]["files"])
    floors = [s[0] for link in links for s in data["samples"][link].get("floor", [])]
    fixed = statistics.median(floors) - _duration(data) if floors else 0.0
    return Constants(max(fixed, 0.0), files / data["image"]["unpack_s"])


def predictions(data: dict[str, Any], link: str, c: Constants) -> dict[str, float]:
    """Each variant's predicted start at *link*: the mean ``predicted_start_s`` over the recorded
    runs of its list under the stargz policy (full: every file, held without a timeout)."""
    from nydus_top.model.records import ListedFile
    from nydus_top.runs import evaluate as ev

    rate, delay = link.split(",")
    bandwidth, rtt = ev.parse_bandwidth(rate), ev.parse_seconds(delay)
    if link in data.get("measured_links", {}):  # the rate as measured (a small GET's time is mostly its own cost)
        bandwidth = data["measured_links"][link]["rate"]
    sizes = dict(data["image"]["files"])
    runs = _runs(data)
    read = {e.path for r in runs for e in r.entries}
    lazy = ev.Link(bandwidth=bandwidth, rtt=rtt, chunk=0, policy=ev.WAIT, window=c.window,
                   request_s=c.request_s, unpack_rate=c.unpack_rate, setup_s=c.fixed_s + c.lazy_s + PULL_RTTS * rtt)
    out = {}
    for variant, paths in data["lists"].items():
        listed = [ListedFile(p, sizes.get(p)) for p in map(_path, paths)]
        link_of = replace(lazy, wire=wire(data, read | {e.path for e in listed}))
        out[variant] = ev.evaluate(runs, listed, None, link_of)[1].predicted_start_s
    everything = [ListedFile(p, s) for p, s in sizes.items()]
    full = replace(lazy, timeout=math.inf, wire=data["image"]["layer_bytes"] / sum(sizes.values()),
                   setup_s=c.fixed_s + c.full_s + PULL_RTTS * rtt)
    out["full"] = ev.evaluate(runs, everything, None, full)[1].predicted_start_s
    floor = ev.Link(bandwidth=1e18, rtt=0.0, setup_s=c.fixed_s)
    out["floor"] = ev.evaluate(runs, everything, None, floor)[1].predicted_start_s
    return out


def _link_text(data: dict[str, Any], link: str) -> str:
    got = data.get("measured_links", {}).get(link)
    return "rate as configured" if got is None else (f"rate measured {got['rate'] * 8 / 1e6:.0f} Mbit/s (a 4 kB GET "
                                                      f"{got['round_trip_s'] * 1e3:.0f} ms)")


def _medians(data: dict[str, Any], link: str) -> dict[str, float]:
    return {v: statistics.median(s[0] for s in got) for v, got in data["samples"][link].items() if got}


def fit(data: dict[str, Any], links: list[str]) -> Constants:
    """The constants measured at *links*, and lazy_s, full_s, request_s and window fitted there:
    least squares of the relative errors (the start is linear in the first three; the request
    size is tried from WINDOWS)."""
    base = measured_constants(data, links)
    best: tuple[float, Constants] | None = None
    for window in WINDOWS:
        c0 = replace(base, window=window)
        # (prediction without the fitted costs, its slope in request_s, measured)
        lazy: list[tuple[float, float, float]] = []
        full: list[tuple[float, float, float]] = []
        for link in links:
            measured = _medians(data, link)
            p0 = predictions(data, link, c0)
            p1 = predictions(data, link, replace(c0, request_s=1.0))
            lazy += [(p0[v], p1[v] - p0[v], measured[v]) for v in LAZY if v in measured and v in p0]
            if "full" in measured:
                full.append((p0["full"], 0.0, measured["full"]))
        lazy_s, request = _least_squares(lazy) if lazy else (0.0, 0.0)
        full_s = _least_squares(full)[0] if full else 0.0
        err = (sum(((p + lazy_s + request * d - m) / m) ** 2 for p, d, m in lazy)
               + sum(((p + full_s - m) / m) ** 2 for p, _, m in full))
        if best is None or err < best[0] - 1e-12:
            best = (err, replace(c0, lazy_s=lazy_s, full_s=full_s, request_s=request))
    assert best is not None
    return best[1]


def _least_squares(rows: list[tuple[float, float, float]]) -> tuple[float, float]:
    """(a, b) >= 0 minimising the sum of ((p + a + b d - m) / m)^2 over *rows* (p, d, m)."""
    def err(a: float, b: float) -> float:
        return sum(((p + a + b * d - m) / m) ** 2 for p, d, m in rows)

    saa = sum(1 / m ** 2 for _, _, m in rows)
    sab = sum(d / m ** 2 for _, d, m in rows)
    sbb = sum(d * d / m ** 2 for _, d, m in rows)
    ra = sum((m - p) / m ** 2 for p, _, m in rows)
    rb = sum(d * (m - p) / m ** 2 for p, d, m in rows)
    det = saa * sbb - sab * sab
    if det > 1e-12 * max(saa * sbb, 1e-300):
        a, b = (ra * sbb - rb * sab) / det, (saa * rb - sab * ra) / det
        if a >= 0 and b >= 0:
            return a, b
    only_a = (max(ra / saa, 0.0), 0.0)
    only_b = (0.0, max(rb / sbb, 0.0) if sbb > 0 else 0.0)
    return min(only_a, only_b, key=lambda ab: err(*ab))


def same_ranking(data: dict[str, Any], link: str, predicted: dict[str, float]) -> tuple[bool, list[str]]:
    """Whether the prediction orders every two variants the measurements tell apart (their
    min-max spreads do not overlap) as measured; the pairs it does not."""
    got = data["samples"][link]
    wrong = []
    rows = [v for v in VARIANTS if got.get(v) and v in predicted]
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            sa, sb = [x[0] for x in got[a]], [x[0] for x in got[b]]
            if max(sa) < min(sb) and not predicted[a] < predicted[b]:
                wrong.append(f"{a} < {b}")
            if max(sb) < min(sa) and not predicted[b] < predicted[a]:
                wrong.append(f"{b} < {a}")
    return not wrong, wrong


class _Run:
    def __init__(self, name: str, entries: list[Any]) -> None:
        self.name, self.entries, self.ranges = name, entries, None


def report(data: dict[str, Any]) -> bool:
    """The table per link, its constants fitted on the other links (on itself when it is the
    only one); True when every row is within the target and every ranking holds."""
    ok = True
    links = data["links"]
    for link in links:
        others = [other for other in links if other != link] or [link]
        c = fit(data, others)
        measured = _medians(data, link)
        predicted = predictions(data, link, c)
        same, wrong = same_ranking(data, link, predicted)
        print(f"link {link} (constants from {', '.join(others)}): runtime {c.fixed_s:.2f} s, lazy pull "
              f"{c.lazy_s:.2f} s, plain pull {c.full_s:.2f} s (+ {PULL_RTTS} rtt each), on-demand fetch "
              f"+{c.request_s * 1e3:.1f} ms, requests of {c.window / 1e3:.0f} kB, "
              f"unpack {c.unpack_rate / 1e6:.0f} MB/s;"
              f" recorded duration {_duration(data):.2f} s; link {_link_text(data, link)}")
        print(f"{'variant':<10} {'predicted s':>11} {'measured s':>10} {'(min-max)':>11} {'error %':>8} "
              f"{'x target':>8}")
        for v in (v for v in VARIANTS if v in measured and v in predicted):
            error = (predicted[v] - measured[v]) / measured[v]
            ok = ok and abs(error) <= ERROR_TARGET
            spread = [x[0] for x in data["samples"][link][v]]
            print(f"{v:<10} {predicted[v]:>11.2f} {measured[v]:>10.2f} {min(spread):>5.2f}-{max(spread):<5.2f} "
                  f"{error * 100:>+8.1f} {abs(error) / ERROR_TARGET:>8.2f}")
        order = sorted((v for v in predicted if v in measured), key=predicted.__getitem__)
        print(f"ranking same: {'yes' if same else 'no: ' + ', '.join(wrong)} (predicted {' < '.join(order)})")
        ok = ok and same
    return ok


def main() -> int:
    ap = benchkit.parser(__doc__)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of every variant per link (default 3)")
    ap.add_argument("--link", action="append", help=f"RATE,ONE-WAY-DELAY (repeatable; default {', '.join(LINKS)})")
    ap.add_argument("--containerd", default="1.7", choices=("1.7", "2.1"))
    ap.add_argument("--save", type=Path, help="write the measurements to this JSON file")
    ap.add_argument("--load", type=Path, help="evaluate these saved measurements (no node)")
    args = ap.parse_args()
    if args.load is not None:
        data = json.loads(args.load.read_text())
    else:
        if os.geteuid() != 0:
            ap.error("needs root (containerd, FUSE, network namespaces, drop_caches); or --load")
        import coldstart

        links = args.link or ([LINKS[1]] if args.quick else list(LINKS))
        variants = list(QUICK_VARIANTS) if args.quick else list(PREDICTED)
        signal.signal(signal.SIGTERM, coldstart._interrupt)
        data = measure(links, 1 if args.quick else args.rounds, variants, args.containerd, args.save)
        if args.save is not None:
            args.save.write_text(json.dumps(data))
    ok = report(data)
    print(f"every error within {ERROR_TARGET:.0%} and the same ranking: {'yes' if ok else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
