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

# name -> (module, one-line help, global options it uses). Each module provides
# add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "ps": ("nydus_top.commands.ps", "list the pods and containers containerd reports over NRI",
           ("--config", "--nri-socket")),
    "trace": ("nydus_top.commands.trace", "stream a container's file accesses as JSON lines (needs root)",
              ("--config", "--nri-socket")),
    "convert": ("nydus_top.commands.convert", "build a nydus image with a prefetch list (runs nydusify)",
                ("--config",)),
    "record": ("nydus_top.commands.record", "record start-up file lists headlessly, like the optimizer NRI plugin",
               ("--config", "--nri-socket")),
    "consensus": ("nydus_top.commands.consensus", "the list many runs agree on, and how stable each file is",
                  ("--config",)),
    "evaluate": ("nydus_top.commands.evaluate", "what a list is worth against recorded starts: hit rates, "
                 "waste, predicted stall", ("--config",)),
    "diff": ("nydus_top.commands.diff", "compare two runs or lists: files only in one, moved files, time deltas", ()),
    "push": ("nydus_top.commands.push", "attach a saved list to its image in the OCI registry", ("--config",)),
    "pull": ("nydus_top.commands.pull", "fetch every list attached to an image in the OCI registry", ("--config",)),
}
# Options taken before or after the subcommand: (metavar, help).
GLOBAL_OPTIONS: dict[str, tuple[str, str]] = {
    "--config": ("PATH", "config file read after the system and user ones (highest priority)"),
    "--nri-socket": ("PATH", "containerd's NRI socket (default: the fd in $NRI_PLUGIN_SOCKET when containerd"
                             " launched us, else $NYDUS_TOP_NRI_SOCKET, else [nri] socket of the config)"),
}


def _users(option: str) -> str:
    return ", ".join(["the app", *(name for name, (_, _, uses) in COMMANDS.items() if option in uses)])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nydus-top",
        description="Profile container start-up on a node and curate nydus prefetch lists. "
        "Without a COMMAND, opens the interactive app (needs root and containerd's NRI socket).",
    )
    parser.add_argument("--version", action="version", version=f"nydus-top {__version__}")
    for option, (metavar, help_text) in GLOBAL_OPTIONS.items():
        parser.add_argument(option, metavar=metavar, help=f"{help_text}; for {_users(option)}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text, uses) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.set_defaults(_module=module)
        for option in uses:  # SUPPRESS: not given here keeps what was given before the command
            metavar, option_help = GLOBAL_OPTIONS[option]
            cmd.add_argument(option, metavar=metavar, default=argparse.SUPPRESS, help=option_help)
        importlib.import_module(module).add_arguments(cmd)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse *argv*; a global option before a command that does not use it is an error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is not None:
        uses = COMMANDS[args.command][2]
        for option in GLOBAL_OPTIONS:
            if option not in uses and getattr(args, option[2:].replace("-", "_")) is not None:
                parser.error(f"{option} does not apply to '{args.command}' (it is for {_users(option)})")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    module = "nydus_top.screens.run" if args.command is None else args._module
    try:
        status: int = importlib.import_module(module).run(args)  # every command module's run(args) -> int
        return status
    except KeyboardInterrupt:
        return 130
    except MemoryError:  # under an address space limit: a list near LIST_MAX_BYTES takes a few times its size
        name = "nydus-top" if args.command is None else f"nydus-top {args.command}"
        print(f"{name}: out of memory (a list too large for the memory this process may use)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
