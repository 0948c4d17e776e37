"""The recorder keeps every recording with files as a run, complete or not, bounded by keep_runs,
beside (never instead of) the optimizer's pair; one log line each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nydus_top.lists.compact import CompactList
from nydus_top.lists.files import load_list, result_paths
from nydus_top.lists.meta import ListMeta
from nydus_top.recording.recorder import Plan, Recorder, Recording, RecordSettings
from nydus_top.runs import store as runstore

IMAGE = "registry.local:5000/team/app:1"
FILES = [("/bin/app", 10, 0), ("/lib/libc.so", 20, 150), ("/etc/app.conf", 5, 300)]


def _finish(settings: RecordSettings, lines: list[str], *, container: str = "app", problems: tuple[str, ...] = (),
            files: list[tuple[str, int, int]] = FILES, overlay: object = None, image: str = IMAGE,
            on_saved: Callable[[Path, str], object] | None = None) -> None:
    """Save one recording as the recorder does once its trace has ended (no tracer needed)."""
    recorder = Recorder(settings, lines.append, on_saved=on_saved)
    compact = CompactList()
    for path, size, elapsed in files:
        compact.append(path, size, elapsed)
    plan = Plan(f"{container}-id", result_paths(settings.persist_dir, image), settings, image)
    rec = Recording(plan, "pod", container, None, compact, lines.append,  # type: ignore[arg-type]
                    ListMeta(image=image, container=container, container_id=f"{container}-id"))
    rec.problems.extend(problems)
    rec.overlay = overlay  # type: ignore[assignment]
    recorder._save(rec, "StopContainer")


def test_a_complete_recording_is_kept_as_a_run_beside_the_pair(tmp_path: Path) -> None:
    lines: list[str] = []
    _finish(RecordSettings(tmp_path), lines)
    (run,) = runstore.runs_of(runstore.image_dir(tmp_path, IMAGE))
    assert lines == [f"kept run {run} (3 files, complete) for app",
                     f"saved {tmp_path}/team/app:1 (3 files, StopContainer) for app"]
    loaded = load_list(run)
    assert [e.path for e in loaded.entries] == [p for p, _, _ in FILES]
    assert loaded.meta is not None and loaded.meta.complete and loaded.meta.container == "app"
    assert (tmp_path / "team" / "app:1").read_text() == "/bin/app\n/lib/libc.so\n/etc/app.conf\n"
    assert run.name.endswith("Z-app") and Path(f"{run}.csv").exists()


def test_a_possibly_incomplete_recording_is_a_run_that_says_so(tmp_path: Path) -> None:
    lines: list[str] = []
    _finish(RecordSettings(tmp_path), lines, problems=("mark was late",))
    (run,) = runstore.runs_of(runstore.image_dir(tmp_path, IMAGE))
    assert lines[0] == f"kept run {run} (3 files, possibly incomplete) for app"
    meta = load_list(run).meta
    assert meta is not None and not meta.complete and meta.incomplete == "mark was late"
    assert (tmp_path / "team" / "app:1.incomplete").exists() and not (tmp_path / "team" / "app:1").exists()


def test_runs_are_kept_even_when_the_pair_is_not_replaced(tmp_path: Path) -> None:
    lines: list[str] = []
    settings = RecordSettings(tmp_path, keep_runs=2)  # overwrite = false
    for n in range(3):
        _finish(settings, lines, container=f"app{n}")
    runs = runstore.runs_of(runstore.image_dir(tmp_path, IMAGE))
    assert [r.name.split("Z-")[1] for r in runs] == ["app1", "app2"]
    assert lines[-2].endswith("(3 files, complete, dropped 1 oldest) for app2")
    assert lines[-1].startswith("recording app2 (StopContainer) not saved: ")  # the pair was app0's
    assert sum(line.startswith("kept run") for line in lines) == 3


def test_keep_runs_0_keeps_none_and_an_empty_recording_is_no_run(tmp_path: Path) -> None:
    lines: list[str] = []
    _finish(RecordSettings(tmp_path, keep_runs=0), lines)
    _finish(RecordSettings(tmp_path, overwrite=True), lines, files=[])
    assert not (tmp_path / runstore.RUNS_DIR).exists()
    assert not any(line.startswith("kept run") for line in lines)


def test_a_run_that_cannot_be_kept_is_one_line_and_the_pair_is_still_saved(tmp_path: Path) -> None:
    (tmp_path / ".nydus-top").write_text("not a directory")
    lines: list[str] = []
    _finish(RecordSettings(tmp_path), lines)
    assert lines[0].startswith("run of app NOT KEPT: ") and "Not a directory" in lines[0]
    assert lines[1] == f"saved {tmp_path}/team/app:1 (3 files, StopContainer) for app"


def test_a_run_names_the_files_the_container_created_at_runtime(tmp_path: Path) -> None:
    from nydus_top.tracing.overlay import OverlayRoot

    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for root, path in ((lower, "bin/app"), (lower, "lib/libc.so"), (lower, "etc/app.conf"), (upper, "tmp/new")):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("x")
    lines: list[str] = []
    persist = tmp_path / "persist"
    _finish(RecordSettings(persist), lines, overlay=OverlayRoot(str(upper), (str(lower),)),
            files=[*FILES, ("/tmp/new", 1, 400)])
    (run,) = runstore.runs_of(runstore.image_dir(persist, IMAGE))
    assert lines[0] == f"kept run {run} (4 files, complete, 1 created at runtime) for app"
    meta = load_list(run).meta
    assert meta is not None and meta.runtime == ("/tmp/new",)


def test_runtime_created_paths_in_a_run_are_bounded(tmp_path: Path) -> None:
    from nydus_top.lists import meta as listmeta

    class Everything:
        def upper_only(self, paths):  # an overlay where every file is new
            return list(paths)

    files = [(f"/tmp/{n:04d}-" + "x" * 1000, 1, n) for n in range(300)]  # ~300 KiB of paths
    lines: list[str] = []
    _finish(RecordSettings(tmp_path), lines, overlay=Everything(), files=files)
    (run,) = runstore.runs_of(runstore.image_dir(tmp_path, IMAGE))
    meta = load_list(run).meta
    kept = len(meta.runtime)  # type: ignore[union-attr]
    assert 0 < kept < 300 and sum(len(p) + 4 for p in meta.runtime) <= listmeta.RUNTIME_MAX_BYTES  # type: ignore[union-attr]
    assert lines[0].endswith(f"(300 files, complete, {kept} created at runtime and {300 - kept} more not named "
                             "(limit of 262144 bytes)) for app")
    assert listmeta.limit_runtime(["/a", "/b"]) == (("/a", "/b"), 0)


def test_runtime_created_lookups_across_batches_keep_order_and_count(tmp_path: Path) -> None:
    from nydus_top.lists import meta as listmeta
    from nydus_top.recording.recorder import _LOOKUP_BATCH

    class EveryOther:
        def __init__(self) -> None:
            self.batches: list[int] = []

        def upper_only(self, paths):
            self.batches.append(len(paths))
            return [p for p in paths if int(p[6:11]) % 2 == 0]

    overlay = EveryOther()
    files = [(f"/data/{n:05d}-" + "y" * 100, 1, n) for n in range(2 * _LOOKUP_BATCH + 10)]
    lines: list[str] = []
    _finish(RecordSettings(tmp_path), lines, overlay=overlay, files=files)
    assert overlay.batches == [_LOOKUP_BATCH, _LOOKUP_BATCH, 10]
    meta = load_list(runstore.runs_of(runstore.image_dir(tmp_path, IMAGE))[0]).meta
    runtime = meta.runtime  # type: ignore[union-attr]
    created = [p for p, _, _ in files if int(p[6:11]) % 2 == 0]
    assert list(runtime) == created[: len(runtime)] and len(runtime) < len(created)
    assert sum(len(p) + 4 for p in runtime) <= listmeta.RUNTIME_MAX_BYTES
    assert f"{len(runtime)} created at runtime and {len(created) - len(runtime)} more not named" in lines[0]


def test_only_complete_lists_are_handed_on_for_pushing(tmp_path: Path) -> None:
    handed: list[tuple[Path, str]] = []
    lines: list[str] = []
    _finish(RecordSettings(tmp_path, overwrite=True), lines, problems=("mark was late",),
            on_saved=lambda path, image: handed.append((path, image)))
    assert handed == []  # the possibly incomplete list is saved beside the pair, never pushed
    _finish(RecordSettings(tmp_path, overwrite=True), lines, on_saved=lambda path, image: handed.append((path, image)))
    assert handed == [(tmp_path / "team" / "app:1", IMAGE)]


def test_another_registrys_image_of_the_same_path_never_counts_as_recorded(tmp_path: Path) -> None:
    from nydus_top.model.node import Container, ContainerState, Pod
    from nydus_top.recording.recorder import Planner

    lines: list[str] = []
    settings = RecordSettings(tmp_path, keep_runs=2)  # overwrite = false
    for n in range(2):  # evil.local's image: its pair and keep_runs runs
        _finish(settings, lines, container=f"evil{n}", image="evil.local/team/app:1")
    pod = Pod("p1", "web", "prod", "uid-1")
    good = Container("c1", pod.id, "app", "good.local/team/app:1", ContainerState.CREATED, pid=42)
    plan, reason = Planner(settings).plan(pod, good)
    assert plan is not None and not plan.pair, reason  # recorded as a run; the pair stays evil.local's
    evil = Container("c2", pod.id, "app", "evil.local/team/app:1", ContainerState.CREATED, pid=43)
    assert Planner(settings).plan(pod, evil) == (
        None, f"{tmp_path}/team/app:1 exists (overwrite = false); 2 runs of it kept (keep_runs = 2)")
    for n in range(2):
        _finish(settings, lines, container=f"good{n}", image="good.local/team/app:1")
    assert Planner(settings).plan(pod, good) == (  # its own runs count, and the pair is named as evil.local's
        None, f"{tmp_path}/team/app:1 exists, the list of evil.local/team/app:1 (overwrite = false); "
        "2 runs of it kept (keep_runs = 2)")
    runs = runstore.runs_of(runstore.image_dir(tmp_path, "good.local/team/app:1"))
    assert [run.name.split("Z-")[1] for run in runs] == ["good0", "good1"]
