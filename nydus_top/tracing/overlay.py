"""Tell which traced files come from a container's image and which it created at runtime.

A container's root is an overlay mount: read-only image layers (``lowerdir=``) under a
writable ``upperdir=``. ``/proc/<pid>/mountinfo`` (mount points as that process sees them)
gives the root mount's options; the layer paths in them are host paths, written by containerd
in the host mount namespace. Paths from the container are untrusted: lookups in the layers
never follow symlinks and never leave the layer directory.
"""

from __future__ import annotations

import enum
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass


class OverlayError(Exception):
    """The process has no overlay root (exited, not a container, unreadable mountinfo)."""


class Origin(enum.Enum):
    IMAGE = "image"  # present in an image layer (possibly modified at runtime)
    UPPER = "upper"  # only in the upper directory: created by the container at runtime
    ELSEWHERE = "elsewhere"  # in neither: another mount (volume, /proc, /dev) or deleted since


@dataclass(frozen=True, slots=True)
class MountInfo:
    """One line of /proc/<pid>/mountinfo, unescaped."""

    mount_id: int
    parent_id: int
    mount_point: str
    fstype: str
    source: str
    super_options: str


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """Undo the kernel's octal escapes (``\\040`` for space) in a mountinfo field."""
    raw = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)
    return raw.encode("latin-1").decode("utf-8", "surrogateescape")


def parse_mountinfo(text: str) -> list[MountInfo]:
    """Parse mountinfo text (see proc(5)); malformed lines are skipped."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(" "), right.split(" ")
        if not sep or len(fields) < 6 or len(tail) < 3:
            continue
        try:
            ids = int(fields[0]), int(fields[1])
        except ValueError:
            continue
        mounts.append(MountInfo(ids[0], ids[1], _unescape(fields[4]), tail[0], _unescape(tail[1]), tail[2]))
    return mounts


def _split_options(options: str) -> dict[str, str]:
    """overlayfs options: commas and colons inside paths are backslash-escaped or octal."""
    out: dict[str, str] = {}
    for item in re.split(r"(?<!\\),", options):
        key, _, value = item.partition("=")
        out[key] = value
    return out


def _layer_list(value: str) -> tuple[str, ...]:
    """Split ``lowerdir=`` on unescaped colons (``::`` separates data-only layers)."""
    parts = re.split(r"(?<!\\):", value)
    return tuple(_unescape(p.replace("\\:", ":").replace("\\,", ",")) for p in parts if p)


@dataclass(frozen=True, slots=True)
class OverlayRoot:
    """The layers of one container's root filesystem (host paths)."""

    upperdir: str
    lowerdirs: tuple[str, ...]  # topmost first

    @classmethod
    def from_mountinfo(cls, text: str) -> OverlayRoot:
        """The overlay mounted on ``/`` (the last one if stacked). Raises OverlayError."""
        roots = [m for m in parse_mountinfo(text) if m.mount_point == "/"]
        if not roots or roots[-1].fstype != "overlay":
            kind = roots[-1].fstype if roots else "nothing"
            raise OverlayError(f"the root filesystem is {kind}, not overlay")
        options = _split_options(roots[-1].super_options)
        upper = _layer_list(options.get("upperdir", ""))
        lowers = _layer_list(options.get("lowerdir", ""))
        if len(upper) != 1 or not lowers:
            raise OverlayError("the root overlay has no upper directory (read-only rootfs)")
        return cls(upper[0], lowers)

    @classmethod
    def for_pid(cls, pid: int, *, proc: str = "/proc") -> OverlayRoot:
        """The root overlay of process *pid* (host pid). Raises OverlayError."""
        try:
            with open(f"{proc}/{int(pid)}/mountinfo", encoding="latin-1") as f:
                text = f.read()
        except OSError as err:
            raise OverlayError(f"cannot read mounts of pid {pid}: {err.strerror or err}") from None
        return cls.from_mountinfo(text)

    def classify(self, paths: Iterable[str]) -> list[Origin]:
        """The origin of each of *paths*, in order; directory listings are shared by the batch."""
        upper = _Layer(self.upperdir)
        lowers = [_Layer(d) for d in self.lowerdirs]
        out = []
        for path in paths:
            parts = _components(path)
            if parts is None:
                out.append(Origin.ELSEWHERE)
            elif _in_stack(lowers, parts):
                out.append(Origin.IMAGE)
            else:
                out.append(Origin.UPPER if upper.lookup(parts) is _Found.ENTRY else Origin.ELSEWHERE)
        return out

    def origin(self, path: str) -> Origin:
        """Where the file the container sees at absolute *path* comes from."""
        return self.classify([path])[0]

    def upper_only(self, paths: Iterable[str]) -> list[str]:
        """The *paths* (in order) that exist only in the upper directory."""
        paths = list(paths)
        return [p for p, o in zip(paths, self.classify(paths), strict=True) if o is Origin.UPPER]


def _components(path: str) -> tuple[str, ...] | None:
    """Components of an absolute, normal container path; None for anything else."""
    if not path.startswith("/") or "\0" in path:
        return None
    parts = tuple(p for p in path.split("/") if p)
    if not parts or any(p in (".", "..") for p in parts):
        return None
    return parts


class _Found(enum.Enum):
    ENTRY = 1  # the layer has the path
    WHITEOUT = 2  # the layer deletes the path (or an ancestor of it)
    ABSENT = 3  # the layer says nothing: look in the layers below
    BLOCKED = 4  # absent here, and an opaque directory or a non-directory hides the layers below


_DIR, _WHITEOUT, _OTHER = "d", "w", "o"
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


class _Layer:
    """One layer directory with cached listings. Directories are opened one component at a
    time with O_NOFOLLOW, so nothing in the layer (a symlink, a rename race) leads out of it."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._dirs: dict[tuple[str, ...], tuple[dict[str, str], bool] | None] = {}

    def _open(self, parts: tuple[str, ...]) -> int:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        for part in parts:
            try:
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            finally:
                os.close(fd)
            fd = nfd
        return fd

    def listing(self, parts: tuple[str, ...]) -> tuple[dict[str, str], bool] | None:
        """(name -> kind, opaque) of the directory at *parts*, None if it is not a directory here."""
        if parts in self._dirs:
            return self._dirs[parts]
        if parts:
            parent = self.listing(parts[:-1])
            is_dir = parent is not None and parent[0].get(parts[-1]) == _DIR
        else:
            is_dir = True
        result = None
        if is_dir:
            try:
                fd = self._open(parts)
                try:
                    result = (_scan(fd), _opaque(fd))
                finally:
                    os.close(fd)
            except OSError:  # gone, replaced by a symlink, unreadable: not a directory here
                result = None
        self._dirs[parts] = result
        return result

    def lookup(self, parts: tuple[str, ...]) -> _Found:
        """What this layer says about the path *parts*."""
        opaque = False
        for depth, name in enumerate(parts):
            listing = self.listing(parts[:depth])
            if listing is None:
                return _Found.ABSENT
            entries, dir_opaque = listing
            opaque = opaque or dir_opaque
            kind = entries.get(name)
            if kind is None:
                return _Found.BLOCKED if opaque else _Found.ABSENT
            if kind == _WHITEOUT:
                return _Found.WHITEOUT
            if depth < len(parts) - 1 and kind != _DIR:
                return _Found.BLOCKED
        return _Found.ENTRY


def _in_stack(lowers: list[_Layer], parts: tuple[str, ...]) -> bool:
    """Is *parts* visible through the image layers (topmost first), honouring their whiteouts
    and opaque directories?"""
    for layer in lowers:
        found = layer.lookup(parts)
        if found is _Found.ENTRY:
            return True
        if found is not _Found.ABSENT:
            return False
    return False


def _scan(fd: int) -> dict[str, str]:
    entries = {}
    with os.scandir(fd) as it:
        for entry in it:
            if entry.is_dir(follow_symlinks=False):
                kind = _DIR
            elif entry.is_file(follow_symlinks=False) or entry.is_symlink():
                kind = _OTHER
            else:
                st = entry.stat(follow_symlinks=False)
                kind = _WHITEOUT if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 else _OTHER
            entries[entry.name] = kind
    return entries


def _opaque(fd: int) -> bool:
    for name in _OPAQUE_XATTRS:
        try:
            if os.getxattr(fd, name) == b"y":
                return True
        except OSError:
            pass
    return False
