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

from nydus_top.commands.evaluate import AUTO, UsageError, add_link_arguments, link_of, prepare, report, share_or_auto
from nydus_top.config import Config
from nydus_top.fs.confined import within
from nydus_top.fs.reading import is_regular
from nydus_top.imageref import ImageRefError
from nydus_top.lists.files import ListExistsError, ListFileError, LoadedColumns, LoadedList, load_columns, save_list
from nydus_top.lists.meta import ListMeta
from nydus_top.lists.paths import PathTable
from nydus_top.model.records import ListedFile
from nydus_top.runs import evaluate as ev
from nydus_top.runs import names
from nydus_top.runs import store as runstore
from nydus_top.runs.consensus import DEFAULT_MIN_SHARE, ConsensusEntries, FileStability, Tally, as_entries
from nydus_top.runs.groups import SharedGroups
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
    parser.add_argument("--plain-http", action="store_true",
                        help="with --pull: HTTP, not HTTPS (also for the registries [registry] plain_http lists)")
    parser.add_argument("--min-share", type=share_or_auto, default=DEFAULT_MIN_SHARE, metavar="S",
                        help=f"keep files read in at least this share of the runs (default {DEFAULT_MIN_SHARE}); "
                        "auto: the smallest list whose mean predicted stall (leave-one-out, under the link "
                        f"model) is within {ev.AUTO_WITHIN:.0%}% of the best share's")
    add_link_arguments(parser)
    parser.add_argument("-o", "--output", type=Path, metavar="OUT", help="save the consensus list (+ .csv, metadata)")
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    parser.add_argument("--json", action="store_true", help="print the stability table as JSON lines")


def expand(inputs: list[Path], images: list[str], persist_dir: Path) -> list[Path]:
    """Every list file the arguments name, in order; raises ListFileError when one names nothing."""
    paths: list[Path] = []
    here = names.images_here(persist_dir) if images else []
    for image in images:
        paths.extend(runs_of_image(image, here, persist_dir))
    for item in inputs:
        if item.is_dir():
            found = runstore.runs_of(item)
            if not found:
                raise ListFileError(f"{item}: no runs in this directory")
            paths.extend(found)
        else:
            paths.append(item)
    return paths


def runs_of_image(image: str, here: list[str], persist_dir: Path) -> list[Path]:
    """The runs of the image *image* means among the images with runs *here* (a short name like
    ``demo:1`` when it is unambiguous); raises ListFileError (one line) naming what it could mean."""
    try:
        reference = names.resolve_image(image, here)
    except names.AmbiguousImageError as err:
        raise ListFileError(f"--image {err}") from None
    except names.UnknownImageError as err:
        reference, why = image, str(err)  # runs whose metadata names no image are found by the name alone
    else:
        why = f"no runs of {reference} under {persist_dir / runstore.RUNS_DIR}{_legacy(persist_dir, reference)}"
    try:
        found = runstore.runs_of(runstore.image_dir(persist_dir, reference))
    except ImageRefError as err:
        raise ListFileError(f"--image {image}: {err}") from None
    if not found:
        raise ListFileError(f"--image {image}: {why}")
    return found


def _legacy(persist_dir: Path, image: str) -> str:
    """A note on runs an earlier version kept for *image*'s path and tag without its registry host."""
    try:
        legacy = runstore.legacy_dir(persist_dir, image)
    except ImageRefError:  # a run's metadata named it (anyone's): image_dir says why in one line
        return ""
    if not runstore.runs_of(legacy):
        return ""
    return (f" ({legacy} holds runs kept without their registry host, not counted: pass that directory "
            "if they are this image's)")


def load_run(path: Path, paths: PathTable, warnings: list[str]) -> LoadedColumns | None:
    """The run (or list) at *path* as columns of *paths*, its warnings added to *warnings*; None,
    with a warning, for a run that cannot be read or holds no files: one bad run (a pulled one:
    anyone's) never spoils the others, and an empty run does not count."""
    # A saved list's csv holds all it says (paths in order, sizes, times): read that alone.
    csv = Path(f"{path}.csv")
    try:
        loaded = load_columns(csv if not path.name.endswith(".csv") and is_regular(csv) else path, paths)
    except ListFileError as err:
        warnings.append(f"skipped {path}: {err}")
        return None
    warnings.extend(loaded.warnings)
    if not loaded.columns:
        warnings.append(f"skipped {path}: no files (an empty run does not count)")
        return None
    return loaded


def tally_of(paths: list[Path], table: ev.Table | None = None) -> tuple[Tally, list[str], list[ListMeta]]:
    """Count every list in *paths* (one at a time, so memory holds one list's entries at most);
    with *table*, also add each to it (compactly) for the evaluation."""
    tally = Tally(table.paths, table.grouping) if table is not None else Tally()  # paths kept, runs grouped once
    warnings: list[str] = []
    metas: list[ListMeta] = []
    for path in paths:
        loaded = load_run(path, tally.paths, warnings)
        if loaded is None:
            continue
        if loaded.meta is not None:
            metas.append(loaded.meta)
        columns = loaded.columns
        tally.add_columns(columns, name=str(path), runtime=loaded.meta.runtime if loaded.meta is not None else ())
        if table is not None:
            table.add_columns(str(path), columns, loaded.ranges)
    if paths and not tally.runs:
        raise ListFileError(f"none of the {len(paths)} runs or lists named could be counted: "
                            + "; ".join(warnings[-3:]))
    return tally, warnings, metas


def _row(f: FileStability) -> str:
    """One stability row; the position is 1-based (the first file read is 1), as in the app."""
    elapsed = "-" if f.elapsed_us is None else f"{f.elapsed_us / 1000:.1f}ms±{(f.elapsed_spread_us or 0) / 1000:.1f}"
    flag = " runtime-created" if f.runtime_created else ""
    where = f"{f.position + 1:>8.1f}±{f.position_spread:<5}"
    return f"{f.seen:>3}/{f.runs:<3} {where} {elapsed:>16}  {printable(f.path)}{flag}"


def _json(f: FileStability) -> str:
    return json.dumps({"path": f.path, "seen": f.seen, "runs": f.runs, "share": round(f.share, 4),
                       "position": f.position + 1, "position_spread": f.position_spread,
                       "elapsed_us": f.elapsed_us, "elapsed_spread_us": f.elapsed_spread_us,
                       "size": f.size, "runtime_created": f.runtime_created}, ensure_ascii=True)


def _image_of(metas: list[ListMeta]) -> str:
    images = {m.image for m in metas if m.image}
    return images.pop() if len(images) == 1 else ""


def pull(images: list[str], config: Config, plain_http: bool) -> list[str]:
    """Fetch the lists of *images* into their runs; one line per artifact skipped."""
    from nydus_top.commands.pull import pull_into  # noqa: PLC0415 - the registry SDK loads only when asked
    from nydus_top.registry.artifacts import RegistryError  # noqa: PLC0415 - as above

    skipped = []
    for image in images:
        try:
            pulled = pull_into(image, runstore.image_dir(config.persist_dir, image), plain_http=plain_http,
                               persist_dir=config.persist_dir, max_bytes=config.max_pull_bytes,
                               max_lists=config.max_pull_lists,
                               plain_hosts=config.registry_plain_http)
        except (RegistryError, ImageRefError, OSError) as err:
            raise ListFileError(f"--pull {image}: {err}") from None
        skipped.extend(pulled.skipped)
    return skipped


def registry_consensus(image: str, config: Config, *, plain_http: bool,
                       min_share: float = DEFAULT_MIN_SHARE) -> LoadedList:
    """Fetch the lists attached to *image* into its runs, and the consensus of every run of it as
    a loaded list (metadata: the image and the runs). Raises ListFileError (one line)."""
    skipped = pull([image], config, plain_http)
    tally, warnings, metas = tally_of(expand([], [image], config.persist_dir))
    warnings = [*skipped, *warnings]
    meta = ListMeta(image=image, runs=tuple(tally.names), complete=all(m.complete for m in metas))
    entries = tuple(ListedFile(e.path, e.size, e.elapsed_us) for e in as_entries(tally.consensus(min_share)))
    note = f"consensus of {tally.runs} runs of {image} at {min_share:g}: {len(entries)} of {tally.distinct} files"
    return LoadedList(entries, (*warnings, note), meta=meta)


def named_runs(args: argparse.Namespace, config: Config, images: list[str]) -> tuple[list[Path], list[str]]:
    """Pull the lists of ``--pull``'s images, then every list file ``images`` and the inputs name:
    (the files, one line per artifact the pull skipped). Raises ListFileError."""
    skipped = pull(args.pull, config, args.plain_http)
    return expand(args.inputs, images, config.persist_dir), skipped


def _gather(args: argparse.Namespace, config: Config) -> tuple[tuple[ev.Table, Tally, list[ListMeta]], list[str]]:
    """The runs counted (each also in a table for the summary), their metadata, and warnings."""
    paths, skipped = named_runs(args, config, [*args.image, *args.pull])
    if not paths:
        raise UsageError("name at least one run, list or --image")
    table = ev.Table(grouping=SharedGroups())  # the tally groups the same columns: once for both
    tally, warnings, metas = tally_of(paths, table)
    return (table, tally, metas), [*skipped, *warnings]


def run(args: argparse.Namespace) -> int:
    prepared = prepare(args, PROG, _gather)
    if prepared is None:
        return 2
    config, (table, tally, metas) = prepared
    link = link_of(args, config.granularity)
    share, chosen_by = _share_of(args.min_share, table, link)
    if args.output is None:
        if not args.json:
            print(f"{'seen':<7} {'position':>14} {'first access':>16}  path")
        for fid in tally.order():  # one row at a time: no list of every file
            f = tally.summary(fid)
            print(_json(f) if args.json else _row(f))
        if not args.json:  # JSON lines without -o stay the stability rows alone
            print()
            _summary(table, link, share, chosen_by, as_json=False)
        return 0
    chosen = ConsensusEntries(tally, tally.consensus_order(share))
    meta = ListMeta(image=_image_of(metas), runs=tuple(tally.names),
                    complete=all(m.complete for m in metas)).with_origin()
    try:
        saved = save_list(chosen, args.output, readable=config.readable, overwrite=args.force, meta=meta,
                          root=within(args.output, config.persist_dir),  # under persist_dir: no symlink followed
                          distinct=True)  # written a piece at a time
    except ListExistsError as err:
        print(f"{PROG}: {printable(str(err.path))} exists (pass --force to replace it)", file=sys.stderr)
        return 1
    except ListFileError as err:
        print(f"{PROG}: {printable(str(err))}", file=sys.stderr)
        return 1
    for line in saved.warnings:
        print(f"{PROG}: {printable(line)}", file=sys.stderr)
    print(f"saved {saved.written} of {tally.distinct} files (read in >= {share:g} of "
          f"{tally.runs} runs) to {printable(str(args.output))}")
    _summary(table, link, share, chosen_by, as_json=args.json)
    return 0


def _share_of(asked: float | str, table: ev.Table, link: ev.Link) -> tuple[float, str]:
    """The min share to keep files at, and how it was chosen (for the summary's title)."""
    if asked != AUTO:
        return float(asked), ""
    share = ev.auto_share(ev.sweep(table, link))
    return share, f" (--min-share auto: the smallest list within {ev.AUTO_WITHIN:.0%} of the best mean stall)"


def _summary(table: ev.Table, link: ev.Link, share: float, chosen_by: str, *, as_json: bool) -> None:
    """Each run against the consensus of the others at *share*, and the mean (see nydus-top evaluate)."""
    report(ev.leave_one_out(table, link, share), link, as_json=as_json,
           title=f"leave-one-out at min share {share:g}{chosen_by}: each run against the consensus of the others")
