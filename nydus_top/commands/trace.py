"""``nydus-top trace --pid PID``: stream a container's file accesses as JSON lines to stdout."""

from __future__ import annotations

import argparse
import os
import sys

from nydus_top import trace_session
from nydus_top.display import printable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pid", type=int, required=True,
                        help="host pid of a process in the container (its mount namespace is traced)")
    parser.add_argument("--target", default="/", help="mount to mark, as the container sees it (default /)")
    parser.add_argument("--ready-fd", type=int, metavar="FD",
                        help="inherited fd that receives R + pid once the mark is in place, then an end byte")


def run(args: argparse.Namespace) -> int:
    """Trace in this process (single-threaded) until Ctrl-C, SIGTERM or the target's exit.
    Ends the process itself: after joining the container's mount namespace no more Python runs."""
    sys.stdout.flush()
    status_r, status_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    code = trace_session.run(args.pid, out_fd=sys.stdout.fileno(), status_fd=status_w,
                             target=args.target, ready_fd=args.ready_fd)
    os.close(status_w)
    status = os.read(status_r, 4096)
    os.close(status_r)
    if status[:1] == trace_session.ERROR:
        print(printable(f"nydus-top trace: {status[1:].decode('utf-8', 'replace')}"), file=sys.stderr)
    elif status.endswith(trace_session.EXITED):
        print(f"nydus-top trace: pid {args.pid} exited", file=sys.stderr)
    sys.stderr.flush()
    os._exit(code)
