"""Prefetch list files: optimizer-compatible names, atomic save, load, merge, range list export.

Byte compatibility with nydus-snapshotter's optimizer NRI plugin (``cmd/optimizer-nri-plugin``,
``pkg/fanotify``, ``pkg/utils/display``):

* result file ``<persist_dir>/<dirname of repo path>/<base>:<tag>``; the repo path has no
  registry host (``distribution/reference.Path``), so ``docker.io/library/nginx`` and
  ``quay.io/library/nginx`` share ``library/nginx:latest``; a one-component path lands in
  ``persist_dir`` itself; ``.timeout<N>s`` is appended whenever a timeout is configured;
* the list has one path a line (``fmt.Fprintln``), the ``.csv`` is written by Go's
  ``encoding/csv`` (LF line ends, quoting only when needed) with header ``path,size,elapsed``;
* ``readable`` renders sizes like ``ByteToReadableIEC`` (``512 B``, ``1.5 KiB``) and elapsed
  like ``MicroSecondToReadable`` (``999 us``, ``1.500 ms``, ``2.000 s``).

Where the optimizer crashes (a reference pinned by digest fails its ``NamedTagged`` assertion)
we name the file after the tag if there is one, else ``<base>@<algo>:<hex>``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import re
from array import array
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from nydus_top.fs import confined
from nydus_top.fs.confined import ConfinedError, ConfinedExistsError
from nydus_top.fs.reading import ReadError, ReadMissing, read_regular, regular_chunks
from nydus_top.imageref import ImageRefError, parse_image_ref
from nydus_top.lists import meta as listmeta
from nydus_top.lists.meta import ListMeta
from nydus_top.lists.paths import NONE, ListColumns, Marks, PathTable, columns_of
from nydus_top.lists.ranges import DEFAULT_GRANULARITY, RangeBook, RangeSet, prefetch_ranges
from nydus_top.model.records import Listable, ListedFile
from nydus_top.text import counted, printable

CSV_HEADER = ("path", "size", "elapsed")
RANGE_LIST_VERSION = "v1"
RANGES_SUFFIX = ".ranges.json"  # a saved list's ranges: <list>.ranges.json, itself a range list
RANGE_LIST_MAX_BYTES = 256 << 20  # a range list read back is at most this big
# Decoding a range list makes at most this many JSON values and keys, counted before it is decoded
# as the '[', '{', ',' and ':' of its text (every value or key but the first follows one of them; a
# path's own count too). The decoder holds them all at once: 60 to 80 bytes a count whatever their
# shape (a range counts 3: 8.4M ranges of one file peak at 1.5 GB), where counting only the '['
# let 256 MiB of "{}," take 6.4 GB and of "ab", 4 GB. 8M ranges at 80 a file fit. Our lists save
# within it.
RANGE_LIST_MAX_ITEMS = 3 << 23
_ITEM_MARKS = ("[", "{", ",", ":")
_RELATIVE_LINE = re.compile(rb"(?:\A|\n)[^/\n]")  # a non-empty line that is no absolute path
LIST_MAX_BYTES = 1 << 30  # a list or csv read back is at most this big (3M paths take ~300 MB)
MAX_BAD_LINES = 5  # skipped lines of one file warned about one by one; the rest are counted
BAD_LINE_SHOWN = 80  # characters of a skipped line a warning shows

# Unicode White_Space: what Rust's str::trim (nydus-image reading the list) and Go's
# unicode.IsSpace (encoding/csv quoting) both treat as space.
_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


class ListFileError(ConfinedError):
    """A list could not be saved or loaded; the message is one line naming the file."""


class ListExistsError(ListFileError, ConfinedExistsError):
    """Saving would overwrite an existing file and overwriting was not asked for."""


def write_atomic(files: Sequence[tuple[Path, confined.Data]], *, overwrite: bool = False,
                 root: str | os.PathLike[str] | None = None) -> tuple[str, ...]:
    """:func:`nydus_top.fs.confined.write_atomic` with its errors as ListExistsError/ListFileError."""
    try:
        return confined.write_atomic(files, overwrite=overwrite, root=root)
    except ConfinedExistsError as err:
        raise ListExistsError(err.path) from None
    except ConfinedError as err:
        raise ListFileError(str(err)) from None


@dataclass(frozen=True, slots=True)
class ResultPaths:
    """Where the optimizer keeps the results for one image."""

    list: Path
    csv: Path


@dataclass(frozen=True, slots=True)
class SaveResult:
    """What a save wrote and which entries it had to leave out (one warning line each)."""

    paths: tuple[Path, ...]
    written: int
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LoadedList:
    """Entries of a loaded list, its metadata when it has some, and the warnings: one line per
    skipped line for the first MAX_BAD_LINES of a file, then a count; one per sibling file
    that could not be used."""

    entries: tuple[ListedFile, ...]
    warnings: tuple[str, ...] = ()
    ranges: RangeBook | None = None  # from the sibling <list>.ranges.json, when there is one
    meta: ListMeta | None = None


# ---------------------------------------------------------------- result file names


def result_name(image: str) -> tuple[str, str]:
    """(directory relative to persist_dir, file name) for *image*, e.g. ("library", "nginx:latest").

    Raises ImageRefError for references containerd would reject; a valid reference has no
    ``..``, absolute or empty component, so the result always stays inside persist_dir.
    """
    ref = parse_image_ref(image)
    directory = os.path.dirname(ref.path) or "."
    name = f"{ref.base}:{ref.tag}" if ref.tag else f"{ref.base}@{ref.digest}"
    return directory, name


def result_paths(persist_dir: str | os.PathLike[str], image: str, *, timeout: int = 0) -> ResultPaths:
    """The optimizer's result files for *image* under *persist_dir*.

    *timeout* is the configured recording timeout in seconds; like the optimizer, any value
    > 0 adds ``.timeout<N>s`` to the name. Raises ImageRefError for an invalid reference.
    """
    base = os.path.abspath(os.fspath(persist_dir))
    directory, name = result_name(image)
    target = os.path.normpath(os.path.join(base, directory, name))
    # Belt and braces: the reference grammar already rules out every way out of persist_dir.
    if (os.path.dirname(target) != os.path.normpath(os.path.join(base, directory))
            or not target.startswith(base.rstrip("/") + "/")):
        raise ImageRefError(f"image {image!r} would escape {base}")
    if timeout > 0:
        target += f".timeout{timeout}s"
    return ResultPaths(Path(target), Path(target + ".csv"))


# ---------------------------------------------------------------- formats


def readable_size(size: int) -> str:
    """``ByteToReadableIEC``: ``512 B``, ``1.5 KiB``, ``2.0 MiB``."""
    if size < 1024:
        return f"{size} B"
    div, exp, n = 1024, 0, size // 1024
    while n >= 1024:
        div *= 1024
        exp += 1
        n //= 1024
    return f"{size / div:.1f} {'KMGTPE'[exp]}iB"


def readable_elapsed(us: int) -> str:
    """``MicroSecondToReadable``: ``999 us``, ``1.500 ms``, ``2.000 s``."""
    if us < 1000:
        return f"{us} us"
    if us < 1000 * 1000:
        return f"{us / 1000:.3f} ms"
    return f"{us / 1000000:.3f} s"


_READABLE = re.compile(r"([0-9]+(?:\.[0-9]+)?) (B|KiB|MiB|GiB|TiB|PiB|EiB|us|ms|s)")
_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_TIME_UNITS = ("us", "ms", "s")
_UNIT = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40, "PiB": 1 << 50,
         "EiB": 1 << 60, "us": 1, "ms": 1000, "s": 1000000}


def _digits(text: str) -> int:
    """ASCII digits as an int; ValueError(*text*) past the 4300 digits int() reads (a hostile list's)."""
    try:
        return int(text)
    except ValueError:
        raise ValueError(text) from None


def _parse_amount(text: str, units: tuple[str, ...]) -> int | None:
    """An int, or a readable amount in one of *units* (rounded); None for ''."""
    if text == "":
        return None
    if text.isascii() and text.isdigit():
        return _digits(text)
    match = _READABLE.fullmatch(text)
    if match is None or match.group(2) not in units:
        raise ValueError(text)
    amount = float(match.group(1)) * _UNIT[match.group(2)]
    if not math.isfinite(amount):  # more digits than a float holds: a hostile list's
        raise ValueError(text)
    return round(amount)


_CSV_SPECIAL = re.compile(r'[,"\r\n]')


def _csv_field(value: str) -> str:
    """Go encoding/csv quoting: only when needed; quotes doubled; CR and LF kept as they are."""
    if value == "" or (value != r"\." and not _CSV_SPECIAL.search(value) and value[0] not in _WHITESPACE):
        return value
    return '"' + value.replace('"', '""') + '"'


def csv_line(entry: Listable, *, readable: bool = False) -> str:
    """One csv row (with its LF) as the optimizer writes it; unknown size/elapsed stay empty.

    Only the path can need quoting: numbers and readable units never hold , " CR LF.
    """
    size, elapsed = entry.size, entry.elapsed_us
    if readable:
        size_text = readable_size(size) if size is not None else ""
        elapsed_text = readable_elapsed(elapsed) if elapsed is not None else ""
    else:
        size_text = "" if size is None else str(size)
        elapsed_text = "" if elapsed is None else str(elapsed)
    return f"{_csv_field(entry.path)},{size_text},{elapsed_text}\n"


def _unusable(path: str) -> str | None:
    """Why nydus cannot use *path* in any list format, or None."""
    if not path.startswith("/"):
        return "not an absolute path"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8"
    return None


def inexpressible(path: str) -> str | None:
    """Why *path* cannot be a line of a plain prefetch list, or None if it can."""
    if "\n" in path:
        return "contains a newline"
    if path and path[-1] in _WHITESPACE:
        return "ends with whitespace"
    return _unusable(path)


_E = TypeVar("_E", bound=Listable)


def _dedup(entries: Iterable[_E]) -> list[_E]:
    seen: set[str] = set()
    out = []
    for entry in entries:
        if entry.path not in seen:
            seen.add(entry.path)
            out.append(entry)
    return out


def render(entries: Iterable[Listable], *, readable: bool = False) -> tuple[bytes, bytes, tuple[str, ...]]:
    """(plain list, csv, warnings) for *entries*: first occurrence of each path, in order.

    Paths a plain list cannot express are left out of both files, one warning each.
    """
    kept, warnings = _keep(entries, inexpressible)
    warnings += _flag_controls(kept)
    plain = "".join(entry.path + "\n" for entry in kept)
    rows = ",".join(CSV_HEADER) + "\n" + "".join(csv_line(entry, readable=readable) for entry in kept)
    return plain.encode(), rows.encode(), warnings


def _keep(entries: Iterable[Listable], reject: Callable[[str], str | None]) -> tuple[list[Listable], tuple[str, ...]]:
    """Entries once each, in order, without those ``reject`` gives a reason for (one warning each)."""
    kept: list[Listable] = []
    warnings = []
    for entry in _dedup(entries):
        reason = reject(entry.path)
        if reason:
            warnings.append(f"left out {entry.path!r}: {reason}")
        else:
            kept.append(entry)
    return kept, tuple(warnings)


def _flag_controls(kept: Sequence[Listable]) -> tuple[str, ...]:
    """One warning when paths hold control characters or bidi overrides: they are saved
    byte-exact (nydus needs the real name), and shown escaped everywhere else."""
    odd = [entry.path for entry in kept if printable(entry.path) != entry.path]
    if not odd:
        return ()
    return (f"kept {len(odd)} paths with control characters or bidi overrides byte-exact, "
            f"e.g. {printable(odd[0])}",)


def range_list(entries: Iterable[Listable], ranges: RangeBook | None = None,
               granularity: int = DEFAULT_GRANULARITY) -> tuple[bytes, tuple[str, ...]]:
    """(JSON document, warnings) for ``nydusify optimize --prefetch-files``.

    Each file's recorded ranges, rounded out to ``granularity`` (0: exact); whole files
    (``null``) for files read whole or mapped and for files without range data (all of them
    without ``ranges``). Non-absolute and non-UTF-8 paths are left out (nydus skips or cannot
    read them).
    """
    kept, warnings = _keep(entries, _unusable)
    data, limited = _range_document(kept, ranges, granularity)
    return data, (*warnings, *limited)


def _range_document(kept: Sequence[Listable], ranges: RangeBook | None,
                    granularity: int) -> tuple[bytes, tuple[str, ...]]:
    """:func:`range_list`'s document of the entries it keeps; a warning when it had to list some
    files whole or leave some out to stay within the reader's limits."""
    book = ranges if ranges is not None else RangeBook()
    files = [{"path": entry.path, "ranges": prefetch_ranges(book.get(entry.path), entry.size, granularity)}
             for entry in kept]
    files, warnings = _within_limits(files)
    doc = {"version": RANGE_LIST_VERSION, "files": files}
    return (json.dumps(doc, ensure_ascii=False, indent=1) + "\n").encode(), warnings


def _items(text: str) -> int:
    """The JSON values and keys decoding *text* makes, at most, less one (see RANGE_LIST_MAX_ITEMS)."""
    return sum(map(text.count, _ITEM_MARKS))


def _ranges_items(pairs: list[list[int]] | None) -> int:
    """The items (see :func:`_items`) of a file's ranges as a range list writes them: '[' and
    ',' a pair and the ',' between them, the list's '['."""
    return 0 if pairs is None else max(1, 3 * len(pairs))


def _ranges_bytes(pairs: list[list[int]] | None, exact: bool) -> int:
    """The bytes of a file's ranges as a range list writes them (indented: 22 more a pair than
    compact), or at least that many when not *exact* (20 digits a number)."""
    if pairs is None:
        return 4
    if not pairs:
        return 2
    compact = len(json.dumps(pairs, separators=(",", ":"))) if exact else 44 * len(pairs) + 1
    return compact + 22 * len(pairs) + 4


_EMPTY_RANGE_LIST = len(json.dumps({"version": RANGE_LIST_VERSION, "files": []}, indent=1)) + 1  # its "\n"


def _within_limits(files: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """*files* as a range list can hold them to be read back: at most RANGE_LIST_MAX_ITEMS items
    (see :func:`_items`; its paths' own count too) and RANGE_LIST_MAX_BYTES bytes. Past either,
    the files with the most ranges are made whole (``None``), then, when their paths alone take
    it past, the files whose paths take the most are left out; a warning for each."""

    def fits(items: int, size: int) -> bool:
        return items <= RANGE_LIST_MAX_ITEMS and size <= RANGE_LIST_MAX_BYTES

    # the document's '{', ':', ',', ':' and '['; a file's '{', ':', ',', ':' and the ',' before the
    # next; a file's bytes: its lines' indents and keys (36) with its path and its ranges
    items = 4 + (not files) + sum(5 + _items(item["path"]) + _ranges_items(item["ranges"]) for item in files)
    if fits(items, _EMPTY_RANGE_LIST + 1 + sum(38 + 6 * len(item["path"]) + _ranges_bytes(item["ranges"], False)
                                               for item in files)):
        return files, ()
    paths = [(5 + _items(item["path"]), 36 + len(json.dumps(item["path"], ensure_ascii=False).encode()))
             for item in files]
    ranges = [(_ranges_items(item["ranges"]), _ranges_bytes(item["ranges"], True)) for item in files]
    size = _EMPTY_RANGE_LIST + bool(files) + sum(path[1] + pairs[1] for path, pairs in zip(paths, ranges, strict=True))
    warnings = []
    made_whole = 0
    for i in sorted((i for i, item in enumerate(files) if item["ranges"] is not None),
                    key=lambda i: len(files[i]["ranges"]), reverse=True):
        if fits(items, size):
            break
        if not files[i]["ranges"] and size > RANGE_LIST_MAX_BYTES:
            continue  # "[]" is 2 bytes shorter than "null"
        items, size = items - ranges[i][0], size - ranges[i][1] + 4
        files[i]["ranges"], ranges[i] = None, (0, 4)
        made_whole += 1
    if made_whole:
        warnings.append(f"listed {counted(made_whole, 'file')} with the most ranges whole: a range list read back "
                        f"holds at most {RANGE_LIST_MAX_ITEMS} JSON values and keys and {RANGE_LIST_MAX_BYTES} bytes")
    if not fits(items, size) and files:  # their paths alone
        left_out: list[int] = []
        share = [(path[0] + pairs[0]) / RANGE_LIST_MAX_ITEMS + (path[1] + pairs[1]) / RANGE_LIST_MAX_BYTES
                 for path, pairs in zip(paths, ranges, strict=True)]
        for i in sorted(range(len(files)), key=share.__getitem__, reverse=True):
            if fits(items, size):
                break
            items, size = items - paths[i][0] - ranges[i][0], size - paths[i][1] - ranges[i][1]
            left_out.append(i)
        first = files[left_out[0]]["path"]  # the one taking the most
        gone = set(left_out)
        files = [item for i, item in enumerate(files) if i not in gone]
        warnings.append(f"left out {counted(len(left_out), 'file')} of the range list, their paths alone past its "
                        f"{RANGE_LIST_MAX_ITEMS} JSON values and keys or {RANGE_LIST_MAX_BYTES} bytes, e.g. "
                        f"{first[:BAD_LINE_SHOWN]!r}{'...' if len(first) > BAD_LINE_SHOWN else ''}")
    return files, tuple(warnings)


def save_list(
    entries: Iterable[Listable], list_path: str | os.PathLike[str], *, readable: bool = False,
    overwrite: bool = False, meta: ListMeta | None = None, ranges: RangeBook | None = None,
    granularity: int = DEFAULT_GRANULARITY, root: str | os.PathLike[str] | None = None, distinct: bool = False,
) -> SaveResult:
    """Save *entries* as ``list_path`` (plain list) and ``list_path.csv``, atomically, with
    *meta* also ``list_path.nydus-top.json`` (its ``files`` count set to what was written), with
    *ranges* also their range list ``list_path.ranges.json`` (see :func:`range_list`); all in
    one atomic write, and :func:`load_list` reads them back. The plain list and csv stay the
    optimizer's, byte for byte.

    Raises ListExistsError (nothing written) when any exists and *overwrite* is false,
    ListFileError on any I/O error (old files intact). Left-out paths are in the warnings.
    *root*: see :func:`write_atomic` (persist_dir for results saved there). *distinct*: *entries*
    name each path once and can be read more than once (a Collection, e.g. a consensus): without
    *ranges*, each file is then written a piece at a time and never held whole (the same bytes).
    """
    path = Path(list_path)
    csv_path = Path(os.fspath(path) + ".csv")
    if distinct and ranges is None and isinstance(entries, Collection):
        return _save_pieces(entries, path, csv_path, readable, overwrite, meta, root)
    if ranges is not None and iter(entries) is entries:  # a one-shot iterator: the range list reads it again
        entries = list(entries)
    plain, table, warnings = render(entries, readable=readable)
    files = [(path, plain), (csv_path, table)]
    if meta is not None:
        counted = dataclasses.replace(meta, files=plain.count(b"\n"))
        files.append((listmeta.path_for(path), listmeta.encode(counted)))
    if ranges is not None:  # its left-outs are the plain list's too, warned about above
        data, limited = _range_document(_keep(entries, _unusable)[0], ranges, granularity)
        files.append((ranges_path(path), data))
        warnings = (*warnings, *limited)
    removed = write_atomic(files, overwrite=overwrite, root=root)
    return SaveResult(tuple(p for p, _ in files), plain.count(b"\n"), (*removed, *warnings))


class _Tally:
    """What the plain list's pieces counted: lines written, left-out warnings, odd paths kept."""

    def __init__(self) -> None:
        self.written = 0
        self.warnings: list[str] = []
        self.odd = 0
        self.first_odd = ""

    def notes(self) -> tuple[str, ...]:
        """The warnings :func:`render` gives for the same entries."""
        if not self.odd:
            return tuple(self.warnings)
        return (*self.warnings, f"kept {self.odd} paths with control characters or bidi overrides byte-exact, "
                f"e.g. {printable(self.first_odd)}")


_PIECE_LINES = 4096  # lines joined into one write


def _save_pieces(entries: Collection[Listable], path: Path, csv_path: Path, readable: bool, overwrite: bool,
                 meta: ListMeta | None, root: str | os.PathLike[str] | None) -> SaveResult:
    """:func:`save_list` of distinct *entries*, each file written a piece at a time."""
    counted = _Tally()
    files: list[tuple[Path, confined.Data]] = [
        (path, _pieces(entries, lambda e: e.path + "\n", counted)),
        (csv_path, _pieces(entries, lambda e: csv_line(e, readable=readable), None, ",".join(CSV_HEADER) + "\n")),
    ]
    if meta is not None:
        files.append((listmeta.path_for(path), _later(lambda: listmeta.encode(dataclasses.replace(
            meta, files=counted.written)))))
    removed = write_atomic(files, overwrite=overwrite, root=root)
    return SaveResult(tuple(p for p, _ in files), counted.written, (*removed, *counted.notes()))


def _pieces(entries: Iterable[Listable], line: Callable[[Listable], str], counted: _Tally | None,
            head: str = "") -> Iterator[bytes]:
    """The lines of the entries a plain list can express, a few thousand a piece; with *counted*,
    what they count (lines, left-out paths, odd paths) goes there."""
    lines = [head] if head else []
    for entry in entries:
        reason = inexpressible(entry.path)
        if reason:
            if counted is not None:
                counted.warnings.append(f"left out {entry.path!r}: {reason}")
            continue
        if counted is not None:
            counted.written += 1
            if printable(entry.path) != entry.path:
                counted.odd += 1
                counted.first_odd = counted.first_odd or entry.path
        lines.append(line(entry))
        if len(lines) >= _PIECE_LINES:
            yield "".join(lines).encode()
            lines.clear()
    if lines:
        yield "".join(lines).encode()


def _later(make: Callable[[], bytes]) -> Iterator[bytes]:
    """*make*'s bytes, made when first asked (after the files before it are written)."""
    yield make()


def ranges_path(list_path: str | os.PathLike[str]) -> Path:
    """The range list saved beside a list (``<list>.ranges.json``; for ``x.csv``, ``x.ranges.json``)."""
    text = os.fspath(list_path)
    return Path(text.removesuffix(".csv") + RANGES_SUFFIX)


def save_range_list(
    entries: Iterable[Listable], path: str | os.PathLike[str], *, overwrite: bool = False,
    ranges: RangeBook | None = None, granularity: int = DEFAULT_GRANULARITY,
    root: str | os.PathLike[str] | None = None,
) -> SaveResult:
    """Save the range list JSON for *entries* atomically (see :func:`range_list`; *root*: see
    :func:`write_atomic`)."""
    target = Path(path)
    data, warnings = range_list(entries, ranges, granularity)
    removed = write_atomic([(target, data)], overwrite=overwrite, root=root)
    return SaveResult((target,), len(json.loads(data)["files"]), (*removed, *warnings))


# ---------------------------------------------------------------- loading and merging


def _read_text(path: Path, *, follow: bool = True) -> str:
    """*path*'s text (never blocking, a regular file only; see nydus_top.fs.reading). Raises
    ReadMissing when it does not exist, ListFileError (one line) when it cannot be read."""
    try:
        data = read_regular(path, limit=LIST_MAX_BYTES, follow=follow)
    except ReadMissing:
        raise
    except ReadError as err:
        raise ListFileError(str(err)) from None
    return data.decode("utf-8", "surrogateescape")


class _BadLines:
    """The warnings for a file's skipped lines: one line each for the first MAX_BAD_LINES, then
    one count, so a garbage file cannot flood the terminal or memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shown: list[str] = []
        self.more = 0

    def add(self, number: int, line: str, reason: str) -> None:
        if len(self.shown) < MAX_BAD_LINES:
            self.shown.append(f"{self.path}:{number}: skipped {_clipped(line)}: {reason}")
        else:
            self.more += 1

    def lines(self) -> tuple[str, ...]:
        tail = (f"{self.path}: ... and {self.more} more bad lines",) if self.more else ()
        return (*self.shown, *tail)


def _clipped(line: str) -> str:
    """*line* as a warning shows it: repr, at most BAD_LINE_SHOWN characters of it."""
    return repr(line if len(line) <= BAD_LINE_SHOWN else line[:BAD_LINE_SHOWN] + "...")


def _lines(text: str) -> Iterator[str]:
    """The LF-separated lines of *text*, one at a time (a garbage file never becomes a list of
    millions of strings at once)."""
    start, end = 0, len(text)
    while start < end:
        stop = text.find("\n", start)
        if stop < 0:
            stop = end
        yield text[start:stop]
        start = stop + 1


class _Csv(NamedTuple):
    entries: list[ListedFile]
    warnings: tuple[str, ...]
    rounded_sizes: bool  # some size was in readable units (within 5 % of the truth)


def _load_csv(path: Path, text: str) -> _Csv:
    fast = _load_plain_csv(text)
    if fast is not None:
        return _Csv(_dedup(fast), (), False)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rounded = False
    try:
        header = next(reader, None)
        if header is None or tuple(header) != CSV_HEADER:
            raise ListFileError(f"{path}: not a prefetch csv (first line must be 'path,size,elapsed')")
        entries: list[ListedFile] = []
        bad = _BadLines(path)
        for row in reader:
            line = reader.line_num
            if len(row) != 3:
                raise ListFileError(f"{path}:{line}: expected 3 columns, got {len(row)}")
            size_text, elapsed_text = row[1], row[2]
            try:  # plain integers (what we and the optimizer write by default) take the short way
                if size_text.isdigit() and size_text.isascii():
                    size: int | None = _digits(size_text)
                else:
                    size = _parse_amount(size_text, _SIZE_UNITS)
                    rounded = rounded or size is not None
                elapsed = (_digits(elapsed_text) if elapsed_text.isdigit() and elapsed_text.isascii()
                           else _parse_amount(elapsed_text, _TIME_UNITS))
            except ValueError as err:
                raise ListFileError(f"{path}:{line}: bad size or elapsed {_clipped(err.args[0])}") from None
            if not row[0].startswith("/"):
                bad.add(line, row[0], "not an absolute path")
                continue
            entries.append(ListedFile(row[0], size, elapsed))
    except csv.Error as err:
        raise ListFileError(f"{path}:{reader.line_num}: malformed csv: {err}") from None
    return _Csv(_dedup(entries), bad.lines(), rounded)


def _load_plain_csv(text: str) -> list[ListedFile] | None:
    """The rows of a csv in the common shape, fast: no quoted field (so no path holds a comma, a
    quote or a line break), LF line ends, integer sizes and times, absolute paths. None for
    anything else, which the csv module then reads with every check and message."""
    header = ",".join(CSV_HEADER)
    if '"' in text or "\r" in text or not (text == header or text.startswith(header + "\n")):
        return None
    if "\n" in text[len(header) + 1:] and not text.endswith("\n"):
        return None
    entries = []
    lines = _lines(text)
    next(lines)
    for line in lines:
        if not line:
            continue
        fields = line.split(",")
        if len(fields) != 3:
            return None
        path, size, elapsed = fields
        if not (path.startswith("/") and size.isdigit() and size.isascii() and elapsed.isdigit()
                and elapsed.isascii()):
            return None
        try:
            entries.append(ListedFile(path, int(size), int(elapsed)))
        except ValueError:  # more digits than int() reads: the csv module's way says which
            return None
    return entries


def load_range_list(path: str | os.PathLike[str], *, follow: bool = True) -> RangeBook:
    """A range list (ours or anyone's) as a book: ``null`` is a whole file. Raises ListFileError.
    Not *follow*: a symlink at *path* is refused, and a missing file raises ReadMissing."""
    path = Path(path)
    try:  # the bytes are dropped once decoded: the text alone is parsed
        text = read_regular(path, limit=RANGE_LIST_MAX_BYTES, follow=follow).decode("utf-8", "surrogateescape")
    except ReadMissing as err:
        if not follow:
            raise
        raise ListFileError(str(err)) from None
    except ReadError as err:
        raise ListFileError(str(err)) from None
    return _range_book_of(text, str(path))


def _range_book_of(data: bytes | str, path: str) -> RangeBook:
    """A range list's bytes (or, read within the limit, its text) as a book. Raises ListFileError
    (one line naming *path*)."""
    if isinstance(data, bytes):
        if len(data) > RANGE_LIST_MAX_BYTES:
            raise ListFileError(f"{path}: larger than {RANGE_LIST_MAX_BYTES} bytes")
        data = data.decode("utf-8", "surrogateescape")
    if _items(data) > RANGE_LIST_MAX_ITEMS:
        raise ListFileError(f"{path}: bad range list: more than {RANGE_LIST_MAX_ITEMS} JSON values and keys, not read")
    try:
        doc = json.loads(data, object_hook=_compact_file)
    except RecursionError:  # a pulled file is the registry's: any nesting can come
        raise ListFileError(f"{path}: bad range list: nested too deep") from None
    except ValueError as err:
        raise ListFileError(f"{path}: bad range list: not JSON ({err})") from None
    try:
        return _range_book(doc)
    except ValueError as err:
        raise ListFileError(f"{path}: bad range list: {err}") from None


class _BadRanges(NamedTuple):
    """A file's ranges that are no ranges: why, said when the file's turn comes."""

    why: str


def _compact_file(item: dict[str, Any]) -> dict[str, Any]:
    """A file of a range list as JSON decodes it: its ranges made a RangeSet at once (or why they
    cannot be), so the document never holds every range as lists of ints (8M ranges: 1.5 GiB)."""
    pairs = item.get("ranges")
    if isinstance(item.get("path"), str) and isinstance(pairs, list):
        try:
            item["ranges"] = RangeSet.from_pairs(pairs)
        except ValueError as err:
            item["ranges"] = _BadRanges(str(err))
    return item


def _range_book(doc: object) -> RangeBook:
    """The book a decoded range list describes; ValueError (one line) for anything else."""
    if not isinstance(doc, dict) or doc.get("version") != RANGE_LIST_VERSION:
        raise ValueError(f"not a {RANGE_LIST_VERSION} range list")
    files = doc.get("files")
    if not isinstance(files, list):
        raise ValueError("'files' must be a list")
    book = RangeBook()
    for item in files:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str) or "ranges" not in item:
            raise ValueError("each file must be {\"path\": string, \"ranges\": [...] or null}")
        pairs = item["ranges"]
        if isinstance(pairs, _BadRanges):
            raise ValueError(pairs.why)
        book.set(item["path"], pairs if pairs is None or isinstance(pairs, RangeSet) else RangeSet.from_pairs(pairs))
    return book


def _past_end(book: RangeBook, files: Iterable[tuple[str, int | None]], rounded_sizes: bool) -> str | None:
    """Why *book* does not fit *files* (path, size) (a range beyond a file's size), or None.
    Sizes in readable units (*rounded_sizes*) are within 5 % of the truth."""
    for path, size in files:
        ranges = book.get(path)
        if ranges is None or size is None:
            continue
        bound = size + size // 20 + 1 if rounded_sizes else size
        if ranges.end > bound:
            return f"ranges of {path!r} end at {ranges.end}, beyond its size {size}"
    return None


def check_files(files: Mapping[str, bytes], name: str) -> None:
    """Check the files of one list by suffix ("" the plain list, ".csv", the metadata, the range
    list) before they are pushed or after they are pulled: a plain list of absolute paths, one a
    line, with at least one (no NUL byte: no path has one, a binary file does); a text csv that
    starts with its header (its rows are checked when it is read: a bad row then skips that run);
    metadata and ranges that parse. Fast: no object per line. Raises ListFileError (one line
    naming *name*)."""
    plain = files.get("")
    if plain is None:
        raise ListFileError(f"{name}: no plain list")
    if b"\0" in plain:
        raise ListFileError(f"{name}: a binary file, not a prefetch list")
    relative = _RELATIVE_LINE.search(plain)
    if relative is not None:
        line = plain.count(b"\n", 0, relative.end() - 1) + 1
        raise ListFileError(f"{name}:{line}: not an absolute path: not a prefetch list")
    if not plain.strip(b"\n"):
        raise ListFileError(f"{name}: an empty list")
    if ".csv" in files:
        data = files[".csv"]
        if b"\0" in data:
            raise ListFileError(f"{name}.csv: a binary file, not a prefetch csv")
        if not data.startswith(",".join(CSV_HEADER).encode() + b"\n"):
            raise ListFileError(f"{name}.csv: not a prefetch csv (first line must be 'path,size,elapsed')")
    if listmeta.SUFFIX in files:
        try:
            listmeta.decode(files[listmeta.SUFFIX], name=name + listmeta.SUFFIX)
        except listmeta.MetaError as err:
            raise ListFileError(str(err)) from None
    if RANGES_SUFFIX in files:
        _range_book_of(files[RANGES_SUFFIX], name + RANGES_SUFFIX)


def _sibling_ranges(path: Path, warnings: list[str]) -> RangeBook | None:
    sibling = ranges_path(path)
    try:
        return load_range_list(sibling, follow=False)
    except ReadMissing:
        return None
    except ListFileError as err:
        warnings.append(f"{err} (ranges left out)")
        return None


def load_list(path: str | os.PathLike[str]) -> LoadedList:
    """Load a plain list or a csv (ours or the optimizer's; readable units accepted).

    A plain list takes sizes and elapsed times from its sibling ``.csv`` when that exists (a
    sibling that cannot be used is one warning); either takes byte ranges from the sibling
    ``<list>.ranges.json`` (:func:`ranges_path`) when that exists. Duplicates keep their first occurrence;
    relative paths are skipped with a warning. Raises ListFileError (one line naming the file)
    if the file is unreadable or malformed.
    """
    path = Path(path)
    try:
        text = _read_text(path)
    except ReadMissing as err:
        raise ListFileError(str(err)) from None
    if path.suffix == ".csv" or text.startswith(",".join(CSV_HEADER) + "\n"):
        table = _load_csv(path, text)
        return _with_sidecars(path, table.entries, list(table.warnings), table.rounded_sizes)
    sibling = Path(os.fspath(path) + ".csv")
    details: dict[str, ListedFile] = {}
    warnings: list[str] = []
    rounded = False
    try:
        table = _load_csv(sibling, _read_text(sibling, follow=False))
        details = {e.path: e for e in table.entries}
        rounded = table.rounded_sizes
    except ReadMissing:
        pass
    except ListFileError as err:
        warnings.append(f"{err} (sizes and times left out)")
    entries: list[ListedFile] = []
    bad = _BadLines(path)
    for number, line in enumerate(_lines(text), 1):
        if not line:
            continue
        if not line.startswith("/"):
            bad.add(number, line, "not an absolute path")
            continue
        detail = details.get(line)
        entries.append(detail if detail is not None else ListedFile(line))
    return _with_sidecars(path, _dedup(entries), [*warnings, *bad.lines()], rounded)


def _with_sidecars(path: Path, entries: list[ListedFile], warnings: list[str], rounded_sizes: bool) -> LoadedList:
    """*entries* with the ranges and the metadata beside *path*; a sibling file that cannot be
    used is a warning, and so are ranges beyond a file's size (ranges left out)."""
    ranges, meta = _sidecars(path, lambda: ((e.path, e.size) for e in entries), warnings, rounded_sizes)
    return LoadedList(tuple(entries), tuple(warnings), ranges, meta)


def _sidecars(path: Path, files: Callable[[], Iterable[tuple[str, int | None]]], warnings: list[str],
              rounded_sizes: bool) -> tuple[RangeBook | None, ListMeta | None]:
    """The range list and the metadata beside *path* (a list of *files*: (path, size)), each None
    when absent or unusable (one warning in *warnings*)."""
    ranges = _sibling_ranges(path, warnings)
    if ranges is not None:
        why = _past_end(ranges, files(), rounded_sizes)
        if why is not None:
            warnings.append(f"{ranges_path(path)}: bad range list: {why} (ranges left out)")
            ranges = None
    try:
        meta = listmeta.read(path)
    except listmeta.MetaError as err:
        warnings.append(f"{err} (list identity unknown)")
        meta = None
    return ranges, meta


# ---------------------------------------------------------------- huge lists, compactly


@dataclass(frozen=True, slots=True)
class LoadedColumns:
    """A loaded list as columns of a PathTable's ids (see :func:`load_columns`)."""

    columns: ListColumns
    warnings: tuple[str, ...] = ()
    ranges: RangeBook | None = None
    meta: ListMeta | None = None


def load_columns(path: str | os.PathLike[str], paths: PathTable) -> LoadedColumns:
    """:func:`load_list` into columns of *paths* (its new paths added): the same entries, warnings,
    ranges and metadata, without an object per entry. A ``.csv`` in the common shape (what we and
    the optimizer write), or a plain list without a csv beside it, is read a chunk at a time and
    never held whole: a 3M-line csv takes about 100 bytes a line (issue 18 item 7); anything else
    is read by :func:`load_list`. Raises ListFileError as it does."""
    path = Path(path)
    warnings: list[str] = []
    columns = _stream_plain_csv(path, paths) if path.suffix == ".csv" else _stream_plain_list(path, paths, warnings)
    if columns is None:
        loaded = load_list(path)
        return LoadedColumns(columns_of(loaded.entries, paths), loaded.warnings, loaded.ranges, loaded.meta)
    ids, sizes = columns.ids, columns.sizes
    ranges, meta = _sidecars(path, lambda: ((paths[f], None if z == NONE else z)
                                            for f, z in zip(ids, sizes, strict=True)), warnings, False)
    return LoadedColumns(columns, tuple(warnings), ranges, meta)


def _stream_plain_csv(path: Path, paths: PathTable) -> ListColumns | None:
    """The csv at *path* as columns, when it is in the shape :func:`_load_plain_csv` takes, read a
    chunk at a time; None for anything else (paths it added are forgotten again)."""
    known = len(paths)
    try:
        columns = _plain_csv_columns(regular_chunks(path, limit=LIST_MAX_BYTES), paths)
    except (ReadError, OverflowError, ValueError):  # read again by load_list: its error, its exact numbers
        # or which one has more digits than int() reads
        columns = None
    if columns is None:
        paths.truncate(known)
    return columns


def _stream_plain_list(path: Path, paths: PathTable, warnings: list[str]) -> ListColumns | None:
    """The plain list at *path* as columns (no sizes or times), read a chunk at a time, when no
    csv is beside it and it does not start as a csv; its skipped lines go to *warnings*. None for
    anything else (paths it added are forgotten again)."""
    if os.path.lexists(f"{path}.csv"):
        return None
    known = len(paths)
    bad = _BadLines(path)
    try:
        columns = _plain_list_columns(regular_chunks(path, limit=LIST_MAX_BYTES), paths, bad)
    except ReadError:  # read again by load_list, for its error
        columns = None
    if columns is None:
        paths.truncate(known)
        return None
    warnings.extend(bad.lines())
    return columns


class _ChunkLines:
    """The LF-separated lines of bytes read a chunk at a time: iterating gives, for each chunk
    with a line break, the lines it ends (without their LF), in one list. A line longer than a
    chunk waits as its chunks and is joined once, when it ends (a hostile list's one huge line,
    joined again with each chunk, took quadratic time). Once iterated, :attr:`tail` is what
    follows the last line break (b"" when the bytes end with one, or are none)."""

    __slots__ = ("_chunks", "tail")

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.tail = b""

    def __iter__(self) -> Iterator[list[bytes]]:
        pending = b""  # the start of the next line, in the chunk that ended the last one
        waiting: list[bytes] = []  # the next line's chunks after that, none with a line break
        for chunk in self._chunks:
            if b"\n" not in chunk:
                waiting.append(chunk)
                continue
            lines = b"".join([pending, *waiting, chunk]).split(b"\n")
            waiting.clear()
            pending = lines.pop()
            yield lines
        self.tail = b"".join([pending, *waiting])


def _plain_list_columns(chunks: Iterable[bytes], paths: PathTable, bad: _BadLines) -> ListColumns | None:
    """:func:`load_list`'s reading of a plain list (then each path once) over its bytes a chunk at
    a time; None when it starts as a csv."""
    header = ",".join(CSV_HEADER).encode()
    ids, sizes, times = array("i"), array("q"), array("q")
    seen = Marks(paths)
    id_of, again = paths.id_of, seen.again
    lines = _ChunkLines(chunks)
    number = 0
    for batch in lines:
        if number == 0 and batch[0] == header:  # its first line is a csv's header
            return None
        for raw in batch:
            number += 1
            if raw:
                _plain_line(raw, number, id_of, again, ids, bad)
    if lines.tail:
        _plain_line(lines.tail, number + 1, id_of, again, ids, bad)
    sizes.extend(array("q", [NONE]) * len(ids))
    times.extend(array("q", [NONE]) * len(ids))
    return ListColumns(ids, sizes, times)


def _plain_line(raw: bytes, number: int, id_of: Callable[[str], int], again: Callable[[int], bool],
                ids: array[int], bad: _BadLines) -> None:
    line = raw.decode("utf-8", "surrogateescape")
    if not line.startswith("/"):
        bad.add(number, line, "not an absolute path")
        return
    fid = id_of(line)
    if not again(fid):
        ids.append(fid)


class _Uncommon(Exception):
    """A csv chunk holds a quote or a CR: the csv is not in the common shape."""


def _unquoted(chunk: bytes) -> bytes:
    """*chunk*, or _Uncommon when it holds a quote or a CR."""
    if b'"' in chunk or b"\r" in chunk:
        raise _Uncommon
    return chunk


def _plain_csv_columns(chunks: Iterable[bytes], paths: PathTable) -> ListColumns | None:
    """:func:`_load_plain_csv` (then each path once) over a csv's bytes a chunk at a time."""
    header = ",".join(CSV_HEADER).encode()
    into = ListColumns(array("i"), array("q"), array("q"))
    seen = Marks(paths)
    lines = _ChunkLines(map(_unquoted, chunks))  # each chunk checked before the lines it ends are read
    started = False  # the header line is read
    later = False  # a line break follows the header's
    try:
        for batch in lines:
            if not started:
                if batch[0] != header:
                    return None
                started = True
                del batch[0]
            later = later or bool(batch)
            if not _plain_csv_rows(list(filter(None, batch)), paths, seen, into):
                return None
    except _Uncommon:
        return None
    tail = lines.tail
    if not tail:
        return into if started else None
    if not started:  # not one line break
        return into if tail == header else None
    if later:  # rows without a line break at the end
        return None
    # the header's line break is the only one: one row after it, which _load_plain_csv takes too
    return into if _plain_csv_rows([tail], paths, seen, into) else None


def _plain_csv_rows(lines: list[bytes], paths: PathTable, seen: Marks, into: ListColumns) -> bool:
    """Non-empty csv rows added to *into* (paths not named before), each field list taken whole
    (C speed); False when a row is not in the common shape (three fields, an absolute path, digits)."""
    if not lines:
        return True
    if set(map(bytes.count, lines, repeat(b","))) != {2}:
        return False
    fields = b",".join(lines).split(b",")
    names, sizes, times = fields[0::3], fields[1::3], fields[2::3]
    if not (all(map(bytes.startswith, names, repeat(b"/"))) and all(map(bytes.isdigit, sizes))
            and all(map(bytes.isdigit, times))):
        return False
    ids = paths.ids_of(list(map(bytes.decode, names, repeat("utf-8"), repeat("surrogateescape"))))
    if seen.fresh(ids):
        into.ids.extend(ids)
        into.sizes.extend(array("q", map(int, sizes)))
        into.times.extend(array("q", map(int, times)))
        return True
    for fid, size, elapsed in zip(ids, sizes, times, strict=True):
        if not seen.again(fid):
            into.ids.append(fid)
            into.sizes.append(int(size))
            into.times.append(int(elapsed))
    return True


def merge(*runs: Iterable[Listable]) -> list[Listable]:
    """Entries of all *runs* in order of first appearance (run by run), each path once."""
    return _dedup(entry for run in runs for entry in run)
