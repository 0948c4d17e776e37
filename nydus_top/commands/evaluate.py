"""``nydus-top evaluate``: what a list is worth before conversion, against recorded starts.

``nydus-top evaluate LIST [RUN_OR_LIST...|--image REF|--pull REF]``: each run scored against the
list (hit rates, waste, predicted stall and start under a link model, see
:mod:`nydus_top.runs.evaluate`), one row per run and the mean. Without runs, the runs of the
image the list's metadata names. A run the list was made from (named in its metadata's ``runs``)
is scored against the consensus of the list's other runs (leave-one-out at ``--min-share``),
never against a list it helped make. ``consensus`` prints the same summary (:func:`report`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from nydus_top.config import Config, ConfigError, load_config
from nydus_top.lists.files import ListFileError, LoadedList, load_list
from nydus_top.runs import evaluate as ev
from nydus_top.runs.consensus import DEFAULT_MIN_SHARE
from nydus_top.text import counted, human_size, printable

PROG = "nydus-top evaluate"
AUTO = "auto"
T = TypeVar("T")


def add_link_arguments(parser: argparse.ArgumentParser) -> None:
    """--bandwidth, --rtt, --policy: the link model (shared with ``consensus``)."""
    parser.add_argument("--bandwidth", type=_bandwidth, default=ev.DEFAULT_BANDWIDTH, metavar="RATE",
                        help="the link's bandwidth: 100Mbit (default), 1Gbit, 12.5MB (bytes/s)")
    parser.add_argument("--rtt", type=_seconds, default=ev.DEFAULT_RTT, metavar="TIME",
                        help="the round trip of an on-demand fetch: 20ms (default), 0.05s")
    parser.add_argument("--policy", choices=ev.POLICIES, default=ev.STREAM,
                        help="stream: the prefetch streams while the container runs (nydusd, default); "
                        f"wait: the start waits for the whole prefetch, at most {ev.PREFETCH_TIMEOUT:g} s "
                        "(the stargz snapshotter)")


def share_or_auto(text: str) -> float | str:
    """A share in (0, 1], or ``auto``."""
    if text == AUTO:
        return AUTO
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or auto: {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _bandwidth(text: str) -> float:
    try:
        return ev.parse_bandwidth(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _seconds(text: str) -> float:
    try:
        return ev.parse_seconds(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("list", metavar="LIST", type=Path, help="the list to judge (plain, .csv, or a saved list)")
    parser.add_argument("inputs", metavar="RUN_OR_LIST", nargs="*", type=Path,
                        help="recorded starts to judge it by; a directory means every run in it "
                        "(default: the runs of the image the list's metadata names)")
    parser.add_argument("--image", metavar="REF", action="append", default=[],
                        help="every run of this image kept under persist_dir (repeatable)")
    parser.add_argument("--pull", metavar="REF", action="append", default=[],
                        help="first fetch the lists attached to this image in the registry into its runs (repeatable)")
    parser.add_argument("--plain-http", action="store_true", help="with --pull: HTTP, not HTTPS")
    parser.add_argument("--min-share", type=share_or_auto, default=DEFAULT_MIN_SHARE, metavar="S",
                        help="the share the list's own runs are held out at (leave-one-out; default "
                        f"{DEFAULT_MIN_SHARE}; auto: the share --min-share auto of consensus picks)")
    add_link_arguments(parser)
    parser.add_argument("--json", action="store_true", help="JSON lines: one per run, then the mean")


def link_of(args: argparse.Namespace, chunk: int) -> ev.Link:
    return ev.Link(args.bandwidth, args.rtt, chunk, args.policy)


def describe(link: ev.Link) -> str:
    return (f"link {link.bandwidth * 8 / 1e6:g} Mbit/s, rtt {link.rtt * 1000:g} ms, chunk {human_size(link.chunk)}, "
            f"policy {link.policy}")


def _percent(value: float) -> str:
    return f"{value * 100:.1f} %"


def _row(name: str, against: str, files: str, s: ev.Score | ev.Summary) -> str:
    return (f"{printable(name)[-40:]:<40} {against:<7} {files:>6} {_percent(s.file_hit_rate):>8} "
            f"{_percent(s.byte_hit_rate):>8} {human_size(round(s.waste_bytes)):>9} {s.predicted_stall_s:>8.3f}s "
            f"{s.predicted_start_s:>8.3f}s")


HEADER = f"{'run':<40} {'against':<7} {'files':>6} {'hit':>8} {'hit B':>8} {'waste':>9} {'stall':>9} {'start':>9}"


def report(scores: list[ev.Score], link: ev.Link, *, as_json: bool, title: str = "") -> None:
    """Print the table per run and the mean (or JSON lines: ``kind`` run, then ``kind`` mean)."""
    summary = ev.mean(scores)
    if as_json:
        for s in scores:
            print(json.dumps(s.as_json(), ensure_ascii=True))
        print(json.dumps({**summary.as_json(), "bandwidth": link.bandwidth, "rtt_s": link.rtt, "chunk": link.chunk,
                          "policy": link.policy}, ensure_ascii=True))
        return
    if title:
        print(printable(title))
    print(describe(link))
    print(HEADER)
    for s in scores:
        print(_row(Path(s.run).name or s.run, s.against, str(s.files), s))  # a run's file name; JSON: as given
    print(_row(f"mean of {counted(summary.runs, 'run')}", "", "", summary))


def _members(names: list[str], runs: tuple[str, ...]) -> set[int]:
    """Which of *names* (run files) the list names as the runs it was made from (by file name)."""
    made_from = {Path(r).name for r in runs}
    return {i for i, name in enumerate(names) if Path(name).name in made_from}


class UsageError(Exception):
    """The arguments name nothing to work on (one line; exit 2)."""


def prepare(args: argparse.Namespace, prog: str,
            gather: Callable[[argparse.Namespace, Config], tuple[T, list[str]]]) -> tuple[Config, T] | None:
    """The preamble of ``evaluate`` and ``consensus``: load the config, then ``gather`` what the
    arguments name (its value and warnings). Prints each warning, or the one-line error of a bad
    config, list or usage (then None: exit 2), as ``prog: line`` on stderr."""
    try:
        config = load_config(getattr(args, "config", None))
        got, warnings = gather(args, config)
    except (ConfigError, ListFileError, UsageError) as err:
        print(f"{prog}: {printable(str(err))}", file=sys.stderr)
        return None
    for line in warnings:
        print(f"{prog}: {printable(line)}", file=sys.stderr)
    return config, got


Loaded = tuple[LoadedList, ev.Table, ev.Table]


def _gather(args: argparse.Namespace, config: Config) -> tuple[Loaded, list[str]]:
    """The list, the runs to score it against and the runs it was made from (each in a table of
    its own: the latter are held out in turn), and their warnings. Runs are read as columns, one
    at a time (as ``consensus`` reads them: a bad or empty run is skipped with a warning)."""
    from nydus_top.commands import consensus  # noqa: PLC0415 - shares its way of naming and reading runs

    listed = load_list(args.list)
    images = [*args.image, *args.pull]
    if not images and not args.inputs:
        if listed.meta is None or not listed.meta.image:
            raise UsageError("the list names no image: name runs or --image")
        images = [listed.meta.image]
    paths, skipped = consensus.named_runs(args, config, images)
    warnings = [*skipped, *listed.warnings]
    own = _members([str(path) for path in paths], listed.meta.runs if listed.meta is not None else ())
    given, members = ev.Table(), ev.Table()
    for i, path in enumerate(paths):
        table = members if i in own else given
        loaded = consensus.load_run(path, table.paths, warnings)
        if loaded is not None:
            table.add_columns(str(path), loaded.columns, loaded.ranges)
    if paths and not given.runs and not members.runs:
        raise ListFileError(f"none of the {len(paths)} runs or lists named could be read: " + "; ".join(warnings[-3:]))
    return (listed, given, members), warnings


def run(args: argparse.Namespace) -> int:
    prepared = prepare(args, PROG, _gather)
    if prepared is None:
        return 2
    config, (listed, given, members) = prepared
    del prepared
    link = link_of(args, config.granularity)
    scores = ev.score_list(given, listed.entries, listed.ranges, link)
    if members.runs:
        share = args.min_share
        if share == AUTO:
            share = ev.auto_share(ev.sweep(members, link))
        scores += ev.leave_one_out(members, link, float(share))
    title = (f"{args.list}: {counted(len(listed.entries), 'file')} · {counted(len(scores), 'run')}"
             + (f" ({len(members.runs)} the list was made from: held out at --min-share)" if members.runs else ""))
    report(scores, link, as_json=args.json, title=title)
    return 0
