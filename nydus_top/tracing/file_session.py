"""The in-namespace side of a trace: arm a fanotify mark in a target's mount namespace, pump lines.

Runs in a single-threaded process (a fork of the warm helper or ``nydus-top trace``), because
``setns(CLONE_NEWNS)`` refuses multithreaded callers (the optimizer plugin's server,
``native/optimizer_server.c``, marks without joining). Only the mount namespace is joined, never
the pid namespace: the process stays invisible to the container and survives its pid 1. The C core (``native/tracer.c``)
reads events, de-duplicates and writes JSON lines into a buffer; this module writes that buffer to
``out_fd`` once per batch.

Status protocol on ``status_fd`` (optional, never stdout): ``R`` + the tracer's pid (4 bytes,
little endian) + the mark's wall-clock time (CLOCK_REALTIME nanoseconds, 8 bytes signed, little
endian: what a record's ``elapsed`` counts from) once the mark is in place (``ready_fd`` gets
``R`` + the pid alone), then one end byte: ``S`` stopped, ``X`` target exited;
or ``E`` + a UTF-8 message on failure.
"""

from __future__ import annotations

import os
import select
import signal
import struct
import sys
import time
from collections.abc import Callable

from nydus_top._native import ffi, lib

OUT_CAP = 1 << 20
READY, STOPPED, EXITED, ERROR = b"R", b"S", b"X", b"E"
# Arming is latency-critical (containerd waits for it): spares wait at NICE_ARM; once the mark
# is in place a tracer streams at NICE_STREAM, like any other process on the node.
NICE_ARM, NICE_STREAM = -10, 0


_spare_buf = None


def preallocate() -> None:
    """Allocate (and fault in) the next session's output buffer ahead of a request."""
    global _spare_buf
    _spare_buf = _spare_buf or ffi.new("char[]", OUT_CAP)


class ArmError(Exception):
    """The mark could not be placed (target gone, no permission, ...)."""


class Session:
    """A fanotify mark placed in the current mount namespace, with its output buffer. Owns
    ``procfd`` (the host procfs) once constructed."""

    def __init__(self, procfd: int, target: str, *, bounded: bool, small_set: bool = False) -> None:
        err = ffi.new("int *")
        flags = (lib.NT_BOUNDED if bounded else 0) | (lib.NT_SMALL_SET if small_set else 0)
        self._t = lib.nt_open(procfd, os.fsencode(target), flags, err)
        if self._t == ffi.NULL:
            raise ArmError(f"fanotify mark on {target!r}: {os.strerror(err[0])}")
        self.mark_ns = time.clock_gettime_ns(time.CLOCK_REALTIME)  # elapsed_us counts from here (within µs)
        self._procfd = procfd
        global _spare_buf
        self._buf, _spare_buf = _spare_buf or ffi.new("char[]", OUT_CAP), None
        self._view = memoryview(ffi.buffer(self._buf))

    @property
    def fd(self) -> int:
        fd: int = lib.nt_fd(self._t)
        return fd

    def drain_batch(self, out_fd: int) -> bool:
        """Write the lines of one batch of queued events to ``out_fd``; True if there were any."""
        n: int = lib.nt_drain(self._t, self._buf, OUT_CAP)
        if n < 0:
            raise OSError(-n, os.strerror(-n))
        _write_all(out_fd, self._view[:n])
        return n > 0

    def finish(self, out_fd: int) -> None:
        """Remove the mark, then drain what the kernel had queued: a container that keeps
        accessing files cannot make this last."""
        rc = lib.nt_unmark(self._t)
        if rc < 0:
            raise OSError(-rc, os.strerror(-rc))
        while self.drain_batch(out_fd) or select.select([self.fd], [], [], 0)[0]:
            pass

    def pump(self, out_fd: int, stop_fds: list[int], pidfd: int | None, *, hold: bool = False) -> bytes:
        """Stream until a stop fd is readable (or hung up) or the target exits; then finish.

        One batch between looks at the stop fds, so a stop is seen however fast events come.
        Returns STOPPED or EXITED. With ``hold`` (test knob) nothing is read before the stop.
        """
        poller = select.poll()
        if not hold:
            poller.register(self.fd, select.POLLIN)
        for fd in stop_fds:
            poller.register(fd, select.POLLIN)
        if pidfd is not None:
            poller.register(pidfd, select.POLLIN)
        more = False  # the last batch had lines: more may be buffered without the fd readable
        while True:
            ready = [fd for fd, _ in poller.poll(0 if more else None)]
            end = STOPPED if any(fd in stop_fds for fd in ready) else EXITED if pidfd in ready else None
            if end is not None:
                self.finish(out_fd)
                return end
            if not hold:
                more = self.drain_batch(out_fd)

    def close(self) -> None:
        if self._t != ffi.NULL:
            lib.nt_close(self._t)
            self._t = ffi.NULL
            os.close(self._procfd)


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data):]


def alive(pidfd: int) -> bool:
    """Whether the process of *pidfd* still runs."""
    return not select.select([pidfd], [], [], 0)[0]


def cgroups(procfd: int, pid: int) -> str:
    """Cgroup paths of host ``pid`` (empty if it is gone); the pidfd taken before makes a
    later reuse of the pid visible as an exit."""
    try:
        fd = os.open(f"{pid}/cgroup", os.O_RDONLY | os.O_CLOEXEC, dir_fd=procfd)
    except OSError:
        return ""
    try:
        return os.read(fd, 1 << 16).decode("utf-8", "replace")
    finally:
        os.close(fd)


def _seal_imports() -> None:
    """Make every further import fail. After setns, module paths resolve inside the container:
    an import would run the container's code as root on the host."""
    sys.meta_path.clear()
    sys.path_hooks.clear()
    sys.path_importer_cache.clear()
    sys.path.clear()


def stop_on_signals() -> int:
    """SIGTERM and SIGINT wake the loop (through the returned pipe's read end) instead of killing
    the process mid-batch; SIGPIPE is ignored (a gone consumer is an EPIPE)."""
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    return wake_r


def status_writer(*fds: int | None) -> Callable[[bytes], None]:
    """Write a status message to each of *fds* that is given; a reader that went away is no error."""

    def status(data: bytes) -> None:
        for fd in fds:
            if fd is not None:
                try:
                    os.write(fd, data)
                except OSError:
                    pass

    return status


def open_target(pid: int, container_id: str | None, pidfd: int | None = None) -> tuple[int, int]:
    """(pidfd, host /proc fd) of ``pid``, which must be in a cgroup named for ``container_id``
    when one is given; a ``pidfd`` passed in is owned from here on. Raises ArmError (one line),
    with both closed."""
    if pidfd is None:
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as e:
            raise ArmError(f"pid {pid}: {e.strerror}") from None
    procfd = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    if container_id is not None and (not container_id or container_id not in cgroups(procfd, pid)):
        os.close(pidfd)
        os.close(procfd)
        raise ArmError(f"pid {pid} is not in container {container_id[:12]} (it exited?)")
    return pidfd, procfd


def arm(pid: int, target: str = "/", *, bounded: bool = False, small_set: bool = False, container_id: str | None = None,
        pidfd: int | None = None) -> tuple[Session, int]:
    """Join ``pid``'s mount namespace and mark ``target`` there. Returns the session and a pidfd.

    The host procfs is opened before ``setns``: paths and command names are read through it, so
    nothing is ever looked up by name inside the container. With ``container_id``, ``pid`` must
    be in a cgroup named for it (a pid the caller learnt earlier may since belong to another
    process, say on the host). Imports are sealed before joining:
    the calling process must exit (``os._exit``) once done, without running more Python.
    A caller that checked ``pid`` (against NRI, say) passes the ``pidfd`` it opened before
    checking (owned by arm from then on): a pid reused since then is refused, not traced.
    """
    pidfd, procfd = open_target(pid, container_id, pidfd)
    try:
        _seal_imports()
        if not alive(pidfd):  # the pid may name another process by now
            raise ArmError(f"pid {pid} exited")
        rc = lib.nt_join_mntns(procfd, pid)
        if rc < 0:
            raise ArmError(f"join mount namespace of pid {pid}: {os.strerror(-rc)}")
        if not alive(pidfd):  # the namespace we joined may belong to a recycled pid
            raise ArmError(f"pid {pid} exited")
        session = Session(procfd, target, bounded=bounded, small_set=small_set)
    except BaseException:
        os.close(pidfd)
        os.close(procfd)
        raise
    return session, pidfd


def run(pid: int, *, out_fd: int, status_fd: int | None = None, stop_fd: int | None = None,
        target: str = "/", bounded: bool = False,
        ready_fd: int | None = None, small_set: bool = False, container_id: str | None = None,
        pidfd: int | None = None) -> int:
    """Trace ``pid`` until SIGTERM/SIGINT, ``stop_fd`` readable or closed, or the target's exit.

    The status protocol goes to ``status_fd`` and ``ready_fd`` (both optional).
    The caller must end its process with ``os._exit`` right after (see :func:`arm`). Returns an
    exit code: 0 after a drained stop or target exit, 1 if the output consumer went away, 2 on
    failure.
    """
    wake_r = stop_on_signals()
    status = status_writer(status_fd, ready_fd)

    try:
        session, pidfd = arm(pid, target, bounded=bounded, small_set=small_set,
                             container_id=container_id, pidfd=pidfd)
    except (ArmError, OSError) as e:
        status(ERROR + str(e).encode("utf-8", "replace")[:1024])
        return 2
    except Exception as e:  # noqa: BLE001 - after setns a traceback would read source files by name
        status(ERROR + f"tracer: {type(e).__name__}".encode())  # in the container: none may escape
        return 2
    status_writer(status_fd)(READY + struct.pack("<Iq", os.getpid(), session.mark_ns))
    status_writer(ready_fd)(READY + struct.pack("<I", os.getpid()))
    os.setpriority(os.PRIO_PROCESS, 0, NICE_STREAM)
    stop_fds = [wake_r] + ([stop_fd] if stop_fd is not None else [])
    try:
        end = session.pump(out_fd, stop_fds, pidfd, hold=bounded)
    except BrokenPipeError:
        status(STOPPED)
        return 1
    except OSError as e:
        status(ERROR + f"tracer: {e.strerror}".encode())
        return 2
    except Exception as e:  # noqa: BLE001 - as above
        status(ERROR + f"tracer: {type(e).__name__}".encode())
        return 2
    finally:
        session.close()
    status(end)
    return 0
