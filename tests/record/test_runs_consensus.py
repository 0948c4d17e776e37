"""Many starts, one trustworthy list: ten starts of one image on the sandbox node, recorded by the
real ``nydus-top record`` keeping each as a run; the consensus of the runs is exactly what every
start reads, whatever each start reads besides.

Each start reads a fixed set in a fixed order, two files in a random order of its own, and one
file of a pool no other start reads (the workload reads the files named on its command line).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from nydus_top.cli import main
from nydus_top.lists import meta as listmeta
from nydus_top.runs import store as runstore
from nydus_top.workspace.traces import Workspace
from testkit import workload
from testkit.harness import start_recorder, wait_exited

REF = "nydus-top.local/startup-workload-runs:1"
STARTS = 10
FIXED = workload.STARTUP_FILES[:12]
PAIR = ("/data/pair/first.bin", "/data/pair/second.bin")
POOL = tuple(f"/data/pool/p{n:02d}.bin" for n in range(20))


@pytest.fixture(scope="session")
def runs_image(sandbox_node, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The workload's image with the pair and the pool added."""
    binary = workload.build_binary(tmp_path_factory.mktemp("runs-workload"))
    files = workload.image_files(binary)
    rng = random.Random(13)
    for n, path in enumerate((*PAIR, *POOL)):
        files[path] = rng.randbytes(512 + 64 * n)
    return sandbox_node.load_image(REF, files, workload.command("exit"))


def _argv(rng: random.Random, own: str) -> list[str]:
    pair = list(PAIR)
    rng.shuffle(pair)
    return [*FIXED[:6], *pair, *FIXED[6:], own]


def test_ten_starts_agree_on_the_fixed_set_and_name_each_start_s_own_file(
        sandbox_node, runs_image, pod, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    persist = tmp_path / "results"
    rng = random.Random(2026)
    own = rng.sample(POOL, STARTS)  # one file per start, read by no other start
    orders = []
    rec = start_recorder(sandbox_node.nri_socket, persist, args=["--overwrite", "--image", "*/startup-workload-runs:*"])
    cri = sandbox_node.cri
    try:
        for n in range(STARTS):
            argv = _argv(rng, own[n])
            orders.append(argv[6:8])
            cid = cri.create_container(pod, f"start-{n:02d}", runs_image, command=workload.command("exit", argv))
            cri.start_container(cid)
            assert wait_exited(cri, cid) == 0
            rec.log.wait_for(f"for record/record-test/start-{n:02d} ({cid[:12]})", 20)
    finally:
        assert rec.stop() == 0
    assert PAIR[::-1] in [tuple(o) for o in orders] and PAIR in [tuple(o) for o in orders]  # both orders happened
    runs = runstore.runs_of(runstore.image_dir(persist, REF))
    assert len(runs) == STARTS and rec.log.count("kept run ") == STARTS
    assert all(listmeta.read(run).complete for run in runs), rec.log.text()

    config = tmp_path / "config.toml"
    config.write_text(f'persist_dir = "{persist}"\n')
    out = tmp_path / "consensus"
    assert main(["--config", str(config), "consensus", "--image", REF, "--min-share", "0.5", "-o", str(out)]) == 0
    consensus = out.read_text().splitlines()
    # Exactly the fixed set in its order (the start-up's exec first), the two shuffled files adjacent
    # where they are read; no start's own file.
    assert consensus[:7] == [workload.ENTRYPOINT, *FIXED[:6]]
    assert sorted(consensus[7:9]) == sorted(PAIR)
    assert consensus[9:] == list(FIXED[6:])
    meta = listmeta.read(out)
    assert meta.image == REF and len(meta.runs) == STARTS

    capsys.readouterr()
    assert main(["--config", str(config), "consensus", "--image", REF, "--json"]) == 0
    rows = {row["path"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert {path for path, row in rows.items() if (row["seen"], row["runs"]) == (1, STARTS)} == set(own)
    assert {path for path, row in rows.items() if row["seen"] == STARTS} == set(consensus)
    assert set(rows) == set(consensus) | set(own)  # nothing else
    assert {rows[path]["position_spread"] for path in PAIR} == {1}

    # The app's stability view counts the same runs the same way.
    loaded, warnings = Workspace.read_runs(persist, REF)
    assert warnings == []
    from testkit.replay_data import make_backend

    ws = Workspace(make_backend(persist))
    stable = ws.load_runs(REF, loaded)
    assert stable.items.paths() == consensus
    counted = ws.runset(stable)
    assert counted is not None and all(counted.by_path[path].seen == 1 for path in own)


def test_a_kept_run_names_the_files_its_start_created(sandbox_node, runs_image, pod, tmp_path: Path) -> None:
    persist = tmp_path / "results"
    rec = start_recorder(sandbox_node.nri_socket, persist, args=["--image", "*/startup-workload-runs:*"])
    cri = sandbox_node.cri
    try:
        cid = cri.create_container(pod, "creates", runs_image,
                                   command=workload.command("exit", [*FIXED[:3], "+/data/made-at-start.txt"]))
        cri.start_container(cid)
        assert wait_exited(cri, cid) == 0
        line = rec.log.wait_for(f"kept run {runstore.image_dir(persist, REF)}/", 20)
    finally:
        assert rec.stop() == 0
    (run,) = runstore.runs_of(runstore.image_dir(persist, REF))
    assert run.read_text().splitlines() == [workload.ENTRYPOINT, *FIXED[:3], "/data/made-at-start.txt"]
    assert listmeta.read(run).runtime == ("/data/made-at-start.txt",)  # in its upper directory only
    assert "(5 files, complete, 1 created at runtime)" in rec.log.lines[line]
    loaded, _ = Workspace.read_runs(persist, REF)
    from nydus_top.runs import runset

    assert runset.count(REF, loaded).runtime_created() == {"/data/made-at-start.txt"}
