"""``nydus-top consensus``: the list many runs agree on, and how stable each file is.

Inputs are runs (the recorder's run store), saved lists, or the optimizer's result files (plain
or ``.csv``); a directory stands for every run in it, and ``--image REF`` for every run of that
image under persist_dir. Without ``-o`` it prints the stability table (``--json`` for JSON lines).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nydus_top.config import ConfigError, load_config
from nydus_top.fs.confined import within
from nydus_top.fs.reading import is_regular
from nydus_top.imageref import ImageRefError
from nydus_top.lists.files import ListExistsError, ListFileError, LoadedList, load_list, save_list
from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import ListedFile
from nydus_top.runs import store as runstore
from nydus_top.runs.consensus import DEFAULT_MIN_SHARE, FileStability, Tally, as_entries
from nydus_top.text import printable

PROG = "nydus-top consensus"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", metavar="RUN_OR_LIST", nargs="*", type=Path,
                        help="runs, saved lists or optimizer result files; a directory means every run in it")
    parser.add_argument("--image", metavar="REF", action="append", default=[],
                        help="every run of this image kept under persist_dir (repeatable)")
    parser.add_argument("--pull", metavar="REF", action="append", default=[],
                        help="first fetch the lists attached to this image in the registry into its runs, "
                        "then count every run of it (repeatable; see nydus-top pull)")
    parser.add_argument("--plain-http", action="store_true", help="with --pull: HTTP, not HTTPS")
    parser.add_argument("--min-share", type=_share, default=DEFAULT_MIN_SHARE, metavar="S",
                        help=f"keep files read in at least this share of the runs (default {DEFAULT_MIN_SHARE})")
    parser.add_argument("-o", "--output", type=Path, metavar="OUT", help="save the consensus list (+ .csv, metadata)")
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    parser.add_argument("--json", action="store_true", help="print the stability table as JSON lines")


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def expand(inputs: list[Path], images: list[str], persist_dir: Path) -> list[Path]:
    """Every list file the arguments name, in order; raises ListFileError when one names nothing."""
    paths: list[Path] = []
    for image in images:
        try:
            found = runstore.runs_of(runstore.image_dir(persist_dir, image))
        except ImageRefError as err:
            raise ListFileError(f"--image {image}: {err}") from None
        if not found:
            raise ListFileError(f"no runs of {image} under {persist_dir / runstore.RUNS_DIR}")
        paths.extend(found)
    for item in inputs:
        if item.is_dir():
            found = runstore.runs_of(item)
            if not found:
                raise ListFileError(f"{item}: no runs in this directory")
            paths.extend(found)
        else:
            paths.append(item)
    return paths


def tally_of(paths: list[Path]) -> tuple[Tally, list[str], list[ListMeta]]:
    """Count every list in *paths* (one at a time, so memory holds one list's entries at most)."""
    tally = Tally()
    warnings: list[str] = []
    metas: list[ListMeta] = []
    for path in paths:
        # A saved list's csv holds all it says (paths in order, sizes, times): read that alone.
        csv = Path(f"{path}.csv")
        loaded = load_list(csv if not path.name.endswith(".csv") and is_regular(csv) else path)
        warnings.extend(loaded.warnings)
        if loaded.meta is not None:
            metas.append(loaded.meta)
        tally.add(loaded.entries, name=str(path), runtime=loaded.meta.runtime if loaded.meta is not None else ())
    return tally, warnings, metas


def _row(f: FileStability) -> str:
    elapsed = "-" if f.elapsed_us is None else f"{f.elapsed_us / 1000:.1f}ms±{(f.elapsed_spread_us or 0) / 1000:.1f}"
    flag = " runtime-created" if f.runtime_created else ""
    return f"{f.seen:>3}/{f.runs:<3} {f.position:>8.1f}±{f.position_spread:<5} {elapsed:>16}  {printable(f.path)}{flag}"


def _json(f: FileStability) -> str:
    return json.dumps({"path": f.path, "seen": f.seen, "runs": f.runs, "share": round(f.share, 4),
                       "position": f.position, "position_spread": f.position_spread,
                       "elapsed_us": f.elapsed_us, "elapsed_spread_us": f.elapsed_spread_us,
                       "size": f.size, "runtime_created": f.runtime_created}, ensure_ascii=True)


def _image_of(metas: list[ListMeta]) -> str:
    images = {m.image for m in metas if m.image}
    return images.pop() if len(images) == 1 else ""


def _pull(images: list[str], persist_dir: Path, plain_http: bool) -> None:
    from nydus_top.commands.pull import pull_into  # noqa: PLC0415 - the registry SDK loads only when asked
    from nydus_top.registry.artifacts import RegistryError  # noqa: PLC0415 - as above

    for image in images:
        try:
            pull_into(image, runstore.image_dir(persist_dir, image), plain_http=plain_http, persist_dir=persist_dir)
        except (RegistryError, ImageRefError, OSError) as err:
            raise ListFileError(f"--pull {image}: {err}") from None


def registry_consensus(image: str, persist_dir: Path, *, plain_http: bool,
                       min_share: float = DEFAULT_MIN_SHARE) -> LoadedList:
    """Fetch the lists attached to *image* into its runs, and the consensus of every run of it as
    a loaded list (metadata: the image and the runs). Raises ListFileError (one line)."""
    _pull([image], persist_dir, plain_http)
    tally, warnings, metas = tally_of(expand([], [image], persist_dir))
    meta = ListMeta(image=image, runs=tuple(tally.names), complete=all(m.complete for m in metas))
    entries = tuple(ListedFile(e.path, e.size, e.elapsed_us) for e in as_entries(tally.consensus(min_share)))
    note = f"consensus of {tally.runs} runs of {image} at {min_share:g}: {len(entries)} of {tally.distinct} files"
    return LoadedList(entries, (*warnings, note), meta=meta)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(getattr(args, "config", None))
        _pull(args.pull, config.persist_dir, args.plain_http)
        paths = expand(args.inputs, [*args.image, *args.pull], config.persist_dir)
        if not paths:
            print(f"{PROG}: name at least one run, list or --image", file=sys.stderr)
            return 2
        tally, warnings, metas = tally_of(paths)
    except (ConfigError, ListFileError) as err:
        print(f"{PROG}: {printable(str(err))}", file=sys.stderr)
        return 2
    for line in warnings:
        print(f"{PROG}: {printable(line)}", file=sys.stderr)
    if args.output is None:
        if not args.json:
            print(f"{'seen':<7} {'position':>14} {'first access':>16}  path")
        for f in tally.stability():
            print(_json(f) if args.json else _row(f))
        return 0
    chosen = tally.consensus(args.min_share)
    meta = ListMeta(image=_image_of(metas), runs=tuple(tally.names),
                    complete=all(m.complete for m in metas)).with_origin()
    try:
        saved = save_list(as_entries(chosen), args.output, readable=config.readable, overwrite=args.force, meta=meta,
                          root=within(args.output, config.persist_dir))  # under persist_dir: no symlink followed
    except ListExistsError as err:
        print(f"{PROG}: {printable(str(err.path))} exists (pass --force to replace it)", file=sys.stderr)
        return 1
    except ListFileError as err:
        print(f"{PROG}: {printable(str(err))}", file=sys.stderr)
        return 1
    for line in saved.warnings:
        print(f"{PROG}: {printable(line)}", file=sys.stderr)
    print(f"saved {saved.written} of {tally.distinct} files (read in >= {args.min_share:g} of "
          f"{tally.runs} runs) to {printable(str(args.output))}")
    return 0
