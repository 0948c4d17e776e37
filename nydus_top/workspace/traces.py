"""The session's traces, in one place: the only owner of every run of this session.

The app's screens ask the workspace and call it; they keep no trace state of their own.

- ``attach``/``arm``/``load`` add a run (each gets a stable ``id`` and, when armed, its
  ``ArmSpec``); the backend runs a range tracer beside attached and armed traces when ranges
  are enabled, and a loaded list brings its saved ranges; ``stop`` ends one; ``merge`` appends
  another run's or a list file's paths (and their byte ranges).
- ``drain()`` moves queued tracer batches into the lists (UI thread, once a tick) and returns
  the ids of the runs that changed, which is what the screens repaint.
- ``status`` is the TRACE column of the Containers screen; ``unsaved`` the runs a quit would
  lose (running, armed, or edited since their last ``save``).
- Every armed start that ended with files is kept in the run store (``keep_runs`` per image,
  see :mod:`nydus_top.runs.store`); ``arm(..., starts=N)`` arms the next N starts at once.
- ``load_runs`` opens a set of runs (recorded starts) as one list: every file of any run in
  consensus order, its stability (``runset``) beside; ``keep_share`` and ``sort_by_share`` curate
  it like any list, and a save writes the consensus with ``runs`` in its metadata.

Data flows one way: tracer threads feed the runs' inboxes, ``drain`` moves that into the
model, screens read it; control comes back only through these methods.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from nydus_top.fs.confined import within
from nydus_top.lists import meta as listmeta
from nydus_top.lists.files import (
    ListFileError,
    LoadedList,
    SaveResult,
    load_list,
    range_list,
    result_paths,
    save_list,
    save_range_list,
)
from nydus_top.lists.meta import ListMeta
from nydus_top.lists.ranges import RangeBook
from nydus_top.model.node import Container, Pod
from nydus_top.model.records import Listable
from nydus_top.model.trace import Target, TraceRun, TraceState
from nydus_top.recording.readiness import OPERATOR
from nydus_top.runs import runset
from nydus_top.runs import store as runstore
from nydus_top.runs.consensus import DEFAULT_MIN_SHARE, as_entries
from nydus_top.runs.runset import Run, RunSet
from nydus_top.text import counted
from nydus_top.tracing.arming import Selector
from nydus_top.workspace.backend import ArmSpec, Backend

LIVE_STATES = (TraceState.RUNNING, TraceState.ARMED)
DEFAULT_NAME = "nydus-top.list"  # saved under persist_dir when the image has no optimizer name
MAX_STARTS = 100  # "the next N starts" armed at once at most


@dataclass(frozen=True, slots=True)
class Unsaved:
    """A run a quit would lose, and why ("tracing", "armed", "unsaved edits")."""

    run: TraceRun
    why: str


class Workspace:
    """Every trace of this session, in the order they were made (see the module docstring).

    Used from the UI thread only; the tracer side reaches a run through its inbox.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._runs: list[TraceRun] = []
        self._ids = itertools.count(1)
        self._shown: dict[int, TraceState] = {}  # run id -> state at the last drain
        self._saved: dict[int, tuple[int, str]] = {}  # run id -> (edits when saved, path)
        self._selectors: dict[ArmSpec, Selector] = {}  # built once per spec, not per tick
        self._sets: dict[int, RunSet] = {}  # run id -> the runs a stability list was counted from
        self._kept: dict[int, str] = {}  # run id -> its run in the run store ("" if it could not be kept)
        self.notes: list[str] = []  # one line per start kept or not kept, newest last (bounded)

    # -- the runs --------------------------------------------------------------------------

    @property
    def runs(self) -> tuple[TraceRun, ...]:
        return tuple(self._runs)

    def get(self, run_id: int) -> TraceRun | None:
        for run in self._runs:
            if run.id == run_id:
                return run
        return None

    def live_run(self, container_id: str) -> TraceRun | None:
        """The newest trace of this container that is still tracing, if any."""
        for run in reversed(self._runs):
            if run.target.container_id == container_id and run.state is TraceState.RUNNING:
                return run
        return None

    def _add(self, run: TraceRun) -> TraceRun:
        run.id = next(self._ids)
        self._runs.append(run)
        return run

    # -- operator's actions ----------------------------------------------------------------

    def attach(self, container_id: str, label: str, image: str) -> TraceRun:
        """Trace a running container now; a tracer that cannot start leaves a failed run."""
        run = self._add(TraceRun(Target(label, image, container_id)))
        try:
            self.backend.attach(container_id, run)
        except Exception as err:  # noqa: BLE001 - any tracer failure is shown, never fatal
            run.ended(f"cannot trace: {err}")
        return run

    def arm(self, spec: ArmSpec, image: str, starts: int = 1) -> TraceRun:
        """Trace the next start ``spec`` selects (the next ``starts`` starts: one run each, armed
        at once, taken in order); ``image`` names the save path until then. Returns the first."""
        if not 1 <= starts <= MAX_STARTS:
            raise ValueError(f"starts must be from 1 to {MAX_STARTS}, got {starts}")
        runs = []
        for n in range(starts):
            label = spec.label if starts == 1 else f"{spec.label} ({n + 1} of {starts})"
            run = self._add(TraceRun(Target(label, spec.image or image), state=TraceState.ARMED, arm=spec,
                                     from_start=True))
            try:
                self.backend.arm(spec, run)
            except Exception as err:  # noqa: BLE001 - shown on the run
                run.ended(f"cannot arm: {err}")
            runs.append(run)
        return runs[0]

    def armed_left(self, spec: ArmSpec) -> int:
        """Starts of ``spec`` still armed (counts down as they come)."""
        return sum(1 for run in self._runs if run.state is TraceState.ARMED and run.arm == spec)

    @staticmethod
    def read(path: str) -> LoadedList:
        """Read a saved list (any thread); raises ListFileError. ``load`` adds it as a run."""
        return load_list(path)

    def load(self, path: str, loaded: LoadedList) -> TraceRun:
        """A list read from ``path`` as a new run without a tracer (saved as is: not dirty)."""
        image = loaded.meta.image if loaded.meta is not None else ""
        run = self._add(TraceRun(Target(f"list {path}", image, path=path), state=TraceState.LOADED,
                                 meta=loaded.meta))
        run.items.extend(loaded.entries)
        if loaded.ranges is not None:
            run.items.set_traced_ranges(loaded.ranges)
        run.files = len(run.items)
        run.bytes = sum(entry.size or 0 for entry in loaded.entries)
        self._saved[run.id] = (run.items.edits, path)
        return run

    def merge(self, into: TraceRun, source: TraceRun | Sequence[Listable], ranges: RangeBook | None = None) -> int:
        """Append the paths of another run (in its curated order) or of a loaded list's entries
        that ``into`` does not have yet, and their byte ranges (the other run's, or ``ranges``
        of the list) by union (one undo step). Returns how many were added."""
        if source is into:
            return 0
        if isinstance(source, TraceRun):
            entries: Sequence[Listable] = source.items.entries()
            ranges = source.items.ranges() if source.items.has_ranges() else None
        else:
            entries = source
        return into.items.merge(entries, ranges)

    def stop(self, run: TraceRun) -> bool:
        """Stop a tracing or armed run (``ended`` follows); False if it was not live."""
        if run.state not in LIVE_STATES:
            return False
        run.stop()
        return True

    # -- the UI tick -----------------------------------------------------------------------

    def drain(self) -> set[int]:
        """Move queued records into the lists and the rates on to the backend's clock; the ids
        of runs whose rows, rates or state changed. An armed start that has ended is kept in the
        run store here (once), when its inbox is drained (what it still holds, the end of its
        start-up too, is the run's)."""
        changed: set[int] = set()
        now = self.backend.now()
        for run in self._runs:
            if run.drain() | run.advance(now) or self._shown.get(run.id) is not run.state:
                self._shown[run.id] = run.state
                changed.add(run.id)
                if run.state in (TraceState.STOPPED, TraceState.FAILED) and not run.queued and self._keepable(run):
                    self.keep(run)
        return changed

    def status(self, pods: Mapping[str, Pod], containers: Iterable[Container]) -> dict[str, str]:
        """Container id -> TRACE column: its live (else newest) trace with its file count, or
        "armed" for a container an armed run would take at its next start ("armed ×N" when the
        next N starts are armed: it counts down)."""
        status: dict[str, str] = {}
        for run in self._runs:
            cid = run.target.container_id
            if cid and run.state is not TraceState.LOADED:
                if run.state is TraceState.RUNNING or cid not in status:
                    status[cid] = f"{run.state.value} {run.files}"
        armed: dict[ArmSpec, int] = {}
        for run in self._runs:
            if run.state is TraceState.ARMED and run.arm is not None:
                armed[run.arm] = armed.get(run.arm, 0) + 1
        if armed:
            selectors = [(self._selector(spec), left) for spec, left in armed.items()]
            for c in containers:
                pod = pods.get(c.pod_id)
                if pod is None:
                    continue
                left = sum(n for s, n in selectors if s(pod, c) is not None)
                if left:
                    armed_text = "armed" if left == 1 else f"armed ×{left}"
                    status[c.id] = f"{status[c.id]} · {armed_text}" if c.id in status else armed_text
        return status

    def _selector(self, spec: ArmSpec) -> Selector:
        selector = self._selectors.get(spec)
        if selector is None:
            selector = self._selectors[spec] = spec.selector()
        return selector

    # -- runs: recorded starts kept, counted together ---------------------------------------

    def _keepable(self, run: TraceRun) -> bool:
        """An armed start that was traced and has files, not kept yet."""
        return (run.arm is not None and bool(run.target.container_id) and run.items.seen > 0
                and run.id not in self._kept and self.backend.config.keep_runs > 0)

    def keep(self, run: TraceRun) -> str:
        """Keep a traced start in the run store (every file it read, in first-access order, not
        the curated list). Returns the run's path, "" when it could not be kept (noted why)."""
        config = self.backend.config
        runtime, _ = listmeta.limit_runtime(run.items.entry(i).path for i in sorted(run.items.flagged))
        meta = replace(self._identity(run), runtime=runtime)  # what the operator flagged (r)
        items = run.items
        entries = items.entries(items.traced())
        try:
            result, _ = runstore.save_run(config.persist_dir, entries, meta, keep=config.keep_runs,
                                          readable=bool(config.readable), granularity=config.granularity,
                                          ranges=items.ranges() if items.has_ranges() else None)
        except (ValueError, ListFileError) as err:  # ImageRefError is a ValueError
            self._kept[run.id] = ""
            self._note(f"{run.target.label}: run not kept: {err}")
            return ""
        self._kept[run.id] = str(result.paths[0])
        self._note(f"{run.target.label}: kept as run {result.paths[0]} ({counted(result.written, 'file')})")
        return self._kept[run.id]

    def kept_path(self, run: TraceRun) -> str:
        """Where this start was kept in the run store; "" if it was not (yet)."""
        return self._kept.get(run.id, "")

    def _note(self, line: str) -> None:
        self.notes.append(line)
        del self.notes[:-50]

    def _identity(self, run: TraceRun) -> ListMeta:
        """A kept start's metadata: the container as the node model has it, else as its start
        reported it (a short start may be gone from the model before it is kept)."""
        self.remember_identity(run)
        meta = run.meta or ListMeta()
        problems = [why for why, bad in (("mark was late", run.possibly_incomplete),
                                         (f"{len(run.items.overflows)} overflow records", bool(run.items.overflows)),
                                         (run.error, run.state is TraceState.FAILED)) if bad]
        return ListMeta(image=meta.image or run.target.image, digest=meta.digest,
                        container=meta.container or run.target.label, container_id=run.target.container_id,
                        pod=meta.pod, complete=not problems, incomplete="; ".join(problems), cut=meta.cut,
                        cut_detail=meta.cut_detail, cut_after=meta.cut_after, cut_us=meta.cut_us).with_origin()

    @staticmethod
    def read_runs(persist_dir: str | Path, image: str) -> tuple[list[Run], list[str]]:
        """The runs of ``image`` kept on disk, and warnings (any thread). Raises ImageRefError or
        ListFileError."""
        return runset.read_runs(persist_dir, image)

    def load_runs(self, image: str, runs: Sequence[Run], *, min_share: float = DEFAULT_MIN_SHARE) -> TraceRun:
        """The runs as one list (tracer-less, not dirty): every file any run read, in consensus
        order, flagged where a run saw it created at runtime; then the files below ``min_share``
        go (one undo step, so ``u`` shows them all)."""
        counted = runset.count(image, runs)
        for known in self._runs:  # the same runs opened again: their list as it was left
            same = self._sets.get(known.id)
            if same is not None and (same.image, same.names) == (counted.image, counted.names):
                return known
        run = self._add(TraceRun(Target(f"runs of {counted.image} ({counted.runs})", counted.image),
                                 state=TraceState.LOADED))
        run.items.extend(as_entries(counted.files))
        run.files = len(run.items)
        run.bytes = sum(f.size or 0 for f in counted.files)
        run.items.set_flags(counted.runtime_created())
        if counted.ranges is not None:  # the union of the runs' byte ranges
            run.items.set_traced_ranges(counted.ranges)
        self._sets[run.id] = counted
        if min_share > 0:
            self.keep_share(run, min_share)
        self._saved[run.id] = (run.items.edits, "")
        return run

    def runset(self, run: TraceRun) -> RunSet | None:
        """The runs a stability list was counted from (None for other lists)."""
        return self._sets.get(run.id)

    def keep_share(self, run: TraceRun, min_share: float) -> int:
        """Remove the rows of files read in fewer than ``min_share`` of the runs (one undo step)."""
        counted = self._sets[run.id]
        items = run.items
        drop = [pos for pos in range(len(items)) if runset.below(counted.by_path[items[pos].path], min_share)]
        return items.delete(drop)

    def sort_by_share(self, run: TraceRun, by_share: bool) -> bool:
        """Order by share (most runs first, then consensus order) or back to consensus order."""
        rank = {f.path: n for n, f in enumerate(self._sets[run.id].files)}
        files = self._sets[run.id].by_path
        if by_share:
            return run.items.sort(lambda path: (-files[path].seen, rank[path]))
        return run.items.sort(rank.__getitem__)

    # -- saving ----------------------------------------------------------------------------

    def is_dirty(self, run: TraceRun) -> bool:
        """Edited since its last save (a run never saved is dirty once edited at all)."""
        return run.items.edits != self._saved.get(run.id, (0, ""))[0]

    def saved_path(self, run: TraceRun) -> str:
        """Where this run was last saved (or loaded from); "" if never."""
        return self._saved.get(run.id, (0, ""))[1]

    def unsaved(self) -> list[Unsaved]:
        """The runs a quit would lose: still tracing or armed, or edited since their last save."""
        lost = []
        for run in self._runs:
            if run.state is TraceState.RUNNING:
                lost.append(Unsaved(run, "tracing, kept as a run" if run.arm is not None and self._keepable(run)
                                    else "tracing"))
            elif run.state is TraceState.ARMED:
                lost.append(Unsaved(run, "armed"))
            elif self.is_dirty(run):
                lost.append(Unsaved(run, "unsaved edits"))
        return lost

    def default_save_path(self, run: TraceRun) -> tuple[str, str]:
        """(path, note): where it was saved or loaded, else the optimizer's result path for its
        image under persist_dir, else persist_dir/nydus-top.list with a note why."""
        persist_dir = self.backend.config.persist_dir
        if self.saved_path(run):
            return self.saved_path(run), ""
        if run.target.path:
            return run.target.path, ""
        try:
            return str(result_paths(persist_dir, run.target.image).list), ""
        except ValueError as err:
            return str(Path(persist_dir) / DEFAULT_NAME), f"no optimizer name: {err}"

    def remember_identity(self, run: TraceRun) -> None:
        """Copy the traced container's identity (full image reference, names) into ``run.meta``
        while the node model still has the container: a save after it is gone keeps it."""
        cid = run.target.container_id
        if not cid or run.state is TraceState.LOADED:
            return
        pods, containers = self.backend.node.snapshot()
        container = containers.get(cid)
        if container is None:
            return
        pod = pods.get(container.pod_id)
        meta = run.meta or ListMeta()
        image = container.image or meta.image
        digest = image.partition("@")[2] if "@" in image else meta.digest
        run.meta = replace(meta, image=image, digest=digest, container=container.name, container_id=cid,
                           pod=f"{pod.namespace}/{pod.name}" if pod is not None else meta.pod)

    @staticmethod
    def list_meta(run: TraceRun) -> ListMeta:
        """The metadata a save of *run* writes: its identity and whether the list may miss files."""
        meta = run.meta or ListMeta()
        if not meta.image and run.target.image:
            meta = replace(meta, image=run.target.image)
        reasons = [meta.incomplete] if meta.incomplete else []
        if run.state is not TraceState.LOADED:
            if run.possibly_incomplete:
                reasons.append("mark was late")
            if not run.from_start:
                reasons.append("attached to a running container: start-up not traced")
            if run.items.overflows:
                reasons.append("kernel queue overflow")
        reasons = list(dict.fromkeys(reasons))
        if run.items.cut is not None:  # the operator ended start-up at a row
            path, elapsed = run.items.cut
            meta = replace(meta, cut=OPERATOR, cut_detail=path, cut_after=path, cut_us=elapsed)
        if run.state is not TraceState.LOADED:  # what this trace's range collector saw of mapped files
            mapped, unseen = run.mapped_bytes(), run.mapped_unobserved()
            cached, cache_unseen = run.cached_pages()
            if mapped or unseen or cached or cache_unseen:
                meta = replace(meta, mapped=mapped, unobserved=unseen, cached=cached, cache_unobserved=cache_unseen)
        return replace(meta, complete=meta.complete and not reasons, incomplete="; ".join(reasons)).with_origin()

    def snapshot(self, run: TraceRun) -> tuple[array[int], int]:
        """(rows, edits) of the list now: what a save in another thread writes and remembers."""
        return run.items.frozen_rows(), run.items.edits

    def save(self, run: TraceRun, path: str, *, overwrite: bool,
             snapshot: tuple[array[int], int] | None = None, meta: ListMeta | None = None) -> SaveResult:
        """Save the run's curated list (or a ``snapshot`` of it; any thread) with its identity file
        (``meta``, else the run's own: :meth:`list_meta`), and remember it as saved. Raises
        ListExistsError (nothing written) or ListFileError."""
        rows, edits = snapshot or self.snapshot(run)
        counted = self._sets.get(run.id)
        if counted is not None:  # a consensus: its runs in the metadata (their ranges are the list's)
            meta = meta or counted.meta()
        if meta is None:
            self.remember_identity(run)
            meta = self.list_meta(run)
        config, items = self.backend.config, run.items
        # Under persist_dir no symlink is followed; a path typed elsewhere is the operator's choice.
        result = save_list(items.entries(rows), path, readable=bool(config.readable), overwrite=overwrite, meta=meta,
                           ranges=items.ranges() if items.has_ranges() else None, granularity=config.granularity,
                           root=within(path, config.persist_dir))
        self._saved[run.id] = (edits, path)
        return result

    def save_range_list(self, run: TraceRun, path: str, rows: array[int] | None = None, *,
                        overwrite: bool = False) -> SaveResult:
        """Save the run's range list alone (of ``rows``, a ``frozen_rows()`` copy, in another
        thread): recorded ranges rounded out to [ranges] granularity, whole files where none are
        known. Raises ListExistsError (nothing written) or ListFileError."""
        config, items = self.backend.config, run.items
        return save_range_list(items.entries(rows), path, overwrite=overwrite, ranges=items.ranges(),
                               granularity=config.granularity, root=within(path, config.persist_dir))

    def range_list_unchanged(self, run: TraceRun, path: str, rows: array[int] | None = None) -> bool:
        """True when ``path`` holds exactly the range list a save of ``rows`` would write (as
        after ``s``, which writes it beside the list): nothing to overwrite, nothing to ask."""
        config, items = self.backend.config, run.items
        data, _ = range_list(items.entries(rows), items.ranges(), config.granularity)
        try:
            with open(path, "rb") as fh:
                return fh.read(len(data) + 1) == data
        except OSError:
            return False

    def save_unsaved(self) -> list[str]:
        """Save every run ``unsaved`` names (where it was saved before, else its default path,
        never overwriting a file it did not write). One line per run that could not be saved."""
        failed = []
        for item in self.unsaved():
            run = item.run
            if not len(run.items) and not self.is_dirty(run):  # armed, nothing traced yet
                continue
            path, _ = self.default_save_path(run)
            overwrite = bool(self.backend.config.overwrite) or path == self.saved_path(run)
            try:
                self.save(run, path, overwrite=overwrite)
            except ListFileError as err:
                failed.append(f"{run.target.label}: {err}")
        return failed

    # -- the end ---------------------------------------------------------------------------

    def close(self) -> None:
        """Disarm and stop every live run, then the backend; never blocks on a tracer. An armed
        start still tracing, or ended with batches still queued (a paused view), is kept as a run
        with what it has delivered so far."""
        for run in self._runs:
            if run.state is TraceState.ARMED:
                run.stop()
            elif run.arm is not None and (run.state is TraceState.RUNNING or run.queued):
                self._keep_at_close(run)
            run.close()
        self.backend.close()

    def _keep_at_close(self, run: TraceRun) -> None:
        """Take what the run's inbox holds now (not what keeps coming), then keep the start."""
        run.paused = False
        for _ in range(run.queued + 1):
            if not run.drain():
                break
        if self._keepable(run):
            self.keep(run)
