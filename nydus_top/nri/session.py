"""An NRI plugin session on asyncio: connect, register, serve the runtime, keep the model current.

    model = NodeModel()
    session = PluginSession(model, socket_path="/var/run/nri/nri.sock", idx="90")
    session.add_start_hook(arm_tracer)   # async def arm_tracer(pod, container, deadline) -> None
    session.add_configure_hook(apply)    # def apply(config, runtime_name, runtime_version) -> None
    await session.run_forever()          # or SessionThread(session).start() beside a Textual app

The session is observe-only: it never adjusts containers and never answers a lifecycle call
with an error, so containerd cannot fail a start because of it. On a lost or broken connection
it logs one line, marks the model disconnected, and reconnects with backoff; the runtime then
sends a fresh Synchronize, which replaces the model. Everything runs on the session's loop:
subscriber callbacks, configure and start hooks included. The runtime gets its answer before
the model changes and subscribers run, except for a StartContainer that start hooks hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable

from nydus_top.model.node import Container, EventKind, NodeModel, Pod
from nydus_top.nri import nri_api_pb2 as api
from nydus_top.nri import to_model, ttrpc
from nydus_top.nri.errors import LimitExceeded, ProtocolError
from nydus_top.nri.protocol import PLUGIN_SERVICE, Call, PluginProtocol, Reply

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/var/run/nri/nri.sock"
SOCKET_FD_ENV = "NRI_PLUGIN_SOCKET"  # fd of a connected socket, for plugins the runtime launches
DEFAULT_NAME = "nydus-top"
DEFAULT_IDX = "90"
REGISTRATION_TIMEOUT = 5.0  # NRI's default plugin_registration_timeout
REQUEST_TIMEOUT = 2.0  # NRI's default plugin_request_timeout, used when a call carries none
READ_SIZE = 1 << 20  # a large Synchronize (MBs) then takes few reads and no flow-control stalls
HOOK_BUDGET = 1.0  # longest a StartContainer may wait for start hooks, at most half the timeout
# StartContainer calls held for start hooks at once. containerd sends a plugin one call at a time
# (two when one timed out); past this a start is answered at once and its hooks are not run.
MAX_HELD_STARTS = 8
# All chunks of one Synchronize together. A real container and its pod are about 2.8 KB on the
# wire (bench/nri_sync.py), so this is some 20,000 of them; each chunk is at most ttrpc's 4 MiB.
MAX_SYNC_BYTES = 64 << 20
# Pods and containers the model holds, from a Synchronize or added by events. MAX_SYNC_BYTES alone
# let a Synchronize of tiny pods (9 bytes each on the wire, 180 in Python) hold 1.3 GiB, and events
# added entries without end. A node runs at most a few thousand; each holds at most
# MAX_MODEL_BYTES of text together (node.record_bytes), about 200 bytes more in Python.
MAX_MODEL_ENTRIES = 100_000
MAX_MODEL_BYTES = MAX_SYNC_BYTES
# Answers a runtime has not read yet, kept by us once its socket buffer is full. containerd reads
# every answer at once; an answer is 18 bytes (up to a few hundred for Configure).
MAX_WRITE_BUFFER = 1 << 20
CLOSE_GRACE = 0.5  # how long a closing connection may flush answers before it is aborted
# A connection counts as healthy once it has been synchronized this long: only then does the
# reconnect backoff start over, and lines held back as repeats are reported with their counts.
HEALTHY_AFTER = 10.0
# While nothing accepts on the socket (no file, or connection refused: containerd is down), the
# next attempt comes this soon, whatever the backoff: a connect() costs the runtime nothing, and
# the session is back within this long of containerd's socket becoming connectable.
CONNECT_RETRY = 0.1
REPEATS_KEPT = 32  # distinct lines held back as repeats at once; one more reports them all first

# Lifecycle events the node model needs. Deliberately not CREATE/UPDATE_CONTAINER (adjustment
# paths) nor POST_* (each would add a round trip to every start for no new information; a
# container created but not yet started therefore shows up at its start or the next sync).
POD_EVENTS = {
    api.RUN_POD_SANDBOX: EventKind.POD_RUN,
    api.STOP_POD_SANDBOX: EventKind.POD_STOP,
    api.REMOVE_POD_SANDBOX: EventKind.POD_REMOVE,
}
CONTAINER_EVENTS = {
    api.START_CONTAINER: EventKind.CONTAINER_START,
    api.REMOVE_CONTAINER: EventKind.CONTAINER_REMOVE,
}
SUBSCRIBED = (api.RUN_POD_SANDBOX, api.STOP_POD_SANDBOX, api.REMOVE_POD_SANDBOX,
              api.START_CONTAINER, api.STOP_CONTAINER, api.REMOVE_CONTAINER)


def event_mask(events: tuple[int, ...]) -> int:
    """NRI's event mask: bit ``event - 1`` for each event."""
    mask = 0
    for event in events:
        mask |= 1 << (event - 1)
    return mask


MORE = api.SynchronizeResponse(more=True).SerializeToString()  # the answer to a partial Synchronize

StartHook = Callable[[Pod, Container, float], Awaitable[None]]
"""``async hook(pod, container, deadline)``; ``deadline`` is a ``time.monotonic()`` value."""

ConfigureHook = Callable[[str, str, str], None]
"""``hook(config, runtime_name, runtime_version)``: ``config`` is the plugin's configuration
text containerd read for a plugin it launched (``<plugin_config_path>/<idx>-<name>.conf`` or
``<name>.conf``), "" otherwise."""

NAME_RE = re.compile(r"[a-zA-Z0-9_.+-]+")
IDX_RE = re.compile(r"[0-9]{2}")


class ConnectionLost(Exception):
    """The runtime closed the connection or did not register us."""


class RepeatLog:
    """Logs each distinct line once; later copies are only counted until ``report()``, which logs
    each counted line once more with "(repeated N times)" and starts afresh. At most
    REPEATS_KEPT distinct lines are held: a new one past that reports the held ones first."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._repeats: dict[tuple[int, str], int] = {}

    def log(self, level: int, msg: str, *args: object) -> None:
        line = msg % args if args else msg
        key = (level, line)
        if key in self._repeats:
            self._repeats[key] += 1
            return
        if len(self._repeats) >= REPEATS_KEPT:
            self.report()
        self._repeats[key] = 0
        self.logger.log(level, "%s", line)

    def report(self) -> None:
        repeats, self._repeats = self._repeats, {}
        for (level, line), count in repeats.items():
            if count:
                self.logger.log(level, "%s (repeated %d time%s)", line, count, "" if count == 1 else "s")


class PluginSession:
    """One external NRI plugin named ``name`` at index ``idx``, reconnecting until stopped.

    ``socket_path`` None means the connected socket whose fd is in ``$NRI_PLUGIN_SOCKET`` when
    set (served once, no reconnect), else ``/var/run/nri/nri.sock``.
    """

    def __init__(self, model: NodeModel, socket_path: str | None = None, name: str = DEFAULT_NAME,
                 idx: str = DEFAULT_IDX, *, hook_budget: float = HOOK_BUDGET,
                 backoff: tuple[float, float] = (0.1, 5.0)) -> None:
        if not NAME_RE.fullmatch(name):
            raise ValueError(f"invalid NRI plugin name {name!r}: use letters, digits and _.+-")
        if not IDX_RE.fullmatch(idx):
            raise ValueError(f"invalid NRI plugin index {idx!r}: must be two digits")
        self.model = model
        self.name = name
        self.idx = idx
        self.hook_budget = hook_budget
        self.backoff = backoff
        fd = os.environ.get(SOCKET_FD_ENV) if socket_path is None else None
        if fd and not fd.isdigit():
            raise ValueError(f"${SOCKET_FD_ENV} must be a file descriptor number, got {fd!r}")
        self._inherited_fd = int(fd) if fd else None
        self.socket_path = socket_path or DEFAULT_SOCKET
        self._hooks: tuple[StartHook, ...] = ()
        self._configure_hooks: tuple[ConfigureHook, ...] = ()
        self._stop = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._synced = False  # the current connection got through a full Synchronize
        self._healthy = False  # ... and stayed up HEALTHY_AFTER seconds after it
        self._healthy_timer: asyncio.TimerHandle | None = None
        self.lines = RepeatLog(log)  # connection lines: a runtime failing in a loop gets one of each
        self.next_retry = self.backoff[0]  # seconds the next reconnection waits if this one fails
        self.last_wait = 0.0  # seconds waited before the latest attempt
        self._connected = False  # the latest attempt got a connection
        self.connections = 0  # connections made to the runtime (each after the first a reconnection)

    @property
    def target(self) -> str:
        return f"fd {self._inherited_fd}" if self._inherited_fd is not None else self.socket_path

    @property
    def ready(self) -> bool:
        """Registered with the runtime and synchronized, on a connection still up."""
        return self._synced and self._writer is not None

    @property
    def start_hooks(self) -> tuple[StartHook, ...]:
        return self._hooks

    def add_start_hook(self, hook: StartHook) -> Callable[[], None]:
        """Run ``hook`` on every StartContainer before containerd gets its answer.

        Hooks run concurrently, on the session's loop, and must finish before ``deadline``
        (``time.monotonic()``): ``hook_budget`` seconds, at most half the runtime's request
        timeout, after the request arrived. A hook still running then is cancelled and the
        container starts anyway. Hook exceptions are logged, never reported to the runtime. Returns the
        function that removes the hook.
        """
        self._hooks = (*self._hooks, hook)

        def remove() -> None:
            self._hooks = tuple(h for h in self._hooks if h is not hook)

        return remove

    def add_configure_hook(self, hook: ConfigureHook) -> Callable[[], None]:
        """Call ``hook`` on every Configure (once per connection, before any other event).

        It runs on the session's loop right after containerd got its answer and before the
        next call is read, so what it sets is in effect for the first StartContainer. It must
        be quick; exceptions are logged, never reported to the runtime. Returns the function
        that removes the hook.
        """
        self._configure_hooks = (*self._configure_hooks, hook)

        def remove() -> None:
            self._configure_hooks = tuple(h for h in self._configure_hooks if h is not hook)

        return remove

    def stop(self) -> None:
        """End ``run_forever`` (call on the session's loop; see ``SessionThread.stop``).

        The connection closes once the current callback returns, so a reply being made (say,
        from a subscriber that stops the session) still goes out; a runtime that does not read
        it within CLOSE_GRACE seconds is cut off (the transport aborted), so stopping never
        waits longer than that on the runtime.
        """
        self._stop.set()
        if self._writer is not None:
            loop = asyncio.get_running_loop()
            loop.call_soon(self._writer.close)
            loop.call_later(CLOSE_GRACE, self._writer.transport.abort)  # a no-op once closed

    async def run_forever(self) -> None:
        """Serve the runtime, reconnecting with backoff, until ``stop()``.

        The wait doubles from ``backoff[0]`` up to ``backoff[1]`` after every connection that
        fails, and starts over only after a healthy one (synchronized HEALTHY_AFTER seconds
        before it ended): a runtime that syncs and then breaks the connection every time is
        retried ever more slowly. An attempt that gets no connection at all (containerd down)
        is retried after CONNECT_RETRY instead, and leaves the backoff as it was. Identical lines
        are logged once (see RepeatLog).
        """
        self.next_retry = self.backoff[0]
        try:
            while not self._stop.is_set():
                try:
                    await self.run_once()
                    error: Exception | None = None
                except Exception as exc:  # noqa: BLE001 - a bug of ours must not end the session either
                    error = exc
                if self._stop.is_set():
                    break  # whatever ended the connection, stop() did: nothing to report
                self._report(error)
                if self._healthy:  # that connection worked: start over with short retries
                    self.next_retry = self.backoff[0]
                if self._inherited_fd is not None:
                    break  # an inherited socket cannot be reopened
                if self._connected:
                    self.last_wait = self.next_retry
                    self.next_retry = min(self.next_retry * 2, self.backoff[1])
                else:
                    self.last_wait = min(CONNECT_RETRY, self.next_retry)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.last_wait)
        finally:
            self.lines.report()

    def _report(self, error: Exception | None) -> None:
        """One line for what ended a connection (or an attempt), through the repeat filter."""
        if error is None:
            self.lines.log(logging.WARNING, "NRI: runtime at %s closed the connection; reconnecting", self.target)
        elif isinstance(error, (OSError, ConnectionLost)):
            self.lines.log(logging.WARNING, "NRI: cannot use %s: %s; retrying", self.target, error)
        elif isinstance(error, LimitExceeded):
            self.lines.log(logging.ERROR, "NRI: dropping the connection to the runtime at %s: %s; reconnecting",
                           self.target, error)
        elif isinstance(error, ProtocolError):
            self.lines.log(logging.ERROR, "NRI: protocol error from the runtime at %s: %s; reconnecting",
                           self.target, error)
        elif log.isEnabledFor(logging.DEBUG):  # with the traceback, every time
            log.error("NRI: internal error serving %s: %s: %s; reconnecting", self.target,
                      type(error).__name__, error, exc_info=error)
        else:
            self.lines.log(logging.ERROR, "NRI: internal error serving %s: %s: %s; reconnecting", self.target,
                           type(error).__name__, error)

    def _synchronized(self) -> None:
        """The current connection got through a full Synchronize: healthy after HEALTHY_AFTER."""
        self._synced = True
        if self._healthy_timer is None and not self._healthy:
            self._healthy_timer = asyncio.get_running_loop().call_later(HEALTHY_AFTER, self._became_healthy)

    def _became_healthy(self) -> None:
        self._healthy_timer = None
        self._healthy = True
        self.lines.report()  # the trouble before this connection is over: its counts now

    async def run_once(self) -> None:
        """Serve one connection until it ends (``_synced`` then says whether it got as far as
        a full sync). Raises OSError (cannot connect), ConnectionLost or ProtocolError."""
        self._synced = self._healthy = self._connected = False
        if self._inherited_fd is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=self._inherited_fd)
            reader, writer = await asyncio.open_unix_connection(sock=sock, limit=READ_SIZE)
        else:
            reader, writer = await asyncio.open_unix_connection(self.socket_path, limit=READ_SIZE)
        self._connected = True
        self.connections += 1
        self._writer = writer
        conn = _Connection(self, writer)
        try:
            await conn.serve(reader)
        finally:
            conn.cancel_hooks()
            if self._healthy_timer is not None:
                self._healthy_timer.cancel()
                self._healthy_timer = None
            self._writer = None
            writer.close()
            try:  # a runtime that stopped reading must not hold us here
                await asyncio.wait_for(writer.wait_closed(), CLOSE_GRACE)
            except Exception:  # noqa: BLE001 - timeout or a broken transport: abort either way
                writer.transport.abort()
            if self.model.connected:
                self.model.disconnected()


class _Connection:
    """State of one runtime connection."""

    def __init__(self, session: PluginSession, writer: asyncio.StreamWriter) -> None:
        self.session = session
        self.model = session.model
        self.writer = writer
        self.proto = PluginProtocol()
        self.request_timeout = REQUEST_TIMEOUT
        # A chunked Synchronize so far: its records, its chunks and their bytes.
        self.sync_pods: list[Pod] = []
        self.sync_containers: list[Container] = []
        self.sync_chunks = 0
        self.sync_bytes = 0
        self.hook_tasks: set[asyncio.Task[None]] = set()
        self.received = 0.0  # time.monotonic() of the last read: start hooks' deadlines count from it
        self.failure: LimitExceeded | None = None  # why we cut the connection off, if we did

    async def serve(self, reader: asyncio.StreamReader) -> None:
        payload = api.RegisterPluginRequest(plugin_name=self.session.name, plugin_idx=self.session.idx)
        reg_stream, data = self.proto.call("RegisterPlugin", payload.SerializeToString(),
                                           int(REGISTRATION_TIMEOUT * 1e9))
        self.writer.write(data)
        registered = False
        registration_deadline = time.monotonic() + REGISTRATION_TIMEOUT
        while True:
            if registered:
                data = await reader.read(READ_SIZE)
            else:
                timeout = registration_deadline - time.monotonic()
                try:
                    data = await asyncio.wait_for(reader.read(READ_SIZE), max(timeout, 0))
                except TimeoutError:
                    raise ConnectionLost("no answer to RegisterPlugin") from None
            self.received = time.monotonic()
            if self.failure is not None:
                raise self.failure
            if not data:
                if not registered:
                    raise ConnectionLost("the runtime closed the connection before registering us")
                return
            for item in self.proto.receive(data):
                if isinstance(item, Reply):
                    if item.stream_id == reg_stream:
                        if item.code != ttrpc.OK:
                            raise ConnectionLost(f"RegisterPlugin refused: {item.message}")
                        registered = True
                        self.session.lines.log(logging.INFO, "NRI: registered as %s-%s at %s", self.session.idx,
                                               self.session.name, self.session.target)
                else:
                    self.handle(item)
                    if self.failure is not None:
                        raise self.failure

    def reply(self, call: Call, payload: bytes = b"", code: int = ttrpc.OK, message: str = "") -> None:
        """Send an answer; past MAX_WRITE_BUFFER bytes unread by the runtime, abort the connection
        (serve then raises ``failure``; a start hook's task may be the one answering)."""
        if self.writer.is_closing():
            return
        self.writer.write(self.proto.respond(call.stream_id, payload, code, message))
        unread = self.writer.transport.get_write_buffer_size()
        if unread > MAX_WRITE_BUFFER:
            self.failure = LimitExceeded(f"{unread} bytes of answers not read by the runtime, more than "
                                         f"{MAX_WRITE_BUFFER} (MAX_WRITE_BUFFER)")
            self.writer.transport.abort()

    def handle(self, call: Call) -> None:
        """Answer one runtime call; StartContainer with hooks answers from a task."""
        method = call.method
        if call.service != PLUGIN_SERVICE:
            self.reply(call, code=ttrpc.UNIMPLEMENTED, message=f"service {call.service}")
        elif method == "StateChange":
            self.state_change(call)
        elif method == "StopContainer":
            req = ttrpc.parse(api.ContainerRequest, call.payload)
            self.reply(call)
            self.model.container_event(EventKind.CONTAINER_STOP, to_model.pod(req.pod),
                                       to_model.container(req.container))
            self.check_model()
        elif method in ("CreateContainer", "UpdateContainer", "Shutdown"):
            # Not subscribed; an empty answer adjusts nothing. Shutdown: the runtime closes next.
            self.reply(call)
        elif method == "Configure":
            conf = ttrpc.parse(api.ConfigureRequest, call.payload)
            if conf.request_timeout > 0:
                self.request_timeout = conf.request_timeout / 1000
            self.reply(call, api.ConfigureResponse(events=event_mask(SUBSCRIBED)).SerializeToString())
            for hook in self.session._configure_hooks:
                try:
                    hook(conf.config, conf.runtime_name, conf.runtime_version)
                except Exception as exc:  # noqa: BLE001 - a hook's bug must not break the session
                    log.error("NRI: configure hook %s failed: %s: %s", _name(hook), type(exc).__name__, exc)
        elif method == "Synchronize":
            self.synchronize(call)
        else:
            self.reply(call, code=ttrpc.UNIMPLEMENTED, message=f"method {method}")

    def check_model(self) -> None:
        """LimitExceeded once events made the model hold more than MAX_MODEL_ENTRIES pods and
        containers or MAX_MODEL_BYTES of their text: the connection drops, the resync replaces it."""
        entries = len(self.model.pods) + len(self.model.containers)
        if entries > MAX_MODEL_ENTRIES or self.model.nbytes > MAX_MODEL_BYTES:
            raise LimitExceeded(f"{entries} pods and containers of {self.model.nbytes} bytes, more than "
                                f"{MAX_MODEL_ENTRIES} (MAX_MODEL_ENTRIES) or {MAX_MODEL_BYTES} bytes (MAX_MODEL_BYTES)")

    def synchronize(self, call: Call) -> None:
        """Answer each chunk at once (the runtime holds its sync lock meanwhile); the model is
        replaced from all chunks after the last. Chunks past MAX_SYNC_BYTES in all raise
        LimitExceeded: a runtime that never says ``more = false`` cannot grow us."""
        self.sync_chunks += 1
        self.sync_bytes += len(call.payload)
        if self.sync_bytes > MAX_SYNC_BYTES:
            raise LimitExceeded(f"Synchronize of more than {MAX_SYNC_BYTES} bytes (MAX_SYNC_BYTES) in "
                                f"{self.sync_chunks} chunks")
        req = ttrpc.parse(api.SynchronizeRequest, call.payload)
        if len(self.sync_pods) + len(self.sync_containers) + len(req.pods) + len(req.containers) > MAX_MODEL_ENTRIES:
            raise LimitExceeded(f"Synchronize of more than {MAX_MODEL_ENTRIES} pods and containers "
                                f"(MAX_MODEL_ENTRIES) in {self.sync_chunks} chunks")
        self.sync_pods += map(to_model.pod, req.pods)  # records, not messages: far smaller
        self.sync_containers += map(to_model.container, req.containers)
        self.reply(call, MORE if req.more else b"")
        if req.more:
            return
        pods, containers = self.sync_pods, self.sync_containers
        self.sync_pods, self.sync_containers, self.sync_chunks, self.sync_bytes = [], [], 0, 0
        self.session._synchronized()
        self.model.replace_all(pods, containers)

    def state_change(self, call: Call) -> None:
        """Answer first, then update the model: subscribers never delay the runtime. Only a
        StartContainer with start hooks waits for them, and they see the updated model."""
        req = ttrpc.parse(api.StateChangeEvent, call.payload)
        hooks = self.session.start_hooks if req.event == api.START_CONTAINER else ()
        if hooks and len(self.hook_tasks) >= MAX_HELD_STARTS:
            self.session.lines.log(logging.WARNING, "NRI: %d StartContainer calls are held for start hooks already "
                                   "(MAX_HELD_STARTS); more start without them", MAX_HELD_STARTS)
            hooks = ()
        if not hooks:
            self.reply(call)
        if req.event in POD_EVENTS:
            self.model.pod_event(POD_EVENTS[req.event], to_model.pod(req.pod))
            self.check_model()
        elif req.event in CONTAINER_EVENTS:
            pod = to_model.pod(req.pod)
            container = self.model.container_event(CONTAINER_EVENTS[req.event], pod, to_model.container(req.container))
            self.check_model()
            if hooks:
                pod = self.model.pods.get(pod.id, pod)
                timeout = call.timeout_nano / 1e9 if call.timeout_nano > 0 else self.request_timeout
                deadline = self.received + min(self.session.hook_budget, timeout / 2)
                task = asyncio.create_task(self.run_hooks(call, hooks, pod, container, deadline))
                self.hook_tasks.add(task)
                task.add_done_callback(self.hook_tasks.discard)

    async def run_hooks(self, call: Call, hooks: tuple[StartHook, ...], pod: Pod, container: Container,
                        deadline: float) -> None:
        """Run ``hooks`` until they end or ``deadline`` passes, then answer ``call``."""
        tasks: dict[asyncio.Future[None], StartHook] = {}
        try:
            for hook in hooks:
                try:
                    tasks[asyncio.ensure_future(hook(pod, container, deadline))] = hook
                except Exception as exc:  # noqa: BLE001 - not even a coroutine: report like a failing hook
                    _hook_failed(hook, container, exc)
            if not tasks:
                return
            done, pending = await asyncio.wait(tasks, timeout=max(deadline - time.monotonic(), 0))
            for task in pending:
                log.warning("NRI: start hook %s overran its deadline for container %s; it starts without it",
                            _name(tasks[task]), container.name)
            for task in done:
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    _hook_failed(tasks[task], container, error)
        finally:
            for task in tasks:
                task.cancel()  # overran, or this connection is going away
            self.reply(call)  # always, and never with an error status

    def cancel_hooks(self) -> None:
        for task in self.hook_tasks:
            task.cancel()


def _name(hook: Callable[..., object]) -> str:
    return getattr(hook, "__qualname__", repr(hook))


def _hook_failed(hook: StartHook, container: Container, exc: BaseException) -> None:
    log.error("NRI: start hook %s failed for container %s: %s: %s", _name(hook), container.name,
              type(exc).__name__, exc)


class SessionThread:
    """Runs ``session.run_forever()`` on a daemon thread with its own event loop.

    For a program whose main thread runs another loop (the Textual app). Model callbacks and
    start hooks then run on this thread.
    """

    def __init__(self, session: PluginSession) -> None:
        self.session = session
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="nri-session", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.session.run_forever())
        finally:
            self._loop.close()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the session and wait for the thread to end."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.session.stop)
            self._thread.join(timeout)
