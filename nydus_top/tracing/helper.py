"""Warm tracer helper: a single-threaded process that keeps one forked tracer ready per request.

Started once by :class:`nydus_top.tracing.tracer.TracerPool` with one end of a SEQPACKET socketpair as
argv[1]. It imports everything a trace needs up front and answers ``W`` when warm. A request is a
JSON message ``{"pid": int, "cid": str | None, "bounded": bool, "small": bool, "ranges": bool,
"granularity": int, "window_ms": int}`` (bounded and small are test knobs; ranges asks for a range
trace, :mod:`nydus_top.tracing.range_session`, instead of a file trace, granularity its chunk size,
window_ms how long it records) with three fds attached (SCM_RIGHTS): the write end of the line
stream, the write end of the status pipe and the read end of the stop pipe; a range trace has a
fourth, its end of the watchdog's socket.

Requests are taken by a *spare*: a child forked in advance, with its buffers already faulted in,
blocked on the socket. The spare that takes a request tells the helper (which forks the next
spare) and becomes that trace's tracer (:func:`nydus_top.tracing.file_session.run`). Neither the
interpreter's start-up nor a fork is on the arming path. Everything exits when the socket closes.

The helper is every tracer's parent: it reaps them, and keeps a copy of each one's status pipe
(handed over with ``T``) to say ``E tracer killed by signal SIGKILL`` when a signal ended it,
which the tracer itself cannot.
"""

from __future__ import annotations

import array
import json
import os
import select
import signal
import socket
import sys
from typing import TypedDict

from nydus_top.tracing import file_session as trace_session
from nydus_top.tracing import range_session

MAX_MSG = 4096
TAKEN = b"T"


class _Request(TypedDict):
    """A request: trace_session.run's keyword arguments, or with ``ranges`` range_session.run's."""

    pid: int
    container_id: str | None
    bounded: bool
    small_set: bool
    ranges: bool
    granularity: int
    window_ms: int
    mapped: bool


def _request(sock: socket.socket) -> tuple[_Request, list[int]] | None:
    """Wait for one well-formed request: (the request, fds). None when the socket is closed."""
    while True:
        fds = array.array("i")
        try:
            msg, ancdata, _flags, _addr = sock.recvmsg(MAX_MSG, socket.CMSG_SPACE(16 * fds.itemsize))
        except InterruptedError:
            continue
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        if not msg and not fds:
            return None
        try:
            req = json.loads(msg)
            cid = req.get("cid")
            kw: _Request = {"pid": int(req["pid"]), "container_id": None if cid is None else str(cid),
                            "bounded": bool(req.get("bounded", False)), "small_set": bool(req.get("small", False)),
                            "ranges": bool(req.get("ranges", False)),
                            "granularity": int(req.get("granularity", 0)),
                            "window_ms": int(req.get("window_ms", range_session.WINDOW_MS)),
                            "mapped": bool(req.get("mapped", True))}
            if len(fds) == (4 if kw["ranges"] else 3) and kw["pid"] > 0:
                return kw, list(fds)
        except (ValueError, KeyError, TypeError):
            pass
        for fd in fds:
            os.close(fd)


def _spare(sock: socket.socket, taken: socket.socket) -> int:
    """Body of a forked spare: wait for a request, report it taken (with its status fd), trace."""
    os.setpriority(os.PRIO_PROCESS, 0, trace_session.NICE_ARM)
    trace_session.preallocate()
    req = _request(sock)
    if req is None:
        return 0
    kw, fds = req
    out_fd, status_fd, stop_fd = fds[:3]
    socket.send_fds(taken, [TAKEN], [status_fd])
    taken.close()
    sock.close()
    if kw["ranges"]:
        return range_session.run(kw["pid"], out_fd=out_fd, status_fd=status_fd, stop_fd=stop_fd,
                                 container_id=kw["container_id"], small_set=kw["small_set"],
                                 granularity=kw["granularity"], watch_fd=fds[3], window_ms=kw["window_ms"],
                                 mapped=kw["mapped"])
    return trace_session.run(kw["pid"], out_fd=out_fd, status_fd=status_fd, stop_fd=stop_fd,
                             container_id=kw["container_id"], bounded=kw["bounded"], small_set=kw["small_set"])


def _reap(status_of: dict[int, int]) -> None:
    """Reap every tracer that has ended; tell the trace of one a signal ended.

    Only tracers, whose ``T`` the helper has read, are reaped: a spare that ended may have taken a
    request just before, and its socket, not its exit, says which (see :func:`serve`)."""
    for pid in list(status_of):
        try:
            ended, wstatus = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            ended, wstatus = pid, 0
        if ended == 0:
            continue
        fd = status_of.pop(pid)
        if os.WIFSIGNALED(wstatus):
            try:
                name = signal.Signals(os.WTERMSIG(wstatus)).name
            except ValueError:
                name = str(os.WTERMSIG(wstatus))
            try:
                os.write(fd, trace_session.ERROR + f"tracer killed by signal {name}".encode())
            except OSError:
                pass
        os.close(fd)


def serve(sock: socket.socket) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the TUI's terminal is not for us
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the loop below, which reaps
    status_of: dict[int, int] = {}  # tracer pid -> our copy of its status pipe
    sock.sendall(b"W")
    while True:
        taken_r, taken_w = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        spare = os.fork()
        if spare == 0:
            code = 2
            try:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                for fd in (wake_r, wake_w, *status_of.values()):  # other traces' pipes must close with them
                    os.close(fd)
                taken_r.close()
                code = _spare(sock, taken_w)
            finally:
                os._exit(code)
        taken_w.close()
        taken = False
        while not taken:
            ready = select.select([taken_r.fileno(), wake_r], [], [])[0]
            if taken_r.fileno() in ready:
                msg, fds, _flags, _addr = socket.recv_fds(taken_r, 16, 1)
                # no T: the spare ended untaken, the socket closed (the pool starts a new helper)
                if msg != TAKEN or len(fds) != 1:
                    for fd in fds:
                        os.close(fd)
                    taken_r.close()
                    return
                status_of[spare] = fds[0]
                taken = True
            if wake_r in ready or taken:  # taken: the byte of its exit may have gone with an earlier drain
                while _drain(wake_r):
                    pass
                _reap(status_of)
        taken_r.close()


def _drain(fd: int) -> bool:
    try:
        return bool(os.read(fd, 4096))
    except BlockingIOError:
        return False


def main() -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 2)  # never write to the caller's terminal
    os.close(devnull)  # nor hand a spare fd to every tracer
    serve(socket.socket(fileno=int(sys.argv[1])))


if __name__ == "__main__":
    main()
