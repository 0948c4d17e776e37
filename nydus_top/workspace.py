"""The session's traces, in one place: the only owner of every run of this session.

The app's screens ask the workspace and call it; they keep no trace state of their own.

- ``attach``/``arm``/``load`` add a run (each gets a stable ``id`` and, when armed, its
  ``ArmSpec``); ``stop`` ends one; ``merge`` appends another run's or a list file's paths.
- ``drain()`` moves queued tracer batches into the lists (UI thread, once a tick) and returns
  the ids of the runs that changed, which is what the screens repaint.
- ``status`` is the TRACE column of the Containers screen; ``unsaved`` the runs a quit would
  lose (running, armed, or edited since their last ``save``).

Data flows one way: tracer threads feed the runs' inboxes, ``drain`` moves that into the
model, screens read it; control comes back only through these methods.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from nydus_top.backend import ArmSpec, Backend
from nydus_top.listfile import ListFileError, LoadedList, SaveResult, load_list, result_paths, save_list, within
from nydus_top.listmeta import ListMeta
from nydus_top.node import Container, Pod
from nydus_top.records import Listable
from nydus_top.startup import Selector
from nydus_top.tracerun import Target, TraceRun, TraceState

LIVE_STATES = (TraceState.RUNNING, TraceState.ARMED)
DEFAULT_NAME = "nydus-top.list"  # saved under persist_dir when the image has no optimizer name


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

    def arm(self, spec: ArmSpec, image: str) -> TraceRun:
        """Trace the next start ``spec`` selects; ``image`` names the save path until then."""
        run = self._add(TraceRun(Target(spec.label, spec.image or image), state=TraceState.ARMED, arm=spec,
                                 from_start=True))
        try:
            self.backend.arm(spec, run)
        except Exception as err:  # noqa: BLE001 - shown on the run
            run.ended(f"cannot arm: {err}")
        return run

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
        run.files = len(run.items)
        run.bytes = sum(entry.size or 0 for entry in loaded.entries)
        self._saved[run.id] = (run.items.edits, path)
        return run

    def merge(self, into: TraceRun, source: TraceRun | Sequence[Listable]) -> int:
        """Append the paths of another run (in its curated order) or of a loaded list's entries
        that ``into`` does not have yet (one undo step). Returns how many were added."""
        if source is into:
            return 0
        entries = source.items.entries() if isinstance(source, TraceRun) else source
        return into.items.merge(entries)

    def stop(self, run: TraceRun) -> bool:
        """Stop a tracing or armed run (``ended`` follows); False if it was not live."""
        if run.state not in LIVE_STATES:
            return False
        run.stop()
        return True

    # -- the UI tick -----------------------------------------------------------------------

    def drain(self) -> set[int]:
        """Move queued records into the lists and the rates on to the backend's clock; the ids
        of runs whose rows, rates or state changed."""
        changed: set[int] = set()
        now = self.backend.now()
        for run in self._runs:
            if run.drain() | run.advance(now) or self._shown.get(run.id) is not run.state:
                self._shown[run.id] = run.state
                changed.add(run.id)
        return changed

    def status(self, pods: Mapping[str, Pod], containers: Iterable[Container]) -> dict[str, str]:
        """Container id -> TRACE column: its live (else newest) trace with its file count, or
        "armed" for a container an armed run would take at its next start."""
        status: dict[str, str] = {}
        for run in self._runs:
            cid = run.target.container_id
            if cid and run.state is not TraceState.LOADED:
                if run.state is TraceState.RUNNING or cid not in status:
                    status[cid] = f"{run.state.value} {run.files}"
        selectors = [self._selector(run.arm) for run in self._runs
                     if run.state is TraceState.ARMED and run.arm is not None]
        if selectors:
            for c in containers:
                pod = pods.get(c.pod_id)
                if pod is not None and c.id not in status and any(s(pod, c) is not None for s in selectors):
                    status[c.id] = "armed"
        return status

    def _selector(self, spec: ArmSpec) -> Selector:
        selector = self._selectors.get(spec)
        if selector is None:
            selector = self._selectors[spec] = spec.selector()
        return selector

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
                lost.append(Unsaved(run, "tracing"))
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
        return replace(meta, complete=meta.complete and not reasons, incomplete="; ".join(reasons)).with_origin()

    def snapshot(self, run: TraceRun) -> tuple[array, int]:
        """(rows, edits) of the list now: what a save in another thread writes and remembers."""
        return run.items.frozen_rows(), run.items.edits

    def save(self, run: TraceRun, path: str, *, overwrite: bool,
             snapshot: tuple[array, int] | None = None, meta: ListMeta | None = None) -> SaveResult:
        """Save the run's curated list (or a ``snapshot`` of it; any thread) with its identity file
        (``meta``, else the run's own: :meth:`list_meta`), and remember it as saved. Raises
        ListExistsError (nothing written) or ListFileError."""
        rows, edits = snapshot or self.snapshot(run)
        if meta is None:
            self.remember_identity(run)
            meta = self.list_meta(run)
        config = self.backend.config
        # Under persist_dir no symlink is followed; a path typed elsewhere is the operator's choice.
        result = save_list(run.items.entries(rows), path, readable=bool(config.readable),
                           overwrite=overwrite, meta=meta, root=within(path, config.persist_dir))
        self._saved[run.id] = (edits, path)
        return result

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
        """Disarm and stop every live run, then the backend; never blocks on a tracer."""
        for run in self._runs:
            if run.state is TraceState.ARMED:
                run.stop()
            run.close()
        self.backend.close()
