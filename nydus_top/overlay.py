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

    def origin(self, path: str) -> Origin:
        """Where the file the container sees at absolute *path* comes from."""
        parts = _components(path)
        if parts is None:
            return Origin.ELSEWHERE
        if any(_present(layer, parts) for layer in self.lowerdirs):
            return Origin.IMAGE
        return Origin.UPPER if _present(self.upperdir, parts) else Origin.ELSEWHERE

    def upper_only(self, paths: Iterable[str]) -> list[str]:
        """The *paths* (in order) that exist only in the upper directory."""
        return [p for p in paths if self.origin(p) is Origin.UPPER]


def _components(path: str) -> list[str] | None:
    """Components of an absolute, normal container path; None for anything else."""
    if not path.startswith("/") or "\0" in path:
        return None
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        return None
    return parts


def _present(layer: str, parts: list[str]) -> bool:
    """Does *layer* hold an entry at *parts* (a whiteout counts as absent)?

    A plain lstat answers "absent" quickly; "present" is confirmed component by component
    with O_NOFOLLOW, so a symlink inside the layer can never lead outside it.
    """
    try:
        os.lstat(os.path.join(layer, *parts))
    except OSError:
        return False
    try:
        fd = os.open(layer, os.O_PATH | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_PATH | os.O_NOFOLLOW | (0 if last else os.O_DIRECTORY)
            try:
                nfd = os.open(part, flags, dir_fd=fd)
            except OSError:  # absent, a symlink on the way, or unreadable: not in this layer
                return False
            os.close(fd)
            fd = nfd
        st = os.fstat(fd)
        return not (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0)
    except OSError:
        return False
    finally:
        os.close(fd)
