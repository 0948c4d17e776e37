"""Cold starts on the lazy sandbox node: what a prioritized-files list buys, side by side in one run.

A Python start-up (``python3.11 -c 'import json, decimal, email.parser, logging, argparse, http.client'``)
is built as an image from this host's Debian files: what the start opens (strace) plus the rest of
``/usr/lib/python3.11`` and ``/usr/share/perl`` as bulk it never reads. The image is pushed to the
lazy node's registry behind the slow link (``scripts/sandbox-node up --lazy``) as:

* ``full``: the plain OCI image, pulled whole (``ctr pull``: every layer downloaded and unpacked);
* ``esgz``: ``ctr-remote image convert --oci --estargz``, no list, pulled lazily (``rpull``);
* ``optimize``: ``ctr-remote image optimize --oci``, the anchor's own profiler and list, ``rpull``;
* ``nydus-top``: the list from one start recorded by ``nydus-top record`` on the node (through CRI),
  converted here with ``ctr-remote image convert --oci --estargz --estargz-record-in`` (one
  ``{"path": ...}`` line per listed file, in order), ``rpull``;
* ``floor``: the plain image already pulled and unpacked; only the start is timed.

Each run starts from a fresh containerd and snapshotter (the node is downed and brought up again;
the registry's storage stays) with the page cache dropped; variants are interleaved, their order
rotating per round. A run is timed from the start of the pull to the container's exit (CRI's
``finished_at``); the workload exits when its imports are done. Reported per variant: median and
spread, MB fetched from the registry before the exit (the snapshotter's ``layer_fetched_size``; the
compressed layers for a full pull) and on-demand fetches (its ``on_demand_remote_registry_fetch_count``).
The link model: ``tbf`` rate, a per-chunk one-way delay on server-to-client data; no TCP slow start.

Targets (issue 20) shown as value/target (at most 1.0 meets): nydus-top's list within 1.05x of
``optimize``'s; its cold start at most 0.65 of eStargz without a list, and within 3x of the floor.
The source image archive is cached under the sandbox cache (keyed by the host files it holds).

Usage: ``.venv/bin/python -m bench.coldstart [--quick] [--rounds N] [--link 100mbit,20ms]`` (root).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "bench")]

import interpreter_images  # noqa: E402

from nydus_top.lists.files import result_paths  # noqa: E402
from sandbox import images  # noqa: E402
from sandbox.aptfetch import cache_dir  # noqa: E402
from sandbox.cri import CriClient  # noqa: E402
from sandbox.node import SandboxNode  # noqa: E402

COMMAND = ("/usr/bin/python3.11", "-c", "import json, decimal, email.parser, logging, argparse, http.client")
BULK = ("/usr/lib/python3.11", "/usr/share/perl")
SOURCE = "nydus-top.local/coldstart-python:1"
VARIANTS = ("full", "esgz", "optimize", "nydus-top", "floor")
NYDUS_TOP = ROOT / ".venv" / "bin" / "nydus-top"
LIST_VS_NO_LIST_TARGET = 0.65  # a list's start at most 65 % of eStargz without a list (35 % shorter)
LIST_VS_FLOOR_TARGET = 3.0
VS_ANCHOR_TARGET = 1.05
RUN_TIMEOUT = 300.0


@dataclass
class Sample:
    seconds: float
    fetched_mb: float
    on_demand: int


def image_files() -> dict[str, object]:
    """The start's files (with their symlinks and .py sources) plus the bulk trees."""
    interpreter_images.ensure_strace()
    files, _ = interpreter_images.image_and_list(interpreter_images.InterpreterStart("python", SOURCE, COMMAND))
    for top in BULK:
        for directory, _, names in os.walk(top):
            if "dist-packages" in directory or "site-packages" in directory:
                continue
            for name in names:
                path = os.path.join(directory, name)
                if os.path.islink(path):
                    files.setdefault(path, images.Symlink(os.readlink(path)))
                elif os.path.isfile(path):
                    files.setdefault(path, Path(path))
    return files


def ctr(node: SandboxNode, *args: str, remote: bool = False, timeout: float = RUN_TIMEOUT) -> str:
    binary = node.ctr_remote if remote else node.ctr
    done = subprocess.run([str(binary), "-a", str(node.containerd_socket), "-n", "k8s.io", *args],
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{binary.name} {' '.join(args[:2])}: {done.stderr.strip()[-300:]}")
    return done.stdout


def prepare(node: SandboxNode, work: Path) -> dict[str, str]:
    """Build the source image, convert and push every variant; their references."""
    registry = node.registry
    refs = {v: f"{registry}/coldstart:{v}" for v in ("full", "esgz", "optimize", "nydus-top")}
    refs["floor"] = refs["full"]
    archive = source_archive()
    print(f"source image: {archive.stat().st_size / 1e6:.1f} MB compressed", file=sys.stderr)
    images.import_image(node, archive)
    # Recorded before any other reference names the same image: CRI would name the container's image by that one.
    listed = record_list(node, work)
    print(f"nydus-top record: {len(listed)} paths", file=sys.stderr)
    ctr(node, "images", "tag", SOURCE, refs["full"])
    started = time.monotonic()
    ctr(node, "image", "convert", "--oci", "--estargz", SOURCE, refs["esgz"], remote=True)
    print(f"convert: {time.monotonic() - started:.1f} s", file=sys.stderr)
    started = time.monotonic()
    ctr(node, "image", "optimize", "--oci", "--period", "10", "--record-out", str(work / "optimize.record"),
        SOURCE, refs["optimize"], remote=True)
    record = [json.loads(line) for line in (work / "optimize.record").read_text().splitlines() if line.strip()]
    print(f"optimize: {time.monotonic() - started:.1f} s, {len({r['path'] for r in record})} paths",
          file=sys.stderr)
    (work / "nydus-top.record").write_text("".join(json.dumps({"path": path}) + "\n" for path in listed))
    ctr(node, "image", "convert", "--oci", "--estargz", "--estargz-record-in", str(work / "nydus-top.record"),
        SOURCE, refs["nydus-top"], remote=True)
    for variant in ("full", "esgz", "optimize", "nydus-top"):
        ctr(node, "image", "push", "--plain-http", refs[variant], remote=True)
    return refs


def source_archive() -> Path:
    """The source image's OCI archive, built once per set of host files (cached; it takes a while)."""
    files = image_files()
    key = hashlib.sha256(json.dumps(COMMAND).encode())
    for path, content in sorted(files.items()):
        stamp = (content.stat().st_size, content.stat().st_mtime_ns) if isinstance(content, Path) else content
        key.update(f"{path}\0{stamp}\n".encode())
    archive = cache_dir() / "coldstart" / f"python-{key.hexdigest()[:16]}.tar"
    if not archive.exists():
        archive.parent.mkdir(parents=True, exist_ok=True)
        partial = archive.with_suffix(".partial")
        images.build_image(SOURCE, files, COMMAND, partial)
        partial.replace(archive)
    return archive


def _outcome(log: Path, name: str, process: subprocess.Popen[bytes]) -> str:
    """The recorder's final line about pod ``name``'s container: ``saved PATH (...`` or why it was not."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        for line in lines:
            if f"/{name}/{name} " in line and re.search(r"nydus-top record: saved |not saved|NOT SAVED|skipp", line):
                return line
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"nydus-top record: no outcome for {name}: {lines[-3:]}")
        time.sleep(0.05)


def record_list(node: SandboxNode, work: Path, attempts: int = 3) -> list[str]:
    """The list ``nydus-top record`` saves for one complete start of the source image (through CRI) on the
    node; a start it could not record completely (a loaded machine) is tried again, at most ``attempts``."""
    persist, log = work / "persist", work / "record.log"
    process = subprocess.Popen([str(NYDUS_TOP), "record", "--nri-socket", str(node.nri_socket), "--persist-dir",
                                str(persist), "--image", SOURCE, "--log", str(log), "--overwrite"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    target = result_paths(persist, SOURCE).list
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while "registered as" not in (log.read_text(errors="replace") if log.exists() else ""):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nydus-top record did not register (log: {log})")
            time.sleep(0.05)
        for attempt in range(attempts):
            name = f"coldstart-record-{attempt}"
            with node.cri_client() as cri:
                running = cri.run(name, SOURCE, namespace="default")
                wait_exit(cri, running.container_id, "record")
                cri.remove_pod(running.pod_id)
            outcome = _outcome(log, name, process)
            print(f"nydus-top record: {outcome.split(' nydus-top record: ', 1)[-1]}", file=sys.stderr)
            if f"saved {target} (" in outcome:
                return target.read_text().splitlines()
    finally:
        process.terminate()
        process.wait(timeout=60)
    raise RuntimeError(f"nydus-top record: no complete recording in {attempts} starts (log: {log})")


def wait_exit(cri: CriClient, container_id: str, what: str) -> Any:
    """The container's status once it has exited (polled: CRI has no event for it here)."""
    request = cri.pb.ContainerStatusRequest(container_id=container_id)
    deadline = time.monotonic() + RUN_TIMEOUT
    while (reply := cri.runtime.ContainerStatus(request, timeout=30)).status.finished_at == 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: the workload did not exit within {RUN_TIMEOUT:.0f}s")
        time.sleep(0.02)
    if reply.status.exit_code != 0:
        raise RuntimeError(f"{what}: the workload exited with {reply.status.exit_code}")
    return reply.status


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def metric_sum(text: str, name: str, label: str = "") -> float:
    pattern = re.compile(rf"^{name}\{{([^}}]*)\}} (\S+)$", re.M)
    return sum(float(value) for labels, value in pattern.findall(text) if label in labels)


def run_once(node: SandboxNode, variant: str, ref: str, registry: str) -> Sample:
    node.down()
    node.up()
    if node.registry != registry:
        raise RuntimeError(f"the registry moved from {registry} to {node.registry}; rerun")
    if variant == "floor":
        ctr(node, "images", "pull", "--plain-http", "--snapshotter", "stargz", ref)
    drop_caches()
    started = time.time_ns()
    if variant == "full":
        ctr(node, "images", "pull", "--plain-http", "--snapshotter", "stargz", ref)
    elif variant in ("esgz", "optimize", "nydus-top"):
        ctr(node, "image", "rpull", "--plain-http", ref, remote=True)
    with node.cri_client() as cri:  # a new connection: the old one's containerd is gone
        running = cri.run(f"cold-{variant}", ref, namespace="default")
        status = wait_exit(cri, running.container_id, variant)
    metrics = node.stargz_metrics()
    seconds = (status.finished_at - started) / 1e9
    if variant == "full":
        fetched = sum(layer["size"] for layer in json.loads(ctr(node, "content", "get", manifest_digest(node, ref)))
                      ["layers"])
    elif variant == "floor":
        fetched = 0
    else:
        fetched = metric_sum(metrics, "stargz_fs_layer_fetched_size_bytes")
    on_demand = metric_sum(metrics, "stargz_fs_operation_count",
                           'operation_type="on_demand_remote_registry_fetch_count"')
    return Sample(seconds, fetched / 1e6, int(on_demand))


def manifest_digest(node: SandboxNode, ref: str) -> str:
    return images.list_images(node)[ref]


def report(samples: dict[str, list[Sample]], link: str, rounds: int) -> None:
    print(f"cold start, python3.11 imports, link {link} (tbf rate, per-chunk one-way delay, no slow start), "
          f"{rounds} round(s), medians")
    print(f"{'variant':<10} {'median s':>9} {'min s':>7} {'max s':>7} {'MB fetched':>11} {'on-demand':>10}")
    medians = {}
    for variant in VARIANTS:
        got = samples.get(variant, [])
        if not got:
            continue
        seconds = [s.seconds for s in got]
        medians[variant] = statistics.median(seconds)
        print(f"{variant:<10} {medians[variant]:>9.2f} {min(seconds):>7.2f} {max(seconds):>7.2f} "
              f"{statistics.median(s.fetched_mb for s in got):>11.1f} "
              f"{int(statistics.median(s.on_demand for s in got)):>10}")
    if {"nydus-top", "optimize"} <= medians.keys():
        ratio = medians["nydus-top"] / medians["optimize"]
        print(f"nydus-top list / optimize list: {ratio:.3f} (target <= {VS_ANCHOR_TARGET}): "
              f"value/target {ratio / VS_ANCHOR_TARGET:.2f}")
    for listed in ("nydus-top", "optimize"):
        if {listed, "esgz"} <= medians.keys():
            ratio = medians[listed] / medians["esgz"]
            print(f"{listed} list / no list: {ratio:.2f} (target <= {LIST_VS_NO_LIST_TARGET}): "
                  f"value/target {ratio / LIST_VS_NO_LIST_TARGET:.2f}")
        if {listed, "floor"} <= medians.keys():
            ratio = medians[listed] / medians["floor"]
            print(f"{listed} list / floor: {ratio:.2f} (target <= {LIST_VS_FLOOR_TARGET:g}): "
                  f"value/target {ratio / LIST_VS_FLOOR_TARGET:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.coldstart", description=__doc__.split("\n\n")[0],
                                     epilog="Needs root; brings up its own lazy sandbox node and removes it.")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every variant (default 5)")
    parser.add_argument("--quick", action="store_true", help="one round (a smoke run; medians of one sample)")
    parser.add_argument("--link", action="append", help="the slow link's RATE,ONE-WAY-DELAY (repeatable: profiles "
                        "are interleaved like variants; default 100mbit,20ms)")
    parser.add_argument("--containerd", default="1.7", choices=("1.7", "2.1"))
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of "
                        + ", ".join(VARIANTS))
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    if unknown := set(variants) - set(VARIANTS):
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    rounds = 1 if args.quick else args.rounds
    if os.geteuid() != 0:
        parser.error("needs root (containerd, FUSE, network namespaces, drop_caches)")
    links = args.link or ["100mbit,20ms"]
    signal.signal(signal.SIGTERM, _interrupt)  # `timeout`/kill: tear the node down on the way out
    work = Path(tempfile.mkdtemp(prefix="nydus-top-coldstart-"))
    # One node directory (and so one registry storage and address); each run brings it up at its link.
    nodes = {link: SandboxNode(work / "node", args.containerd, lazy=True, link=link) for link in links}
    samples: dict[str, dict[str, list[Sample]]] = {link: {} for link in links}
    try:
        first = nodes[links[0]]
        first.up()
        registry = first.registry
        refs = prepare(first, work)
        for round_no in range(rounds):
            for link in _rotated(links, round_no):
                for variant in _rotated(variants, round_no):
                    sample = run_once(nodes[link], variant, refs[variant], registry)
                    samples[link].setdefault(variant, []).append(sample)
                    print(f"round {round_no + 1} {link} {variant}: {sample.seconds:.2f} s, "
                          f"{sample.fetched_mb:.1f} MB, {sample.on_demand} on demand", file=sys.stderr)
    finally:
        nodes[links[0]].down(purge=True)
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)
    for link in links:
        report(samples[link], link, rounds)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _rotated(items: list[str], by: int) -> list[str]:
    return items[by % len(items):] + items[:by % len(items)]


if __name__ == "__main__":
    sys.exit(main())
