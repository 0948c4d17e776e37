"""Every recorded start of an image kept as a run, beside (never instead of) the optimizer's pair.

Layout: ``<persist_dir>/.nydus-top/image-runs/<full reference>/<when>-<container>`` plus its
``.csv``, ``.nydus-top.json`` and, recorded with ranges, ``.ranges.json`` (a run is an ordinary
saved list with metadata). The full reference is the normalised one, registry host included
(``registry.local:5000/team/app:1``, ``docker.io/library/nginx:latest``, ``host/app@sha256:...``
when pinned by digest), each ``/`` a directory level: images of two registries never share runs.
``<when>`` is UTC with microseconds, so names sort oldest first; at most ``keep`` runs stay per
image, the oldest are removed when a new one is saved.

Runs kept by earlier versions under ``.nydus-top/runs/<repo dir>/<name>:<tag>`` (no registry host)
are never counted as any image's: :func:`legacy_dir` names where an image's would be, so a command
can say they were left out.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from nydus_top.fs import confined
from nydus_top.imageref import ImageRefError, parse_image_ref
from nydus_top.lists import meta as listmeta
from nydus_top.lists.files import RANGES_SUFFIX, ListFileError, SaveResult, result_name, save_list
from nydus_top.lists.meta import ListMeta
from nydus_top.lists.ranges import DEFAULT_GRANULARITY, RangeBook
from nydus_top.model.records import Listable

RUNS_DIR = Path(".nydus-top") / "image-runs"
LEGACY_RUNS_DIR = Path(".nydus-top") / "runs"  # before runs were keyed by the registry host too
DEFAULT_KEEP = 20
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_RUN_NAME = re.compile(r"[0-9]{8}T[0-9]{6}\.[0-9]{6}Z-[A-Za-z0-9_-]{1,64}")
_SIBLINGS = (".csv", listmeta.SUFFIX, RANGES_SUFFIX)
_RUN_FILE = re.compile(_RUN_NAME.pattern + "(?:" + "|".join(re.escape(s) for s in _SIBLINGS) + ")?")


def image_key(image: str) -> str:
    """The full normalised reference runs of *image* are kept and counted under (registry host
    included; the digest too when the reference has one). Raises ImageRefError."""
    return str(parse_image_ref(image))


def same_image(a: str, b: str) -> bool:
    """Whether two references name the same image (normalised, registry host included); False
    when either is not a valid reference."""
    try:
        return image_key(a) == image_key(b)
    except ImageRefError:
        return False


def image_dir(persist_dir: str | os.PathLike[str], image: str) -> Path:
    """Where the runs of *image* live. Raises ImageRefError for an invalid reference."""
    key = image_key(image)
    root = os.path.normpath(Path(persist_dir) / RUNS_DIR)
    target = os.path.normpath(os.path.join(root, key))
    # Belt and braces: the grammar has no empty, "." or ".." component and no leading "/".
    if not target.startswith(root + "/") or os.path.relpath(target, root) != key:
        raise ImageRefError(f"image {image!r} would escape {root}")
    return Path(target)


def legacy_dir(persist_dir: str | os.PathLike[str], image: str) -> Path:
    """Where an earlier version kept the runs of *image* (host-less: shared by every registry's
    image of that path and tag). Raises ImageRefError."""
    directory, name = result_name(image)
    return Path(persist_dir) / LEGACY_RUNS_DIR / directory / name


def run_name(container: str, when: float | None = None) -> str:
    """``<UTC time with microseconds>Z-<container>``; unsafe characters become ``_``."""
    now = time.time() if when is None else when
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1e6) % 1_000_000:06d}Z"
    label = _UNSAFE.sub("_", container)[:64] or "container"
    return f"{stamp}-{label}"


def runs_of(directory: str | os.PathLike[str]) -> list[Path]:
    """The runs saved in *directory* (an image's run directory), oldest first."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):  # a file planted where the directory goes holds no runs
        return []
    return [Path(directory) / name for name in sorted(names) if _RUN_NAME.fullmatch(name)]


def save_run(persist_dir: str | os.PathLike[str], entries: Iterable[Listable], meta: ListMeta, *,
             keep: int = DEFAULT_KEEP, readable: bool = False, when: float | None = None,
             ranges: RangeBook | None = None, granularity: int = DEFAULT_GRANULARITY,
             ) -> tuple[SaveResult, list[Path]]:
    """Save one run of ``meta.image`` (with *ranges*, its range list too) and drop the oldest runs
    beyond *keep*: (saved, dropped).

    Raises ImageRefError for an invalid image, ListFileError when the run cannot be saved.
    """
    directory = image_dir(persist_dir, meta.image)
    target = directory / run_name(meta.container or meta.container_id, when)
    result = save_list(entries, target, readable=readable, meta=meta, root=persist_dir,  # no symlink followed
                       ranges=ranges, granularity=granularity)
    return result, prune(directory, keep, persist_dir)


def prune(directory: str | os.PathLike[str], keep: int, root: str | os.PathLike[str]) -> list[Path]:
    """Remove the oldest runs in *directory* beyond *keep* (with their sibling files), and the
    temporary files interrupted saves of runs left (each run has a name of its own, so no later
    save of it would; see nydus_top.fs.confined.remove_stale_temps).

    The directory is reached from *root* (persist_dir) without following a symlink and its files
    are removed by name in its fd: a directory swapped for a symlink meanwhile never makes us
    remove files elsewhere (ListFileError, one line)."""
    try:
        dfd = confined.open_existing_dir(directory, root, f"remove old runs in {directory}")
    except confined.ConfinedError as err:
        raise ListFileError(str(err)) from None
    if dfd is None:
        return []
    try:
        names = sorted(name for name in os.listdir(dfd) if _RUN_NAME.fullmatch(name))
        dropped = names[: max(0, len(names) - max(keep, 1))]
        for run in dropped:
            for name in (run, *(run + suffix for suffix in _SIBLINGS)):
                try:
                    os.unlink(name, dir_fd=dfd)
                except FileNotFoundError:
                    pass
        confined.remove_stale_temps(dfd, _RUN_FILE)
    finally:
        os.close(dfd)
    return [Path(directory) / run for run in dropped]
