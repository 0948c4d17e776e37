"""Command line entry point: ``nydus-top [COMMAND]``; without a command it opens the app.

Each subcommand lives in its own module and is imported only when used, so
``nydus-top ps`` never pays for Textual and the tracer never pays for NRI.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from nydus_top import __version__

# name -> (module, one-line help). Each module provides add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "ps": ("nydus_top.commands.ps", "list the pods and containers containerd reports over NRI"),
    "trace": ("nydus_top.commands.trace", "stream a container's file accesses as JSON lines (needs root)"),
    "convert": ("nydus_top.commands.convert", "build a nydus image with a prefetch list (runs nydusify)"),
    "record": ("nydus_top.commands.record", "record start-up file lists headlessly, like the optimizer NRI plugin"),
    "consensus": ("nydus_top.commands.consensus", "the list many runs agree on, and how stable each file is"),
    "push": ("nydus_top.commands.push", "attach a saved list to its image in the OCI registry"),
    "pull": ("nydus_top.commands.pull", "fetch every list attached to an image in the OCI registry"),
    "diff": ("nydus_top.commands.diff", "compare two runs or lists: files only in one, moved files, time deltas"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nydus-top",
        description="Profile container start-up on a node and curate nydus prefetch lists. "
        "Without a COMMAND, opens the interactive app (needs root and containerd's NRI socket).",
    )
    parser.add_argument("--version", action="version", version=f"nydus-top {__version__}")
    parser.add_argument("--nri-socket", metavar="PATH",
                        help="containerd's NRI socket (default: [nri] socket of the config)")
    parser.add_argument("--config", metavar="PATH", help="config file read after the system and user ones")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module = "nydus_top.screens.run" if args.command is None else args._module
    try:
        return importlib.import_module(module).run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
