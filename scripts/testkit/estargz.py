"""Read what a converted layer holds, in order: an eStargz blob's TOC, a zstd:chunked blob's tar stream.

eStargz (a gzip stream of gzip members): the last 51 bytes are an empty gzip member whose header's
extra field (subfield ``SG``) holds ``%016x`` of the TOC's offset and ``STARGZ``; at that offset a
gzip member holds a tar with one file, ``stargz.index.json``, whose ``entries`` list the layer's
entries in the order they are stored. Blobs are input from elsewhere: every size is checked.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import subprocess
import tarfile
from typing import Any

FOOTER_SIZE = 51
TOC_NAME = "stargz.index.json"
LANDMARK = ".prefetch.landmark"
NO_PREFETCH_LANDMARK = ".no.prefetch.landmark"
_MAX_TOC = 64 << 20


class LayerFormatError(ValueError):
    """The blob is not what its format says."""


def toc_offset(blob: bytes) -> int:
    """The TOC's offset, from the footer."""
    footer = blob[-FOOTER_SIZE:]
    if len(footer) != FOOTER_SIZE or footer[:2] != b"\x1f\x8b" or not footer[3] & 0x04:
        raise LayerFormatError("no eStargz footer (a gzip header with an extra field) in the last 51 bytes")
    (xlen,) = struct.unpack_from("<H", footer, 10)
    extra = footer[12:12 + xlen]
    if extra[:2] != b"SG" or struct.unpack_from("<H", extra, 2)[0] != 22 or extra[20:26] != b"STARGZ":
        raise LayerFormatError(f"footer extra field is not eStargz's: {extra!r}")
    offset = int(extra[4:20], 16)
    if not 0 <= offset < len(blob) - FOOTER_SIZE:
        raise LayerFormatError(f"TOC offset {offset} outside the blob")
    return offset


def toc(blob: bytes) -> dict[str, Any]:
    """The TOC JSON of an eStargz blob."""
    member = blob[toc_offset(blob):-FOOTER_SIZE]
    with gzip.GzipFile(fileobj=io.BytesIO(member)) as unzipped:
        data = unzipped.read(_MAX_TOC + 1)
    if len(data) > _MAX_TOC:
        raise LayerFormatError("TOC member larger than 64 MiB")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        if names != [TOC_NAME]:
            raise LayerFormatError(f"TOC member holds {names}, not [{TOC_NAME!r}]")
        stream = tar.extractfile(TOC_NAME)
        assert stream is not None
        parsed = json.loads(stream.read())
    if not isinstance(parsed, dict) or not isinstance(parsed.get("entries"), list):
        raise LayerFormatError("TOC JSON has no entries list")
    return parsed


def toc_names(blob: bytes) -> list[tuple[str, str]]:
    """(type, absolute path) of each TOC entry that starts a file (chunks of a file after the
    first are left out), in stored order."""
    return [(entry["type"], _absolute(entry["name"])) for entry in toc(blob)["entries"] if entry.get("type") != "chunk"]


def zstd_tar_names(blob: bytes) -> list[tuple[str, str]]:
    """(type, absolute path) of each tar entry of a zstd:chunked blob, in stored order (``zstd -d``
    decompresses its frames and skips the skippable ones that carry its TOC)."""
    done = subprocess.run(["zstd", "-q", "-d", "-c"], input=blob, capture_output=True, check=True)
    kinds = {tarfile.REGTYPE: "reg", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink"}
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        return [(kinds.get(m.type, "other"), _absolute(m.name)) for m in tar.getmembers()]


def _absolute(name: str) -> str:
    """``./usr/lib/`` -> ``/usr/lib``: a stored name as the container sees it."""
    return "/" + name.removeprefix("./").strip("/")


def before_landmark(names: list[tuple[str, str]]) -> list[tuple[str, str]] | None:
    """The entries stored before the prefetch landmark; None when the layer has none (or the
    no-prefetch landmark)."""
    paths = [path for _, path in names]
    landmark = "/" + LANDMARK
    return names[:paths.index(landmark)] if landmark in paths else None
