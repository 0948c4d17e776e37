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
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from nydus_top.fs import confined
from nydus_top.fs.confined import ConfinedError, ConfinedExistsError
from nydus_top.imageref import ImageRefError, parse_image_ref
from nydus_top.lists import meta as listmeta
from nydus_top.lists.meta import ListMeta
from nydus_top.lists.ranges import DEFAULT_GRANULARITY, RangeBook, RangeSet, prefetch_ranges
from nydus_top.model.records import Listable, ListedFile
from nydus_top.text import printable

CSV_HEADER = ("path", "size", "elapsed")
RANGE_LIST_VERSION = "v1"
RANGES_SUFFIX = ".ranges.json"  # a saved list's ranges: <list>.ranges.json, itself a range list
RANGE_LIST_MAX_BYTES = 256 << 20  # a range list read back is at most this big
_RELATIVE_LINE = re.compile(rb"(?:\A|\n)[^/\n]")  # a non-empty line that is no absolute path

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


def write_atomic(files: Sequence[tuple[Path, bytes]], *, overwrite: bool = False,
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
    """Entries of a loaded list, its metadata when it has some, and one warning line per line
    that was skipped (or per metadata file that could not be used)."""

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


def _parse_amount(text: str, units: tuple[str, ...]) -> int | None:
    """An int, or a readable amount in one of *units* (rounded); None for ''."""
    if text == "":
        return None
    if text.isascii() and text.isdigit():
        return int(text)
    match = _READABLE.fullmatch(text)
    if match is None or match.group(2) not in units:
        raise ValueError(text)
    return round(float(match.group(1)) * _UNIT[match.group(2)])


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
    book = ranges if ranges is not None else RangeBook()
    files = [{"path": entry.path, "ranges": prefetch_ranges(book.get(entry.path), entry.size, granularity)}
             for entry in kept]
    doc = {"version": RANGE_LIST_VERSION, "files": files}
    return (json.dumps(doc, ensure_ascii=False, indent=1) + "\n").encode(), warnings


def save_list(
    entries: Iterable[Listable], list_path: str | os.PathLike[str], *, readable: bool = False,
    overwrite: bool = False, meta: ListMeta | None = None, ranges: RangeBook | None = None,
    granularity: int = DEFAULT_GRANULARITY, root: str | os.PathLike[str] | None = None,
) -> SaveResult:
    """Save *entries* as ``list_path`` (plain list) and ``list_path.csv``, atomically, with
    *meta* also ``list_path.nydus-top.json`` (its ``files`` count set to what was written), with
    *ranges* also their range list ``list_path.ranges.json`` (see :func:`range_list`); all in
    one atomic write, and :func:`load_list` reads them back. The plain list and csv stay the
    optimizer's, byte for byte.

    Raises ListExistsError (nothing written) when any exists and *overwrite* is false,
    ListFileError on any I/O error (old files intact). Left-out paths are in the warnings.
    *root*: see :func:`write_atomic` (persist_dir for results saved there).
    """
    path = Path(list_path)
    csv_path = Path(os.fspath(path) + ".csv")
    if ranges is not None and iter(entries) is entries:  # a one-shot iterator: the range list reads it again
        entries = list(entries)
    plain, table, warnings = render(entries, readable=readable)
    files = [(path, plain), (csv_path, table)]
    if meta is not None:
        counted = dataclasses.replace(meta, files=plain.count(b"\n"))
        files.append((listmeta.path_for(path), listmeta.encode(counted)))
    if ranges is not None:
        data, _ = range_list(entries, ranges, granularity)  # its left-outs are warned about above
        files.append((ranges_path(path), data))
    removed = write_atomic(files, overwrite=overwrite, root=root)
    return SaveResult(tuple(p for p, _ in files), plain.count(b"\n"), (*removed, *warnings))


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


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", "surrogateescape")
    except OSError as err:
        raise ListFileError(f"cannot read {path}: {confined.describe(err)}") from None


def _load_csv(path: Path, text: str) -> LoadedList:
    fast = _load_plain_csv(text)
    if fast is not None:
        return LoadedList(tuple(_dedup(fast)))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None or tuple(header) != CSV_HEADER:
            raise ListFileError(f"{path}: not a prefetch csv (first line must be 'path,size,elapsed')")
        entries: list[ListedFile] = []
        warnings: list[str] = []
        for row in reader:
            line = reader.line_num
            if len(row) != 3:
                raise ListFileError(f"{path}:{line}: expected 3 columns, got {len(row)}")
            size_text, elapsed_text = row[1], row[2]
            try:  # plain integers (what we and the optimizer write by default) take the short way
                size = (int(size_text) if size_text.isdigit() and size_text.isascii()
                        else _parse_amount(size_text, _SIZE_UNITS))
                elapsed = (int(elapsed_text) if elapsed_text.isdigit() and elapsed_text.isascii()
                           else _parse_amount(elapsed_text, _TIME_UNITS))
            except ValueError as err:
                raise ListFileError(f"{path}:{line}: bad size or elapsed {err.args[0]!r}") from None
            if not row[0].startswith("/"):
                warnings.append(f"{path}:{line}: skipped {row[0]!r}: not an absolute path")
                continue
            entries.append(ListedFile(row[0], size, elapsed))
    except csv.Error as err:
        raise ListFileError(f"{path}:{reader.line_num}: malformed csv: {err}") from None
    return LoadedList(tuple(_dedup(entries)), tuple(warnings))


def _load_plain_csv(text: str) -> list[ListedFile] | None:
    """The rows of a csv in the common shape, fast: no quoted field (so no path holds a comma, a
    quote or a line break), LF line ends, integer sizes and times, absolute paths. None for
    anything else, which the csv module then reads with every check and message."""
    if '"' in text or "\r" in text:
        return None
    lines = text.split("\n")
    if lines[0] != ",".join(CSV_HEADER) or (lines[-1] and len(lines) > 1 and not text.endswith("\n")):
        return None
    entries = []
    for line in lines[1:]:
        if not line:
            continue
        fields = line.split(",")
        if len(fields) != 3:
            return None
        path, size, elapsed = fields
        if not (path.startswith("/") and size.isdigit() and size.isascii() and elapsed.isdigit()
                and elapsed.isascii()):
            return None
        entries.append(ListedFile(path, int(size), int(elapsed)))
    return entries


def load_range_list(path: str | os.PathLike[str]) -> RangeBook:
    """A range list (ours or anyone's) as a book: ``null`` is a whole file. Raises ListFileError."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = f.read(RANGE_LIST_MAX_BYTES + 1)
    except OSError as err:
        raise ListFileError(f"cannot read {path}: {confined.describe(err)}") from None
    return _range_book(data, str(path))


def _range_book(data: bytes, path: str) -> RangeBook:
    """A range list's bytes as a book. Raises ListFileError naming *path*."""
    if len(data) > RANGE_LIST_MAX_BYTES:
        raise ListFileError(f"{path}: larger than {RANGE_LIST_MAX_BYTES} bytes")
    try:
        doc = json.loads(data.decode("utf-8", "surrogateescape"))
        if not isinstance(doc, dict) or doc.get("version") != RANGE_LIST_VERSION:
            raise ValueError(f"not a {RANGE_LIST_VERSION} range list")
        book = RangeBook()
        for item in doc["files"]:
            pairs = item["ranges"]
            book.set(str(item["path"]), None if pairs is None else RangeSet.from_pairs(pairs))
    except (ValueError, KeyError, TypeError, RecursionError) as err:
        raise ListFileError(f"{path}: bad range list: {_first_line(err)}") from None
    return book


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:300] if lines else type(err).__name__


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
        _range_book(files[RANGES_SUFFIX], name + RANGES_SUFFIX)


def _sibling_ranges(path: Path, warnings: list[str]) -> RangeBook | None:
    sibling = ranges_path(path)
    if not sibling.is_file():
        return None
    try:
        return load_range_list(sibling)
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
    text = _read_text(path)
    if path.suffix == ".csv" or text.startswith(",".join(CSV_HEADER) + "\n"):
        return _with_sidecars(path, _load_csv(path, text))
    sibling = Path(os.fspath(path) + ".csv")
    details: dict[str, ListedFile] = {}
    warnings: list[str] = []
    if sibling.is_file():
        try:
            details = {e.path: e for e in _load_csv(sibling, _read_text(sibling)).entries}
        except ListFileError as err:
            warnings.append(f"{err} (sizes and times left out)")
    entries: list[ListedFile] = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        if not line.startswith("/"):
            warnings.append(f"{path}:{number}: skipped {line!r}: not an absolute path")
            continue
        detail = details.get(line)
        entries.append(detail if detail is not None else ListedFile(line))
    return _with_sidecars(path, LoadedList(tuple(_dedup(entries)), tuple(warnings)))


def _with_sidecars(path: Path, loaded: LoadedList) -> LoadedList:
    """*loaded* with the ranges and the metadata beside *path*; a sibling file that cannot be
    used is a warning."""
    warnings = list(loaded.warnings)
    ranges = _sibling_ranges(path, warnings)
    try:
        meta = listmeta.read(path)
    except listmeta.MetaError as err:
        warnings.append(f"{err} (list identity unknown)")
        meta = None
    return LoadedList(loaded.entries, tuple(warnings), ranges, meta)


def merge(*runs: Iterable[Listable]) -> list[Listable]:
    """Entries of all *runs* in order of first appearance (run by run), each path once."""
    return _dedup(entry for run in runs for entry in run)
