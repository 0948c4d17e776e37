"""``nydus-top diff A B``: two runs or lists side by side (files only in one, moved, time deltas)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nydus_top.lists.diff import DEFAULT_MOVED, ListDiff, diff
from nydus_top.lists.files import ListFileError, load_list
from nydus_top.text import counted, printable

PROG = "nydus-top diff"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A", type=Path, help="a run, saved list or optimizer result file")
    parser.add_argument("b", metavar="B", type=Path, help="the one to compare it with")
    parser.add_argument("--moved", type=int, default=DEFAULT_MOVED, metavar="K",
                        help=f"report files whose position shifts by more than K (default {DEFAULT_MOVED})")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")


def _ms(us: int | None) -> str:
    return "-" if us is None else f"{us / 1000:+.1f}ms"


def render(result: ListDiff, a: str, b: str, moved_by: int, same_order: bool = False) -> list[str]:
    """The text report, every path escaped for the terminal; positions 1-based (first file = 1).
    Without differences it says so (*same_order*: the two lists hold the same paths in the same order)."""
    lines = [f"{counted(result.common, 'file')} in both, {len(result.only_a)} only in A, "
             f"{len(result.only_b)} only in B, {len(result.moved)} moved by more than {moved_by}",
             f"A = {printable(a)}", f"B = {printable(b)}"]
    if not (result.only_a or result.only_b or result.moved):
        lines.append("no differences: the same files in the same order" if same_order
                     else f"no differences: the same files, none moved by more than {moved_by}")
    lines += [f"- {printable(path)}" for path in result.only_a]
    lines += [f"+ {printable(path)}" for path in result.only_b]
    lines += [f"~ {m.position_a + 1:>6} -> {m.position_b + 1:<6} ({m.shift:+d}, {_ms(m.delta_us)}) {printable(m.path)}"
              for m in result.moved]
    return lines


def run(args: argparse.Namespace) -> int:
    if args.moved < 0:
        print(f"{PROG}: --moved must be >= 0", file=sys.stderr)
        return 2
    try:
        a, b = load_list(args.a), load_list(args.b)
    except ListFileError as err:
        print(f"{PROG}: {printable(str(err))}", file=sys.stderr)
        return 2
    for line in (*a.warnings, *b.warnings):
        print(f"{PROG}: {printable(line)}", file=sys.stderr)
    result = diff(a.entries, b.entries, moved_by=args.moved)
    if args.json:
        print(json.dumps({"a": str(args.a), "b": str(args.b), **result.as_json()}, ensure_ascii=True))
    else:
        same_order = [e.path for e in a.entries] == [e.path for e in b.entries]
        print("\n".join(render(result, str(args.a), str(args.b), args.moved, same_order)))
    return 0
