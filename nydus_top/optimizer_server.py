"""``nydus-top-tracer``: a drop-in ``server_path`` for nydus-snapshotter's optimizer NRI plugin.

Protocol of that plugin: it starts the server with only ``_MNTNS_PID`` and ``_TARGET`` in the
environment, reads one JSON object a line from stdout (``path``, ``size`` as uint32, ``elapsed``
in microseconds; unknown fields ignored), and ends it with SIGTERM to its process group. Every
line is written as soon as its batch is read; nothing goes to stderr (the plugin dies on stderr
output where there is no syslog). Paths with CR/LF are left out (one path a line in its list)
and sizes are clamped to uint32. An overflow is a line with an empty path, which the list
consumers skip as a relative path. Optional ``NYDUS_TOP_READY_FD``: an inherited fd that gets
``R`` + pid once the mark is in place (see :mod:`nydus_top.trace_session`). Every other fd
beyond 0-2 is closed first.
"""

from __future__ import annotations

import os

from nydus_top import trace_session


def main() -> None:
    """Console script entry; never returns (the process ends with ``os._exit``, see arm)."""
    os._exit(serve())


def serve() -> int:
    if not os.environ.get("NYDUS_TOP_DEBUG"):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    try:
        pid = int(os.environ["_MNTNS_PID"])
        ready = os.environ.get("NYDUS_TOP_READY_FD")
        ready_fd = int(ready) if ready else None
    except (KeyError, ValueError):
        return 2
    # The plugin may leak its own fds to us (its NRI socket among them): none goes along into
    # the container's mount namespace.
    kept = ready_fd if ready_fd is not None and ready_fd > 2 else 2
    os.closerange(3, kept)
    os.closerange(kept + 1, os.sysconf("SC_OPEN_MAX"))
    return trace_session.run(pid, out_fd=1, ready_fd=ready_fd,
                             target=os.environ.get("_TARGET") or "/", compat=True)


if __name__ == "__main__":
    main()
