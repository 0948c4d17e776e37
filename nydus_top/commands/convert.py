"""``nydus-top convert LIST``: build a nydus image with LIST as its prefetch list.

Runs ``nydusify convert --source SRC --target TGT --fs-version 6 --prefetch-patterns`` with the
list on stdin, printing nydusify's output as it comes with the elapsed time. With
``--range-list OUT.json`` it writes the range list for ``nydusify optimize --prefetch-files``
instead of converting: the ranges saved beside LIST (``LIST.ranges.json``) rounded out to the
granularity, whole files where none are known.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nydus_top.commands.consensus import registry_consensus
from nydus_top.config import ConfigError, load_config
from nydus_top.convert.nydusify import ConversionError, prepare_conversion
from nydus_top.fs.confined import within
from nydus_top.lists import meta as listmeta
from nydus_top.lists.files import ListExistsError, ListFileError, load_list, save_range_list
from nydus_top.runs.consensus import DEFAULT_MIN_SHARE
from nydus_top.text import counted, printable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("list", metavar="LIST", nargs="?",
                        help="prefetch list (plain or .csv, ours or the optimizer's); not with --pull")
    parser.add_argument("--pull", metavar="IMAGE",
                        help="instead of LIST: the consensus of the lists attached to IMAGE in its registry and of "
                        "its runs here (see nydus-top consensus --pull); IMAGE is also the default --source")
    parser.add_argument("--min-share", type=float, default=DEFAULT_MIN_SHARE, metavar="S",
                        help="with --pull: keep files read in at least this share of the runs "
                        f"(default {DEFAULT_MIN_SHARE})")
    parser.add_argument("--plain-http", action="store_true", help="with --pull: HTTP, not HTTPS")
    parser.add_argument("--source", help="source image (default: the image in LIST's metadata, LIST.nydus-top.json)")
    parser.add_argument("--target", help="target image (default: the [convert] target template)")
    parser.add_argument("--range-list", metavar="OUT.json", type=Path,
                        help="write the range list for `nydusify optimize --prefetch-files` instead of converting")
    parser.add_argument("--granularity", type=int, metavar="BYTES",
                        help="round --range-list ranges out to this (default: [ranges] granularity; 0 = exact)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --range-list file")
    parser.add_argument("--nydusify", metavar="PATH", help="nydusify binary (default: from the configuration)")
    parser.add_argument("--nydusify-arg", metavar="ARG", action="append", default=[],
                        help="extra argument for nydusify, e.g. --nydusify-arg=--platform=linux/amd64"
                             " (repeatable; after the configured ones)")


def run(args: argparse.Namespace) -> int:
    if (args.list is None) == (args.pull is None):
        print("nydus-top convert: name a LIST or --pull IMAGE (one of them)", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
        if args.pull is not None:
            if not 0.0 < args.min_share <= 1.0:
                raise ListFileError(f"--min-share must be in (0, 1], got {args.min_share}")
            loaded = registry_consensus(args.pull, config.persist_dir, plain_http=args.plain_http,
                                        min_share=args.min_share)
            args.list = f"the consensus of {args.pull}"
        else:
            loaded = load_list(args.list)
    except (ConfigError, ListFileError) as err:
        print(printable(f"nydus-top convert: {err}"), file=sys.stderr)
        return 2
    for line in (*config.notes, *loaded.warnings):
        print(printable(f"nydus-top convert: {line}"), file=sys.stderr)
    if args.range_list is not None:
        try:
            granularity = config.granularity if args.granularity is None else args.granularity
            if granularity < 0:
                raise ListFileError("--granularity must be >= 0")
            saved = save_range_list(loaded.entries, args.range_list, overwrite=args.force,
                                    ranges=loaded.ranges, granularity=granularity,
                                    root=within(args.range_list, config.persist_dir))
        except ListExistsError as err:
            print(printable(f"nydus-top convert: {err} (--force replaces it)"), file=sys.stderr)
            return 1
        except ListFileError as err:
            print(printable(f"nydus-top convert: {err}"), file=sys.stderr)
            return 1
        for line in saved.warnings:
            print(printable(f"nydus-top convert: {line}"), file=sys.stderr)
        print(printable(f"wrote {counted(saved.written, 'file')} to {args.range_list}"))
        return 0
    source = args.source or (loaded.meta.image if loaded.meta is not None else "")
    if not source:
        # A list's place under persist_dir has no registry host: never guess one.
        print(printable(f"nydus-top convert: {args.list} names no image (no image in {listmeta.path_for(args.list)}):"
                        " pass --source REGISTRY/REPO:TAG"), file=sys.stderr)
        return 2
    if loaded.meta is not None and not loaded.meta.complete:
        print(printable(f"nydus-top convert: the list may miss files: {loaded.meta.incomplete or 'incomplete'}"),
              file=sys.stderr)
    try:
        conversion, warnings = prepare_conversion(config, source, loaded.entries, target=args.target,
                                                  nydusify=args.nydusify, extra_args=args.nydusify_arg)
        for line in warnings:
            print(printable(f"nydus-top convert: {line}"), file=sys.stderr)
        print(printable("running: " + " ".join(conversion.argv)), flush=True)
        try:
            result = conversion.run(lambda line: print(printable(line.shown()), flush=True))
        except KeyboardInterrupt:  # run() has already killed nydusify's process group
            print("nydus-top convert: cancelled", file=sys.stderr)
            return 130
    except ConversionError as err:
        print(printable(f"nydus-top convert: {err}"), file=sys.stderr)
        return 2
    print(printable(result.summary()), file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else (result.returncode if result.returncode > 0 else 1)
