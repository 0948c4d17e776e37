"""Cold starts on the lazy sandbox node: what a prioritized-files list buys, side by side in one run.

Workloads (``--workload``, default all), each an image of this host's Debian files: what its start
opens (strace on the host) plus bulk trees it never reads at start-up:

* ``python``: ``python3.11 -c 'import json, decimal, email.parser, logging, argparse, http.client'``
  (bulk: ``/usr/lib/python3.11``, ``/usr/share/perl``); ready at its exit;
* ``perl``: ``perl -MPOSIX -MData::Dumper ... -e 1`` (ten modules; bulk: Debian's perl trees); ready at
  its exit;
* ``server``: ``bench/coldstart_apps/server.py``, an HTTP app that imports what it serves with, prints
  ``READY``, then keeps importing modules and reads all of ``/usr/share/perl`` (issue 20 item 5b);
  ready at that line (the stamp containerd puts on it in the CRI log);
* ``vary``: ``bench/coldstart_apps/vary.py``, a job runner reading a fixed core plus the module groups
  job ``$JOB`` needs (item 5a): recorded starts run jobs 0, 1, ...; timed runs job 1000 + round, never
  recorded. Ready at its exit. Its ``nydus-top`` variant is not one start's list but one per round, in
  rotation: round r's timed runs use the list of recorded start r (mod the starts recorded), so the
  consensus is compared with several single-start lists, not with whichever start came first.

Variants, pushed to the lazy node's registry behind the slow link (``scripts/sandbox-node up --lazy``):

* ``full``: the plain OCI image, pulled whole (``ctr pull``: every layer downloaded and unpacked);
* ``esgz``: ``ctr-remote image convert --oci --estargz``, no list, pulled lazily (``rpull``);
* ``optimize``: ``ctr-remote image optimize --oci``, the anchor's own profiler and list (its default
  10 s period), ``rpull``;
* ``optimize-wait``: the same with ``--wait-on-line READY`` (workloads with a ready line only);
* ``nydus-top``: the list of one start recorded by ``nydus-top record`` on the node (through CRI; cut at
  the ready line with ``--ready-line``; on ``vary``, a different start's per round, see above), converted
  with ``ctr-remote image convert --oci --estargz --estargz-record-in`` (one ``{"path": ...}`` line per
  listed file, in order), ``rpull``;
* ``nydus-top-zstd`` (only when named in ``--variants``): the ``nydus-top`` list in a zstd:chunked image
  (``--zstdchunked --zstdchunked-record-in``, level ``ZSTD_LEVEL``);
* ``consensus``: the same with ``nydus-top consensus`` of ``--starts`` recorded starts (default 10);
* ``floor``: the plain image already pulled and unpacked; only the start is timed.

Each run starts from a fresh containerd and snapshotter (the node is downed and brought up again;
the registry's storage stays) with the page cache dropped; link profiles, workloads and variants are
interleaved, their order rotating per round. A run is timed from the start of the pull to readiness.
Reported per variant: median and spread, MB fetched from the registry by readiness (the snapshotter's
``layer_fetched_size``; the compressed layers for a full pull) and on-demand fetches (its
``on_demand_remote_registry_fetch_count``). The link model: ``tbf`` rate, a per-chunk one-way delay on
server-to-client data; no TCP slow start.

Targets (issue 20) shown as value/target (at most 1.0 meets): nydus-top's list within 1.05x of
``optimize``'s (of ``optimize --wait-on-line`` for the server); its cold start at most 0.65 of eStargz
without a list, and within 3x of the floor; on the server, the list cut at readiness at most 0.60 of
``optimize``'s default-period list (40 % sooner). The consensus against the single-start list is printed
without a target (below 1.0: the consensus is faster); on ``vary`` each single-start list is also
reported with its runs' times and on-demand fetches. Source image archives are cached under the
sandbox cache (keyed by the host files they hold).

``--quick`` is the CI smoke (``tests/test_benches.py``): one round of the python workload, eStargz
without a list against nydus-top's list, at one link.

Usage: ``.venv/bin/python -m bench.coldstart [--quick] [--rounds N] [--link 100mbit,20ms ...]
[--workload NAME ...] [--variants a,b] [--starts N]`` (root).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "bench")]

import interpreter_images  # noqa: E402

from nydus_top.lists.files import result_paths  # noqa: E402
from nydus_top.runs import store as runstore  # noqa: E402
from sandbox import images  # noqa: E402
from sandbox.aptfetch import cache_dir  # noqa: E402
from sandbox.cri import CriClient  # noqa: E402
from sandbox.node import SandboxNode  # noqa: E402

APPS = ROOT / "bench" / "coldstart_apps"
READY_LINE = "READY"


@dataclass(frozen=True)
class Workload:
    """One cold-started program: its image, command, the trees it carries as bulk, its readiness line
    (None: it is ready when it exits) and the command strace runs on the host to find what it opens."""

    name: str
    source: str
    command: tuple[str, ...]
    bulk: tuple[str, ...]
    ready_line: str | None = None
    app: str | None = None  # a script of APPS, put at /app/<name> in the image
    app_args: tuple[str, ...] = ()  # on the host (strace): the app does all it ever does, then exits
    varies: bool = False  # its start reads what $JOB asks for: recorded starts and timed runs get distinct jobs
    variants: tuple[str, ...] | None = None  # the variants worth running on it (None: all)

    def host_command(self, app_dir: Path) -> tuple[str, ...]:
        """The command strace runs on the host: the app from *app_dir*, told to do everything and exit."""
        if self.app is None:
            return self.command
        return (self.command[0], str(app_dir / self.app), *self.app_args)

    def env(self, job: int) -> dict[str, str] | None:
        """The environment of start *job* (recorded starts 0, 1, ...; timed runs HELD_OUT + round)."""
        return {"JOB": str(job)} if self.varies else None


WORKLOADS = {
    "python": Workload("python", "nydus-top.local/coldstart-python:1",
                       ("/usr/bin/python3.11", "-c",
                        "import json, decimal, email.parser, logging, argparse, http.client"),
                       ("/usr/lib/python3.11", "/usr/share/perl")),
    "perl": Workload("perl", "nydus-top.local/coldstart-perl:1",
                     ("/usr/bin/perl", "-MPOSIX", "-MData::Dumper", "-MGetopt::Long", "-MFile::Temp", "-MStorable",
                      "-MJSON::PP", "-MTime::Piece", "-MList::Util", "-MText::Wrap", "-MIO::Socket::INET", "-e", "1"),
                     ("/usr/share/perl", "/usr/lib/x86_64-linux-gnu/perl", "/usr/lib/x86_64-linux-gnu/perl-base")),
    # An HTTP app: ready after its imports, then it keeps importing modules and reading /usr/share/perl
    # (issue 20 item 5b: a list that takes in what follows readiness delays it on this snapshotter).
    "server": Workload("server", "nydus-top.local/coldstart-server:1",
                       ("/usr/bin/python3.11", "/app/server.py"), ("/usr/lib/python3.11", "/usr/share/perl"),
                       READY_LINE, "server.py", ("--exit-after-warm-up",)),
    # A job runner: a fixed core, then the module groups job $JOB needs (a few groups most jobs need, many
    # that few do; issue 20 item 5a: a consensus of starts against one start's list, on held-out jobs).
    "vary": Workload("vary", "nydus-top.local/coldstart-vary:1", ("/usr/bin/python3.11", "/app/vary.py"),
                     ("/usr/lib/python3.11", "/usr/share/perl"), None, "vary.py", ("--all",), varies=True,
                     variants=("esgz", "optimize", "nydus-top", "consensus")),
}
HELD_OUT = 1000  # timed runs of a varying workload use job HELD_OUT + round: never one of the recorded starts
VARIANTS = ("full", "esgz", "optimize", "optimize-wait", "nydus-top", "nydus-top-zstd", "consensus", "floor")
LISTED = ("optimize", "optimize-wait", "nydus-top", "nydus-top-zstd", "consensus")  # images with a prioritized list
ZSTD_LEVEL = 19  # nydus-top-zstd: the single start's list in a zstd:chunked image (ctr-remote's default is 3)
DEFAULT_VARIANTS = tuple(v for v in VARIANTS if v != "nydus-top-zstd")  # zstd: asked for by name
QUICK_VARIANTS = ("esgz", "nydus-top")
NYDUS_TOP = ROOT / ".venv" / "bin" / "nydus-top"
CONSENSUS_STARTS = 10  # recorded starts the consensus list is made of (--quick: 3)
CONSENSUS_ARGS: list[str] = []  # extra `nydus-top consensus` arguments (--min-share, --consensus-arg)
LIST_VS_NO_LIST_TARGET = 0.65  # a list's start at most 65 % of eStargz without a list (35 % shorter)
LIST_VS_FLOOR_TARGET = 3.0
VS_ANCHOR_TARGET = 1.05
READY_VS_PERIOD_TARGET = 0.60  # the readiness-cut list reaches ready >= 40 % sooner than optimize's default period
RUN_TIMEOUT = 300.0


@dataclass
class Sample:
    seconds: float
    fetched_mb: float
    on_demand: int


def _walk(files: dict[str, object], top: str) -> None:
    for directory, _, names in os.walk(top):
        if "dist-packages" in directory or "site-packages" in directory:
            continue
        for name in names:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                files.setdefault(path, images.Symlink(os.readlink(path)))
            elif os.path.isfile(path):
                files.setdefault(path, Path(path))


def image_files(workload: Workload) -> dict[str, object]:
    """What the workload's start opens on the host (with its symlinks and .py sources), its app, the bulk."""
    interpreter_images.ensure_strace()
    with tempfile.TemporaryDirectory(prefix="nydus-top-coldstart-app-") as app_dir:  # under /tmp: left out
        if workload.app is not None:
            shutil.copy(APPS / workload.app, Path(app_dir) / workload.app)
        start = interpreter_images.InterpreterStart("python" if "python" in workload.command[0] else workload.name,
                                                    workload.source, workload.host_command(Path(app_dir)))
        files, _ = interpreter_images.image_and_list(start)
    if workload.app is not None:
        files[f"/app/{workload.app}"] = (APPS / workload.app).read_bytes()
    for top in workload.bulk:
        _walk(files, top)
    return files


def ctr(node: SandboxNode, *args: str, remote: bool = False, timeout: float = RUN_TIMEOUT) -> str:
    binary = node.ctr_remote if remote else node.ctr
    done = subprocess.run([str(binary), "-a", str(node.containerd_socket), "-n", "k8s.io", *args],
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{binary.name} {' '.join(args[:2])}: {done.stderr.strip()[-300:]}")
    return done.stdout


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Lists:
    """What ``prepare`` learnt of a workload's lists (paths, in order)."""

    single: list[str]
    consensus: list[str] | None = None
    starts: int = 0
    optimize: dict[str, list[str]] | None = None
    same_image: list[str] | None = None  # variants whose image is nydus-top's, byte for byte (same manifest)
    singles: list[tuple[int, list[str]]] | None = None  # every complete recorded start: (its job, its list)
    rotation: list[tuple[int, str]] | None = None  # varying workloads: round r's nydus-top image, r mod len: (job, ref)


def prepare(node: SandboxNode, work: Path, workloads: list[Workload], variants: list[str],
            starts: int, rounds: int = 1) -> tuple[dict[tuple[str, str], str], dict[str, Lists]]:
    """Build every workload's source image, record its lists, convert and push every variant; their references.
    A varying workload's nydus-top variant gets one image per recorded start, up to *rounds* of them
    (``Lists.rotation``; ``refs`` names the first)."""
    registry = node.registry
    for workload in workloads:
        archive = source_archive(workload)
        say(f"{workload.name}: source image {archive.stat().st_size / 1e6:.1f} MB compressed")
        images.import_image(node, archive)
    refs: dict[tuple[str, str], str] = {}
    lists: dict[str, Lists] = {}
    # Recorded before any other reference names the same image: CRI would name the container's image by
    # that one (and `record --image` misses starts of an image with several references).
    recording = {"nydus-top", "nydus-top-zstd", "consensus"} & set(variants)
    for workload in workloads:
        if recording:
            lists[workload.name] = record_lists(node, work / workload.name, workload,
                                                starts if "consensus" in variants else 1)
    for workload in workloads:
        here = work / workload.name
        here.mkdir(parents=True, exist_ok=True)
        wanted = [v for v in variants if (v != "optimize-wait" or workload.ready_line)
                  and v in (workload.variants or VARIANTS)]
        for variant in wanted:
            refs[workload.name, variant] = f"{registry}/coldstart-{workload.name}:{variant}"
        refs.pop((workload.name, "floor"), None)
        if "floor" in wanted:
            refs[workload.name, "floor"] = f"{registry}/coldstart-{workload.name}:full"
        if {"full", "floor"} & set(wanted):
            ctr(node, "images", "tag", workload.source, f"{registry}/coldstart-{workload.name}:full")
        if "esgz" in wanted:
            timed(f"{workload.name} convert", node, "image", "convert", "--oci", "--estargz", workload.source,
                  refs[workload.name, "esgz"])
        optimized: dict[str, list[str]] = {}
        for variant in ("optimize", "optimize-wait"):
            if variant in wanted:
                optimized[variant] = optimize(node, here, workload, variant, refs[workload.name, variant])
        if optimized:
            lists.setdefault(workload.name, Lists([])).optimize = optimized
        for variant in ("nydus-top", "nydus-top-zstd", "consensus"):
            if variant not in wanted:
                continue
            listed = lists[workload.name].consensus if variant == "consensus" else lists[workload.name].single
            assert listed is not None
            if variant == "consensus" and listed == lists[workload.name].single and "nydus-top" in wanted:
                say(f"{workload.name}: the consensus list is the single start's (the same image): not run twice")
                del refs[workload.name, "consensus"]
                continue
            convert_listed(node, here, workload, variant, listed, refs[workload.name, variant],
                           zstd=variant == "nydus-top-zstd")
            got = lists[workload.name]
            if variant == "nydus-top" and workload.varies and got.singles and rounds > 1:
                got.rotation, by_list = [], {tuple(listed): refs[workload.name, variant]}
                for job, single in got.singles[:rounds]:
                    if tuple(single) not in by_list:
                        by_list[tuple(single)] = ref = f"{refs[workload.name, variant]}-job{job}"
                        convert_listed(node, here, workload, f"{variant}-job{job}", single, ref)
                        refs[workload.name, f"{variant}-job{job}"] = ref  # pushed with the rest
                    got.rotation.append((job, by_list[tuple(single)]))
        if workload.name in lists:
            compare_lists(workload, lists[workload.name])
    for ref in sorted(set(refs.values())):
        ctr(node, "image", "push", "--plain-http", ref, remote=True)
    for key in [k for k in refs if k[1].startswith("nydus-top-job")]:
        del refs[key]  # run through Lists.rotation, not as variants of their own
    digests = images.list_images(node)
    for workload in workloads:
        if workload.name in lists and lists[workload.name].rotation:
            continue  # several nydus-top images: no one of them stands for the variant
        ours = digests.get(refs.get((workload.name, "nydus-top"), ""))
        same = [v for v in LISTED if v != "nydus-top" and ours
                and digests.get(refs.get((workload.name, v), "")) == ours]
        if same and workload.name in lists:
            lists[workload.name].same_image = same
            say(f"{workload.name}: nydus-top's image is byte-identical to {', '.join(same)}'s")
    return refs, lists


def convert_listed(node: SandboxNode, here: Path, workload: Workload, name: str, listed: list[str], ref: str,
                   *, zstd: bool = False) -> None:
    """Convert the source to eStargz with *listed* prioritized (``--estargz-record-in``), as *ref*; with *zstd*,
    to zstd:chunked at ``ZSTD_LEVEL``."""
    record = here / f"{name}.record"
    record.write_text("".join(json.dumps({"path": path}) + "\n" for path in listed))
    form = (["--zstdchunked", "--zstdchunked-compression-level", str(ZSTD_LEVEL), "--zstdchunked-record-in"]
            if zstd else ["--estargz", "--estargz-record-in"])
    timed(f"{workload.name} convert {name} ({len(listed)} paths)", node, "image", "convert", "--oci", *form,
          str(record), workload.source, ref)


def timed(what: str, node: SandboxNode, *args: str) -> None:
    """``ctr-remote *args``, saying how long it took."""
    started = time.monotonic()
    ctr(node, *args, remote=True)
    say(f"{what}: {time.monotonic() - started:.1f} s")


def optimize(node: SandboxNode, here: Path, workload: Workload, variant: str, ref: str) -> list[str]:
    """``ctr-remote image optimize`` of the source: its default period (10 s), or until the ready line with
    ``optimize-wait``; the unique paths of its record, in order."""
    out = here / f"{variant}.record"
    extra = ["--wait-on-line", workload.ready_line] if variant == "optimize-wait" and workload.ready_line else []
    net = ["--net-host"] if workload.ready_line else []  # the server binds 127.0.0.1
    env = ["--env", "JOB=0"] if workload.varies else []  # the job of nydus-top's single recorded start
    timed(f"{workload.name} {variant}", node, "image", "optimize", "--oci", *net, *env, *extra, "--record-out",
          str(out), workload.source, ref)
    paths = list(dict.fromkeys("/" + json.loads(line)["path"].lstrip("/")  # it writes them relative
                               for line in out.read_text().splitlines() if line.strip()))
    say(f"{workload.name} {variant}: {len(paths)} paths")
    return paths


def compare_lists(workload: Workload, lists: Lists) -> None:
    """Say how nydus-top's list differs from optimize's (what the floor and anchor targets hinge on)."""
    for variant, theirs in (lists.optimize or {}).items():
        ours = lists.single
        if not ours:
            continue
        only_ours, only_theirs = [p for p in ours if p not in theirs], [p for p in theirs if p not in ours]
        same_order = [p for p in ours if p in theirs] == [p for p in theirs if p in ours]
        say(f"{workload.name}: nydus-top {len(ours)} paths vs {variant} {len(theirs)}: {len(only_ours)} only in "
            f"nydus-top {only_ours[:5]}, {len(only_theirs)} only in {variant} {only_theirs[:5]}, "
            f"common paths {'in the same order' if same_order else 'in another order'}")


def source_archive(workload: Workload) -> Path:
    """The source image's OCI archive, built once per set of host files (cached; it takes a while)."""
    files = image_files(workload)
    key = hashlib.sha256(json.dumps(workload.command).encode())
    for path, content in sorted(files.items()):
        if isinstance(content, Path):
            stamp: object = (content.stat().st_size, content.stat().st_mtime_ns)
        elif isinstance(content, bytes):
            stamp = hashlib.sha256(content).hexdigest()
        else:
            stamp = content
        key.update(f"{path}\0{stamp}\n".encode())
    archive = cache_dir() / "coldstart" / f"{workload.name}-{key.hexdigest()[:16]}.tar"
    if not archive.exists():
        archive.parent.mkdir(parents=True, exist_ok=True)
        partial = archive.with_suffix(".partial")
        images.build_image(workload.source, files, workload.command, partial)  # type: ignore[arg-type]
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


def record_lists(node: SandboxNode, work: Path, workload: Workload, starts: int) -> Lists:
    """Record *starts* starts of the source image with ``nydus-top record`` on the node (through CRI; cut at
    the ready line if the workload has one): the first complete start's list, and with several starts the
    consensus of them all (``nydus-top consensus``). A start it could not record completely (a loaded
    machine) is not counted; at most twice *starts* are tried."""
    work.mkdir(parents=True, exist_ok=True)
    persist, log = work / "persist", work / "record.log"
    ready = ["--ready-line", workload.ready_line] if workload.ready_line else []
    process = subprocess.Popen([str(NYDUS_TOP), "record", "--nri-socket", str(node.nri_socket), "--persist-dir",
                                str(persist), "--image", workload.source, "--log", str(log), "--overwrite", *ready],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    target = result_paths(persist, workload.source).list
    complete: list[tuple[int, list[str]]] = []  # (job, list)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while "registered as" not in (log.read_text(errors="replace") if log.exists() else ""):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nydus-top record did not register (log: {log})")
            time.sleep(0.05)
        for attempt in range(2 * starts):
            if len(complete) == starts:
                break
            name = f"record-{workload.name}-{attempt}"
            with node.cri_client() as cri:
                running = cri.run(name, workload.source, namespace="default", env=workload.env(attempt))
                outcome = _outcome(log, name, process)
                cri.remove_pod(running.pod_id)
            if f"saved {target} (" in outcome and "incomplete" not in outcome:
                complete.append((attempt, target.read_text().splitlines()))
            else:
                say(f"{workload.name}: nydus-top record: {outcome.split(' nydus-top record: ', 1)[-1]}")
    finally:
        process.terminate()
        process.wait(timeout=60)
    if not complete:
        raise RuntimeError(f"nydus-top record: no complete recording in {2 * starts} starts (log: {log})")
    sizes = [len(c) for _, c in complete]
    say(f"{workload.name}: nydus-top record: {len(complete)} complete start(s), {sizes} paths")
    lists = Lists(complete[0][1], starts=len(complete), singles=complete)
    if starts > 1:
        lists.consensus = consensus(work, persist, workload)
    return lists


def consensus(work: Path, persist: Path, workload: Workload) -> list[str]:
    """``nydus-top consensus`` of every run of the workload's image the recorder kept."""
    runs = runstore.image_dir(persist, workload.source)
    out = persist / "consensus.list"
    config = work / "consensus.toml"
    config.write_text(f"persist_dir = {json.dumps(str(persist))}\n")
    done = subprocess.run([str(NYDUS_TOP), "consensus", "--config", str(config), str(runs), "-o", str(out),
                           "--force", *CONSENSUS_ARGS], capture_output=True, text=True, timeout=RUN_TIMEOUT,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"nydus-top consensus: {done.stderr.strip()[-300:]}")
    say(f"{workload.name}: nydus-top consensus: {done.stdout.strip().splitlines()[0]}")
    return out.read_text().splitlines()


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


_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d) \S+ \S+ (.*)$")


def wait_ready_line(cri: CriClient, container_id: str, line: str, what: str) -> int:
    """When (ns since the epoch) the container printed *line*: the stamp containerd put on it in the CRI log."""
    log_path = Path(cri.container_status(container_id).log_path)
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        for row in text.splitlines():
            if (m := _LOG_LINE.match(row)) and m[4].strip() == line:
                zone = "+00:00" if m[3] == "Z" else m[3]
                whole = datetime.fromisoformat(m[1] + zone).timestamp()
                return int(whole) * 1_000_000_000 + int(((m[2] or "0") + "000000000")[:9])
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: no {line!r} within {RUN_TIMEOUT:.0f}s: {text[-300:]!r}")
        time.sleep(0.02)


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def metric_sum(text: str, name: str, label: str = "") -> float:
    pattern = re.compile(rf"^{name}\{{([^}}]*)\}} (\S+)$", re.M)
    return sum(float(value) for labels, value in pattern.findall(text) if label in labels)


def run_once(node: SandboxNode, workload: Workload, variant: str, ref: str, registry: str, job: int) -> Sample:
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
    elif variant != "floor":
        ctr(node, "image", "rpull", "--plain-http", ref, remote=True)
    what = f"{workload.name} {variant}"
    with node.cri_client() as cri:  # a new connection: the old one's containerd is gone
        running = cri.run(f"cold-{workload.name}-{variant}", ref, namespace="default", env=workload.env(job))
        if workload.ready_line:
            ready = wait_ready_line(cri, running.container_id, workload.ready_line, what)
        else:
            ready = wait_exit(cri, running.container_id, what).finished_at
        metrics = node.stargz_metrics()  # before the pod goes: what was fetched by readiness
        cri.remove_pod(running.pod_id)
    seconds = (ready - started) / 1e9
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


def _ratio(medians: dict[str, float], a: str, b: str, target: float, what: str) -> str | None:
    if {a, b} <= medians.keys():
        ratio = medians[a] / medians[b]
        return f"  {what}: {ratio:.3f} (target <= {target:g}): value/target {ratio / target:.2f}"
    return None


def report(workload: Workload, samples: dict[str, list[Sample]], link: str, rounds: int, lists: Lists | None) -> None:
    until = f"its {workload.ready_line!r} line" if workload.ready_line else "its exit"
    print(f"\n{workload.name}: `{shlex.join(workload.command)}`, pull start to {until}; link {link}, "
          f"{rounds} round(s); medians and [min-max]")
    print(f"  {'variant':<14} {'median s':>9} {'min s':>7} {'max s':>7} {'MB fetched':>11} {'on-demand':>10}")
    medians = {}
    for variant in VARIANTS:
        got = samples.get(variant, [])
        if not got:
            continue
        seconds = [s.seconds for s in got]
        medians[variant] = statistics.median(seconds)
        print(f"  {variant:<14} {medians[variant]:>9.2f} {min(seconds):>7.2f} {max(seconds):>7.2f} "
              f"{statistics.median(s.fetched_mb for s in got):>11.1f} "
              f"{int(statistics.median(s.on_demand for s in got)):>10}")
    rotating = lists is not None and bool(lists.rotation)
    lines = [_ratio(medians, "nydus-top", "optimize-wait" if workload.ready_line else "optimize", VS_ANCHOR_TARGET,
                    "nydus-top lists (rotating) / optimize's list (job 0)" if rotating else
                    "nydus-top list / optimize" + (" --wait-on-line" if workload.ready_line else "") + " list"),
             _ratio(medians, "consensus", "nydus-top", 1.0, "consensus / single-start lists (rotating), held-out "
                    "jobs" if rotating else "consensus / single-start list, held-out jobs"
                    if workload.varies else "consensus / single-start list (no target here: same starts)")]
    if workload.ready_line:
        lines.append(_ratio(medians, "nydus-top", "optimize", READY_VS_PERIOD_TARGET,
                            "nydus-top list cut at ready / optimize's default-period list"))
    lines.append(_ratio(medians, "nydus-top-zstd", "nydus-top", 1.0, "nydus-top list, zstd:chunked / eStargz"))
    for listed in ("nydus-top", "nydus-top-zstd", "optimize"):
        lines.append(_ratio(medians, listed, "esgz", LIST_VS_NO_LIST_TARGET, f"{listed} list / no list"))
        lines.append(_ratio(medians, listed, "floor", LIST_VS_FLOOR_TARGET, f"{listed} list / floor"))
    if lists is not None and lists.consensus is not None and lists.consensus == lists.single:
        print("  consensus: the same list as the single start's, so the same image (not run twice)")
    if lists is not None and lists.same_image:
        print(f"  nydus-top's image is byte-identical to {', '.join(lists.same_image)}'s (same manifest digest): "
              "their difference is this run's noise")
    for line in lines:
        if line:
            print(line)
    if lists is not None and lists.rotation:
        rotation_report(samples, lists)


def rotation_report(samples: dict[str, list[Sample]], lists: Lists) -> None:
    """Round by round: which start's list the nydus-top variant used, against the consensus on the same held-out
    job; the mean over the rounds and the median of the paired ratios."""
    assert lists.rotation is not None
    sizes = dict((job, len(single)) for job, single in lists.singles or [])
    print(f"  single-start lists in rotation (round r: recorded start r; the consensus: "
          f"{len(lists.consensus or [])} paths of {lists.starts} starts):")
    ours, theirs = samples.get("nydus-top", []), samples.get("consensus", [])
    ratios = []
    for round_no, single in enumerate(ours):
        job = lists.rotation[round_no % len(lists.rotation)][0]
        line = (f"    round {round_no + 1} (job {HELD_OUT + round_no}): job {job}'s list ({sizes.get(job, 0)} paths) "
                f"{single.seconds:.2f} s, {single.on_demand} on demand")
        if round_no < len(theirs):
            ratios.append(theirs[round_no].seconds / single.seconds)
            line += f"; consensus {theirs[round_no].seconds:.2f} s, {theirs[round_no].on_demand} on demand"
        print(line)
    if ours and theirs:
        n = min(len(ours), len(theirs))
        print(f"    mean of the rounds: single-start lists {statistics.mean(s.seconds for s in ours[:n]):.2f} s, "
              f"{statistics.mean(s.on_demand for s in ours[:n]):.1f} on demand; consensus "
              f"{statistics.mean(s.seconds for s in theirs[:n]):.2f} s, "
              f"{statistics.mean(s.on_demand for s in theirs[:n]):.1f} on demand; "
              f"consensus / single-start, paired by round: median {statistics.median(ratios):.3f} "
              f"({min(ratios):.2f}-{max(ratios):.2f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.coldstart", description=__doc__.split("\n\n")[0],
                                     epilog="Needs root; brings up its own lazy sandbox node and removes it.")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every variant (default 5)")
    parser.add_argument("--quick", action="store_true", help="the CI smoke: one round of the python workload, "
                        "eStargz without a list against nydus-top's list, one link")
    parser.add_argument("--link", action="append", help="the slow link's RATE,ONE-WAY-DELAY (repeatable: profiles "
                        "are interleaved like variants; default 100mbit,20ms)")
    parser.add_argument("--containerd", default="1.7", choices=("1.7", "2.1"))
    parser.add_argument("--workload", action="append", choices=sorted(WORKLOADS),
                        help="a workload to run (repeatable; default all, --quick: python)")
    parser.add_argument("--variants", help="comma-separated subset of " + ", ".join(VARIANTS)
                        + " (default all but nydus-top-zstd; --quick: " + ",".join(QUICK_VARIANTS) + ")")
    parser.add_argument("--starts", type=int, help=f"recorded starts the consensus list is made of "
                        f"(default {CONSENSUS_STARTS}, --quick 3); on the varying workload (vary) round r's "
                        "nydus-top list is recorded start r's (mod the starts), one image each, so the consensus "
                        "meets several single-start lists")
    parser.add_argument("--min-share", help="passed to `nydus-top consensus --min-share` (a share, or auto; "
                        "default: its own, 0.5)")
    parser.add_argument("--consensus-arg", action="append", default=[], metavar="ARG",
                        help="one more `nydus-top consensus` argument (repeatable), e.g. --consensus-arg=--policy=wait "
                        "for --min-share auto's link model")
    args = parser.parse_args(argv)
    CONSENSUS_ARGS[:] = [*(["--min-share", args.min_share] if args.min_share else []), *args.consensus_arg]
    variants = [v for v in (args.variants or ",".join(QUICK_VARIANTS if args.quick else DEFAULT_VARIANTS)).split(",")
                if v]
    if unknown := set(variants) - set(VARIANTS):
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    rounds = 1 if args.quick else args.rounds
    starts = args.starts or (3 if args.quick else CONSENSUS_STARTS)
    if os.geteuid() != 0:
        parser.error("needs root (containerd, FUSE, network namespaces, drop_caches)")
    links = args.link or ["100mbit,20ms"]
    if args.quick:
        links = links[:1]
    workloads = [WORKLOADS[name] for name in dict.fromkeys(args.workload or (["python"] if args.quick else WORKLOADS))]
    signal.signal(signal.SIGTERM, _interrupt)  # `timeout`/kill: tear the node down on the way out
    work = Path(tempfile.mkdtemp(prefix="nydus-top-coldstart-"))
    # One node directory (and so one registry storage and address); each run brings it up at its link.
    nodes = {link: SandboxNode(work / "node", args.containerd, lazy=True, link=link) for link in links}
    samples: dict[tuple[str, str], dict[str, list[Sample]]] = {}
    lists: dict[str, Lists] = {}
    done = 0
    try:
        first = nodes[links[0]]
        first.up()
        registry = first.registry
        refs, lists = prepare(first, work, workloads, variants, starts, rounds)
        done = run_rounds(nodes, workloads, variants, refs, registry, rounds, samples, lists)
    finally:
        nodes[links[0]].down(purge=True)
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)
    if args.quick:
        print("coldstart --quick: a smoke run (one round, single samples: no target is judged)")
    elif done < rounds:
        print(f"coldstart: interrupted: {done} complete round(s) of {rounds}; the tables hold what was measured")
    for link in links:
        for workload in workloads:
            report(workload, samples.get((link, workload.name), {}), link, done, lists.get(workload.name))
    return 0 if done == rounds else 1


def run_rounds(nodes: dict[str, SandboxNode], workloads: list[Workload], variants: list[str],
               refs: dict[tuple[str, str], str], registry: str, rounds: int,
               samples: dict[tuple[str, str], dict[str, list[Sample]]], lists: dict[str, Lists] | None = None) -> int:
    """Every round of every link, workload and variant, interleaved; the rounds completed (an interrupt, e.g.
    SIGTERM from ``timeout``, ends them early and keeps what was measured). A workload with a
    ``Lists.rotation`` runs round r's nydus-top variant on its image r (mod its length)."""
    for round_no in range(rounds):
        try:
            for link in _rotated(list(nodes), round_no):
                for workload in _rotated(workloads, round_no):
                    for variant in _rotated([v for v in variants if (workload.name, v) in refs], round_no):
                        ref = refs[workload.name, variant]
                        rotation = (lists or {}).get(workload.name, Lists([])).rotation
                        if variant == "nydus-top" and rotation:
                            ref = rotation[round_no % len(rotation)][1]
                        sample = run_once(nodes[link], workload, variant, ref, registry, HELD_OUT + round_no)
                        samples.setdefault((link, workload.name), {}).setdefault(variant, []).append(sample)
                        say(f"round {round_no + 1} {link} {workload.name} {variant}: {sample.seconds:.2f} s, "
                            f"{sample.fetched_mb:.1f} MB, {sample.on_demand} on demand")
        except KeyboardInterrupt:
            say(f"interrupted in round {round_no + 1}")
            return round_no
    return rounds


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _rotated(items: list[Any], by: int) -> list[Any]:
    return items[by % len(items):] + items[:by % len(items)]


if __name__ == "__main__":
    sys.exit(main())
