"""``nydus-top convert LIST``: build a nydus (or eStargz / zstd:chunked) image with LIST as its prefetch list.

Runs ``nydusify convert --source SRC --target TGT --fs-version 6 --prefetch-patterns`` with the
list on stdin, printing nydusify's output as it comes with the elapsed time. ``--format estargz``
(or ``zstdchunked``) runs ``ctr-remote image convert`` with the list as its record on containerd's
content store instead, then ``ctr-remote image push``. With
``--range-list OUT.json`` it writes the range list for ``nydusify optimize --prefetch-files``
instead of converting: the ranges saved beside LIST (``LIST.ranges.json``) rounded out to the
granularity, whole files where none are known.

SIGTERM and SIGINT end the conversion: nydusify's whole process group gets SIGTERM (SIGKILL after
the grace period), the command says so and exits 128 + the signal. Both handlers are installed
explicitly for the whole command, so a ``convert`` started as a background job (SIGINT ignored)
can be cancelled as well, and nydusify, exec'd while our handlers are in place, starts with both
signals at their defaults whatever we inherited.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from nydus_top.commands.consensus import registry_consensus
from nydus_top.config import CONVERT_FORMATS, Config, ConfigError, load_config
from nydus_top.convert import formats
from nydus_top.convert.nydusify import Conversion, ConversionError
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
    parser.add_argument("--plain-http", action="store_true",
                        help="with --pull, and ctr-remote's push: HTTP, not HTTPS (also for the registries "
                        "[registry] plain_http lists)")
    parser.add_argument("--format", choices=CONVERT_FORMATS,
                        help="nydusify (nydus), estargz or zstdchunked (with ctr-remote; default: [convert] format)")
    parser.add_argument("--address", metavar="SOCKET", type=Path,
                        help="containerd socket ctr-remote converts on (default: [convert] containerd_address)")
    parser.add_argument("--namespace", help="containerd namespace (default: [convert] containerd_namespace)")
    parser.add_argument("--ctr-remote", metavar="PATH", help="ctr-remote binary (default: from the configuration)")
    parser.add_argument("--no-push", action="store_true",
                        help="ctr-remote formats: leave the converted image in containerd, do not push it")
    parser.add_argument("--source", help="source image (default: the image in LIST's metadata, LIST.nydus-top.json)")
    parser.add_argument("--target", help="target image (default: the [convert] target template, or the "
                        "estargz_target / zstdchunked_target one)")
    parser.add_argument("--range-list", metavar="OUT.json", type=Path,
                        help="write the range list for `nydusify optimize --prefetch-files` instead of converting")
    parser.add_argument("--granularity", type=int, metavar="BYTES",
                        help="round --range-list ranges out to this (default: [ranges] granularity; 0 = exact)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --range-list file")
    parser.add_argument("--nydusify", metavar="PATH", help="nydusify binary (default: from the configuration)")
    parser.add_argument("--nydusify-arg", metavar="ARG", action="append", default=[],
                        help="extra argument for nydusify, e.g. --nydusify-arg=--platform=linux/amd64"
                             " (repeatable; after the configured ones)")


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(Exception):
    """SIGTERM or SIGINT came before nydusify started."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Stop:
    """The command's SIGTERM/SIGINT handler: before nydusify runs it raises Stopped; once a
    conversion is set it cancels it from another thread (``cancel`` takes the lock ``run`` may
    hold on this very thread)."""

    def __init__(self) -> None:
        self.conversion: Conversion | None = None
        self.signum = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.signum:
            return  # already ending
        self.signum = signum
        if self.conversion is None:
            raise Stopped(signum)
        threading.Thread(target=self.conversion.cancel, name="nydusify-cancel", daemon=True).start()


@contextmanager
def _stop_signals() -> Iterator[_Stop]:
    stop = _Stop()
    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(args: argparse.Namespace) -> int:
    with _stop_signals() as stop:
        try:
            return _run(args, stop)
        except Stopped as err:
            print(f"nydus-top convert: {err}: stopped", file=sys.stderr)
            return 128 + err.signum


def _run(args: argparse.Namespace, stop: _Stop) -> int:
    if (args.list is None) == (args.pull is None):
        print("nydus-top convert: name a LIST or --pull IMAGE (one of them)", file=sys.stderr)
        return 2
    try:
        config = _with_flags(load_config(args.config), args)
        if args.pull is not None:
            if not 0.0 < args.min_share <= 1.0:
                raise ListFileError(f"--min-share must be in (0, 1], got {args.min_share}")
            loaded = registry_consensus(args.pull, config, plain_http=args.plain_http,
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
        fmt = config.convert_format
        conversion, warnings = formats.prepare(config, fmt, source, loaded.entries, target=args.target,
                                               nydusify=args.nydusify, extra_args=args.nydusify_arg,
                                               push=not args.no_push, plain_http=args.plain_http)
        for line in warnings:
            print(printable(f"nydus-top convert: {line}"), file=sys.stderr)
        print(printable("running: " + " ".join(conversion.argv) + f" < {formats.input_name(fmt)}"), flush=True)
        stop.conversion = conversion  # from here on a signal cancels it (before its start too)
        result = conversion.run(lambda line: print(printable(line.shown()), flush=True))
    except ConversionError as err:
        print(printable(f"nydus-top convert: {err}"), file=sys.stderr)
        return 2
    if stop.signum and result.cancelled:
        print(f"nydus-top convert: {signal.Signals(stop.signum).name}: {result.summary()}", file=sys.stderr)
        return 128 + stop.signum
    print(printable(result.summary()), file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else (result.returncode if result.returncode > 0 else 1)


def _with_flags(config: Config, args: argparse.Namespace) -> Config:
    """*config* with the converter flags given on the command line."""
    flags = {"convert_format": args.format, "containerd_address": args.address,
             "containerd_namespace": args.namespace, "ctr_remote": args.ctr_remote}
    given = {name: value for name, value in flags.items() if value is not None}
    return config.overridden(given, "command line") if given else config
