"""The image an operator means by a short name, among the images that have runs here.

Runs are kept per full reference (registry host included); an operator types ``demo:1`` for
``nydus-top.local/demo:1``. :func:`resolve_image` works on the list of full references alone, so
it holds whatever the run store's directory layout; :func:`images_here` makes that list from the
runs' own metadata. Pure apart from :func:`images_here`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from nydus_top.imageref import ImageRefError, parse_image_ref
from nydus_top.lists import meta as listmeta
from nydus_top.runs import store as runstore

MAX_LISTED = 10  # candidates an error message names, at most ("and N more" for the rest)


class ImageNameError(ValueError):
    """A name that means no image here, or more than one; the message is one line."""


class UnknownImageError(ImageNameError):
    """No image with runs here matches the name."""


class AmbiguousImageError(ImageNameError):
    """Several images with runs here match the name; the message names them."""


def _repository(reference: str) -> str:
    """*reference* without its tag and digest (a registry port stays)."""
    name = reference.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def _has_version(name: str) -> bool:
    return "@" in name or ":" in name.rpartition("/")[2]


def _normal(reference: str) -> str:
    try:
        return str(parse_image_ref(reference))
    except ImageRefError:
        return reference


def _ends_with(text: str, name: str) -> bool:
    return text == name or text.endswith("/" + name)


def matches(name: str, candidate: str) -> bool:
    """Whether *name* can mean *candidate*: the same reference (``nginx`` is
    ``docker.io/library/nginx:latest``), or its trailing path components (``demo:1`` is
    ``nydus-top.local/demo:1``); a name without tag or digest matches any tag of the repository."""
    if _normal(name) == _normal(candidate):
        return True
    if _has_version(name):
        return _ends_with(candidate, name)
    return _ends_with(_repository(candidate), name)


def _listed(references: Sequence[str]) -> str:
    shown = ", ".join(references[:MAX_LISTED])
    more = len(references) - MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def resolve_image(name: str, candidates: Iterable[str]) -> str:
    """The one full reference among *candidates* that *name* means.

    An exact match wins; otherwise *name* must match exactly one candidate (see :func:`matches`).
    Raises UnknownImageError (one line, naming the images that have runs) or AmbiguousImageError
    (naming the full references it could mean)."""
    known = sorted(set(candidates))
    if name in known:
        return name
    found = [c for c in known if matches(name, c)]
    if len(found) == 1:
        return found[0]
    if found:
        raise AmbiguousImageError(f"{name} could mean {_listed(found)}: give the full reference")
    if not known:
        raise UnknownImageError(f"no runs of {name} here (no image has runs)")
    raise UnknownImageError(f"no runs of {name} here (images with runs: {_listed(known)})")


def images_here(persist_dir: str | os.PathLike[str]) -> list[str]:
    """The full reference of every image with runs under *persist_dir*, sorted: the image the
    newest run of each run directory names in its metadata (a run without metadata naming an
    image is left out: it names no registry). Metadata that is unreadable, not a regular file or a
    symlink is skipped."""
    root = Path(persist_dir) / runstore.RUNS_DIR
    found: set[str] = set()
    for directory, _subdirs, _files in os.walk(root):  # never follows symlinks
        runs = runstore.runs_of(directory)
        if not runs:
            continue
        meta = _read_meta(listmeta.path_for(runs[-1]))
        if meta is not None and meta.image:
            found.add(meta.image)
    return sorted(found)


def _read_meta(path: Path) -> listmeta.ListMeta | None:
    """A run's metadata, or None: missing, unreadable, not a regular file (a FIFO would block the
    caller), a symlink, or not valid metadata."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(listmeta.MAX_BYTES + 1)
        return listmeta.decode(data, name=str(path))
    except (OSError, listmeta.MetaError):
        return None
    finally:
        os.close(fd)
