"""A list's identity: the small JSON file kept beside every list nydus-top saves.

The optimizer-compatible pair (``<name>:<tag>`` and ``.csv``) drops the registry host, so the
list alone cannot say which image it belongs to. ``<list>.nydus-top.json`` keeps that and how the
list came to be; ``open``, ``merge`` and ``convert`` read it back and never guess a registry.
Sans-IO: :func:`encode` and :func:`decode` work on bytes; the list's save writes the file
atomically together with the pair (see :func:`nydus_top.lists.files.save_list`).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from nydus_top import __version__
from nydus_top.fs.reading import ReadError, ReadMissing, read_regular

SUFFIX = ".nydus-top.json"
SCHEMA = 1
MAX_BYTES = 1 << 20  # a metadata file larger than this is refused unread
RUNTIME_MAX_BYTES = 256 << 10  # the runtime-created paths one metadata file names, at most
_LISTS = ("runs", "runtime")  # the fields that are lists of strings


class MetaError(ValueError):
    """A metadata file that cannot be used; the message is one line."""


@dataclass(frozen=True, slots=True)
class ListMeta:
    """Where a list came from. ``image`` is the full reference as the runtime reported it."""

    image: str = ""  # e.g. registry.example:5000/team/app:1.2 (never shortened)
    digest: str = ""  # image manifest digest when known ("sha256:...")
    container: str = ""  # container name
    container_id: str = ""
    pod: str = ""  # namespace/name
    node: str = ""  # host name of the node that recorded it
    kernel: str = ""  # uname -r there
    version: str = __version__  # nydus-top's
    created: str = ""  # UTC, ISO 8601 with seconds
    complete: bool = True  # False: the trace may miss files (see incomplete)
    incomplete: str = ""  # why not complete: "mark was late", "kernel queue overflow", ...
    files: int = 0  # entries in the list
    runs: tuple[str, ...] = field(default=())  # lists or runs this one was made from
    runtime: tuple[str, ...] = field(default=())  # files this run saw created at runtime (see limit_runtime)
    cut: str = ""  # why the list ends before the container stopped: ready_line, ready_file, ready_after, operator
    cut_detail: str = ""  # what met it: the line printed, the file read, the seconds, the row chosen
    cut_after: str = ""  # where: the list's last path
    cut_us: int = 0  # and that path's elapsed time (microseconds since the trace started)
    mapped: int = 0  # bytes of the ranges seen as mapped pages (also in the ranges; counted apart)
    unobserved: tuple[tuple[str, str], ...] = field(default=())  # (path, why) of mapped files whose
    # pages could not be followed (they count whole); path "" is every file seen mapped. A JSON object.
    cached: int = 0  # bytes of the ranges only the page cache saw (a mapping too short to sample; may
    # hold readahead and other containers' reads: see RangeCollector._cached_pages)
    cache_unobserved: str = ""  # why short-lived mappings could not be looked for ("": they were)

    def with_origin(self) -> ListMeta:
        """This metadata with node, kernel and creation time of here and now filled in."""
        uname = platform.uname()
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return replace(self, node=self.node or socket.gethostname(), kernel=self.kernel or uname.release,
                        created=self.created or created)


def limit_runtime(paths: Iterable[str]) -> tuple[tuple[str, ...], int]:
    """(the runtime-created paths a metadata file keeps, how many more were left out): at most
    RUNTIME_MAX_BYTES of paths, so a container creating many files cannot grow the file unbounded."""
    kept: list[str] = []
    size = 0
    left_out = 0
    for path in paths:
        size += len(path.encode("utf-8", "surrogateescape")) + 4
        if size > RUNTIME_MAX_BYTES:
            left_out += 1
        else:
            kept.append(path)
    return tuple(kept), left_out


def path_for(list_path: str | os.PathLike[str]) -> Path:
    """The metadata file that belongs to *list_path* (a plain list or its ``.csv``)."""
    text = os.fspath(list_path)
    if text.endswith(".csv"):
        text = text[: -len(".csv")]
    return Path(text + SUFFIX)


def encode(meta: ListMeta) -> bytes:
    """Stable, human-readable JSON (sorted keys, one trailing newline)."""
    data = {"schema": SCHEMA, **asdict(meta)}
    for name in _LISTS:
        data[name] = list(getattr(meta, name))
    data["unobserved"] = dict(meta.unobserved)
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode()


def decode(data: bytes, *, name: str = "metadata") -> ListMeta:
    """Parse what :func:`encode` wrote; unknown keys are ignored, wrong types refused (one line)."""
    if len(data) > MAX_BYTES:
        raise MetaError(f"{name}: larger than {MAX_BYTES} bytes")
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise MetaError(f"{name}: not JSON ({err})") from None
    except RecursionError:  # a pulled file is the registry's: any nesting can come
        raise MetaError(f"{name}: not JSON (nested too deep)") from None
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
        raise MetaError(f"{name}: not a nydus-top list metadata file of schema {SCHEMA}")
    values: dict[str, Any] = {}
    for f in fields(ListMeta):
        if f.name not in raw:
            continue
        value = raw[f.name]
        if f.name in _LISTS:
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise MetaError(f"{name}: {f.name} must be a list of strings")
            values[f.name] = tuple(value)
            continue
        if f.name == "unobserved":
            if not isinstance(value, dict) or not all(isinstance(why, str) for why in value.values()):
                raise MetaError(f"{name}: unobserved must be an object of strings")
            values[f.name] = tuple(value.items())
            continue
        expected: type = {"complete": bool, "files": int, "cut_us": int, "mapped": int, "cached": int}.get(f.name, str)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise MetaError(f"{name}: {f.name} must be {expected.__name__}")
        values[f.name] = value
    return ListMeta(**values)


def read(list_path: str | os.PathLike[str]) -> ListMeta | None:
    """The metadata of *list_path*, or None when it has none. Raises MetaError (one line)."""
    path = path_for(list_path)
    try:  # never blocking, a regular file only, never through a symlink planted beside the list
        data = read_regular(path, limit=MAX_BYTES, follow=False)
    except ReadMissing:
        return None
    except ReadError as err:
        raise MetaError(str(err)) from None
    return decode(data, name=str(path))
