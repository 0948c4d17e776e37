"""``nydus-top trace --pid PID``: stream a container's file accesses as JSON lines to stdout."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Iterable

from nydus_top.commands.ps import list_once, nri_failure
from nydus_top.config import ConfigError, load_config
from nydus_top.model.node import Container, NodeModel
from nydus_top.nri.errors import ProtocolError
from nydus_top.nri.session import SOCKET_FD_ENV, ConnectionLost, PluginSession
from nydus_top.text import printable
from nydus_top.tracing import file_session as trace_session


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pid", type=int, required=True,
                        help="host pid of a process in the container (its mount namespace is traced)")
    parser.add_argument("--host", action="store_true",
                        help="trace PID although it is in no container containerd knows (a host process, on purpose)")
    parser.add_argument("--target", default="/", help="mount to mark, as the container sees it (default /)")
    parser.add_argument("--ready-fd", type=int, metavar="FD",
                        help="inherited fd that receives R + pid once the mark is in place, then an end byte")
    # --nri-socket and --config (nydus_top.cli's global options): the runtime asked which containers there are.
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="give up when the runtime has not synchronized within S seconds (default 10)")


def _fail(message: str) -> int:
    print(printable(f"nydus-top trace: {message}"), file=sys.stderr)
    return 2


def _cgroups(pid: int, pidfd: int) -> str:
    """Cgroup paths of *pid*, read while *pidfd* shows the same process alive ("" if gone)."""
    procfd = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        text = trace_session.cgroups(procfd, pid)
    finally:
        os.close(procfd)
    return text if trace_session.alive(pidfd) else ""


def container_of(pid: int, cgroups: str, containers: Iterable[Container]) -> str | None:
    """Id of the container *pid* belongs to: its process, or a process in its cgroup."""
    for c in containers:
        if c.pid == pid or (c.id and c.id in cgroups):
            return c.id
    return None


def _find_container(args: argparse.Namespace, pid: int, pidfd: int) -> tuple[str | None, str]:
    """(container id, "") or (None, why not), from one NRI synchronization."""

    cgroups = _cgroups(pid, pidfd)
    if not cgroups:
        return None, f"pid {pid} exited"
    try:
        config = load_config(getattr(args, "config", None))
        socket_path = getattr(args, "nri_socket", None) or (
            None if os.environ.get(SOCKET_FD_ENV) else str(config.nri_socket))
        model = NodeModel()
        session = PluginSession(model, socket_path, config.plugin_name, config.plugin_index)
    except (ConfigError, ValueError) as err:
        return None, str(err)
    try:
        asyncio.run(list_once(session, args.timeout))
    except (OSError, ConnectionLost, ProtocolError) as err:
        return None, (f"cannot ask containerd over NRI at {nri_failure(session.target, err)};"
                      " --host traces a pid without asking")
    cid = container_of(pid, cgroups, model.snapshot()[1].values())
    if cid is None:
        return None, (f"pid {pid} is in no container containerd reports over NRI "
                      "(--host traces a host process on purpose)")
    return cid, ""


def run(args: argparse.Namespace) -> int:
    """Trace in this process (single-threaded) until Ctrl-C, SIGTERM or the target's exit.
    Ends the process itself: after joining the container's mount namespace no more Python runs.

    The pid is checked against the containers containerd reports over NRI unless ``--host``; a
    pidfd opened before that check goes with it to the join, so a pid reused meanwhile is refused.
    """
    try:
        pidfd = os.pidfd_open(args.pid)
    except OSError as err:
        return _fail(f"pid {args.pid}: {err.strerror}")
    container_id = None
    if not args.host:
        container_id, why = _find_container(args, args.pid, pidfd)
        if container_id is None:
            os.close(pidfd)
            return _fail(why)
    sys.stdout.flush()
    status_r, status_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    code = trace_session.run(args.pid, out_fd=sys.stdout.fileno(), status_fd=status_w,
                             target=args.target, ready_fd=args.ready_fd, container_id=container_id,
                             pidfd=pidfd)
    os.close(status_w)
    status = os.read(status_r, 4096)
    os.close(status_r)
    if status[:1] == trace_session.ERROR:
        print(printable(f"nydus-top trace: {status[1:].decode('utf-8', 'replace')}"), file=sys.stderr)
    elif status.endswith(trace_session.EXITED):
        print(f"nydus-top trace: pid {args.pid} exited", file=sys.stderr)
    sys.stderr.flush()
    os._exit(code)
