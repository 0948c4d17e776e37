"""Warm tracer helper: a single-threaded process that forks one tracer per request.

Started once by :class:`nydus_top.tracer.TracerPool` with one end of a SEQPACKET socketpair as
argv[1]. It imports everything a trace needs up front, answers ``W`` when warm, then serves
requests: a JSON message ``{"pid": int, "bounded": bool}`` with three fds attached (SCM_RIGHTS):
the write end of the line stream, the write end of the status pipe and the read end of the stop
pipe. Each request forks a child that runs :func:`nydus_top.trace_session.run` with them, so the
interpreter's start-up stays off the arming path. The helper exits when the socket closes.
"""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import sys

from nydus_top import trace_session

MAX_MSG = 4096


def _serve_one(sock: socket.socket, msg: bytes, fds: list[int]) -> None:
    try:
        req = json.loads(msg)
        pid, bounded = int(req["pid"]), bool(req.get("bounded", False))
        if len(fds) != 3 or pid <= 0:
            raise ValueError("bad request")
    except (ValueError, KeyError, TypeError):
        for fd in fds:
            os.close(fd)
        return
    out_fd, status_fd, stop_fd = fds
    if os.fork() == 0:
        code = 2
        try:
            sock.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            code = trace_session.run(pid, out_fd=out_fd, status_fd=status_fd, stop_fd=stop_fd,
                                     bounded=bounded)
        finally:
            os._exit(code)
    for fd in fds:
        os.close(fd)


def serve(sock: socket.socket) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the TUI's terminal is not for us
    sock.sendall(b"W")
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
            return
        _serve_one(sock, msg, list(fds))


def main() -> None:
    os.dup2(os.open(os.devnull, os.O_RDWR), 2)  # never write to the caller's terminal
    serve(socket.socket(fileno=int(sys.argv[1])))


if __name__ == "__main__":
    main()
