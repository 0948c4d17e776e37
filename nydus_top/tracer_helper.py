"""Warm tracer helper: a single-threaded process that keeps one forked tracer ready per request.

Started once by :class:`nydus_top.tracer.TracerPool` with one end of a SEQPACKET socketpair as
argv[1]. It imports everything a trace needs up front and answers ``W`` when warm. A request is a
JSON message ``{"pid": int, "cid": str | None, "bounded": bool, "small": bool, "ranges": bool,
"granularity": int}`` (bounded and small are test knobs; ranges asks for a range trace,
:mod:`nydus_top.range_session`, instead of a file trace, granularity its chunk size) with three fds attached (SCM_RIGHTS): the write end
of the line stream, the write end of the status pipe and the read end of the stop pipe.

Requests are taken by a *spare*: a child forked in advance, with its buffers already faulted in,
blocked on the socket. The spare that takes a request tells the helper (which forks the next
spare) and becomes that trace's tracer (:func:`nydus_top.trace_session.run`). Neither the
interpreter's start-up nor a fork is on the arming path. Everything exits when the socket closes.
"""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import sys

from nydus_top import range_session, trace_session

MAX_MSG = 4096
TAKEN = b"T"


def _request(sock: socket.socket) -> tuple[dict, list[int]] | None:
    """Wait for one well-formed request: (run's keyword arguments, fds). None when the socket is closed."""
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
            kw = {"pid": int(req["pid"]), "container_id": None if cid is None else str(cid),
                  "bounded": bool(req.get("bounded", False)), "small_set": bool(req.get("small", False)),
                  "ranges": bool(req.get("ranges", False)), "granularity": int(req.get("granularity", 0))}
            if len(fds) == 3 and kw["pid"] > 0:
                return kw, list(fds)
        except (ValueError, KeyError, TypeError):
            pass
        for fd in fds:
            os.close(fd)


def _spare(sock: socket.socket, taken_w: int) -> int:
    """Body of a forked spare: wait for a request, report it taken, trace."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setpriority(os.PRIO_PROCESS, 0, trace_session.NICE_ARM)
    trace_session.preallocate()
    req = _request(sock)
    if req is None:
        return 0
    kw, (out_fd, status_fd, stop_fd) = req
    os.write(taken_w, TAKEN)
    os.close(taken_w)
    sock.close()
    granularity = kw.pop("granularity")
    if kw.pop("ranges"):
        return range_session.run(kw["pid"], out_fd=out_fd, status_fd=status_fd, stop_fd=stop_fd,
                                 container_id=kw["container_id"], small_set=kw["small_set"],
                                 granularity=granularity)
    return trace_session.run(out_fd=out_fd, status_fd=status_fd, stop_fd=stop_fd, **kw)


def serve(sock: socket.socket) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the TUI's terminal is not for us
    sock.sendall(b"W")
    while True:
        taken_r, taken_w = os.pipe()
        if os.fork() == 0:
            code = 2
            try:
                os.close(taken_r)
                code = _spare(sock, taken_w)
            finally:
                os._exit(code)
        os.close(taken_w)
        taken = os.read(taken_r, 1)
        os.close(taken_r)
        if taken != TAKEN:  # the socket closed (or the spare died): the pool starts a new helper
            return


def main() -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 2)  # never write to the caller's terminal
    os.close(devnull)  # nor hand a spare fd to every tracer
    serve(socket.socket(fileno=int(sys.argv[1])))


if __name__ == "__main__":
    main()
