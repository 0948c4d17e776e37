"""``nydus-top record``: headless start-up recording, a drop-in for the optimizer NRI plugin.

Runs as an external NRI plugin (``--nri-socket``, default from the config) or launched by
containerd as a pre-installed plugin (connected socket fd in ``$NRI_PLUGIN_SOCKET``, no
terminal, no PATH). Accepts the optimizer plugin's flags (``--persist-dir``, ``--readable``,
``--timeout``, ``--overwrite``, ``--name``, ``--idx``, ``--server-path`` and ``--events``, the
last two ignored) and its TOML keys. Launched by containerd, it also takes the optimizer's
configuration file from containerd's ``plugin_config_path`` (``<idx>-<name>.conf`` or
``<name>.conf``, handed over in NRI Configure before any container starts): that text is the
last layer, above ``--config`` and the flags, as with the optimizer; a bad one is reported in one
log line and the recorder goes on with the settings it had. One log line per recorded, skipped
or incomplete start goes to stderr, or to ``--log FILE``; launched by containerd (stderr not a
terminal) without ``--log`` to /var/log/nydus-top/record.log, since containerd discards a
launched plugin's output. One recorder per persist_dir (:mod:`nydus_top.recording.lock`): a
second one says so and exits 1 (launched by containerd: at NRI Configure, where its persist_dir
is settled).

``--log-format json`` writes one JSON object a line instead (time, level, event, container,
image, fields), escaped as the text lines are. ``[metrics] address`` serves Prometheus metrics
at /metrics, and /healthz and /readyz (:mod:`nydus_top.recording.endpoint`); a bad or busy
address ends the command (rc 2) with one line.

Signals: SIGTERM and SIGINT stop the recorder; every recording in progress is saved first (its
log line says ``shutdown``). SIGHUP depends on where the log goes: logging to a file, it reopens
that file (what logrotate's ``postrotate`` sends; a rotation must not end, and so truncate, the
recordings in progress); logging to stderr, the terminal has hung up, so it stops like SIGTERM.
Either way it is logged.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.handlers
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import TypedDict

from nydus_top.config import MAX_READY_AFTER, Config, ConfigError, check_persist_dir, load_config, parse_layer
from nydus_top.cri.image_store import ImageStore
from nydus_top.model.node import EventKind, NodeEvent, NodeModel
from nydus_top.nri.session import SOCKET_FD_ENV, PluginSession
from nydus_top.recording.endpoint import Endpoint
from nydus_top.recording.lock import RecorderLock, RecorderLockError, RecorderLockHeld
from nydus_top.recording.metrics import Metrics
from nydus_top.recording.pusher import ListPusher
from nydus_top.recording.readiness import compile_pattern
from nydus_top.recording.recorder import MAX_RANGE_TRACES, Recorder, RecordSettings, settings_from
from nydus_top.text import EscapingFormatter, JsonFormatter, printable
from nydus_top.tracing.arming import StartupCapture, no_references, pool_starter
from nydus_top.tracing.range_tracer import RangeSlots
from nydus_top.tracing.tracer import TracerPool

log = logging.getLogger("nydus_top.record")


class _Overrides(TypedDict, total=False):
    """Config fields the command line replaces."""

    persist_dir: Path
    readable: bool
    timeout: int
    overwrite: bool
    ready_line: str
    ready_file: str
    ready_after: float
    containerd_address: Path


DEFAULT_LAUNCHED_LOG = Path("/var/log/nydus-top/record.log")
# At shutdown, within the 2 s SIGTERM may take (README): the lists saved last get their one try
# (no retry then) for PUSH_DRAIN_SECONDS, then a push under way PUSH_LEFT_BEHIND_SECONDS more.
PUSH_DRAIN_SECONDS = 0.5
PUSH_LEFT_BEHIND_SECONDS = 0.5
NRI_LAYER = "NRI Configure"  # the source name of containerd's configuration text in messages


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", action="append", default=[], metavar="PATTERN",
                        help="record only this image (reference or glob; repeatable)")
    parser.add_argument("--containerd-address", metavar="SOCKET", type=Path,
                        help="containerd's socket, asked for an image's other references when a start's image "
                             "(one of its names) matches no --image (default: [convert] containerd_address)")
    parser.add_argument("--debug", action="store_true",
                        help="also log why each start the filters leave out is not recorded")
    parser.add_argument("--namespace", action="append", default=[], metavar="NS",
                        help="record only pods of this namespace (repeatable)")
    parser.add_argument("--persist-dir", metavar="DIR", help="where result files go")
    parser.add_argument("--readable", action="store_true", default=None, help="human units in the .csv")
    parser.add_argument("--timeout", type=int, metavar="SECONDS", help="stop each recording after this long")
    parser.add_argument("--overwrite", action="store_true", default=None, help="replace existing result files")
    parser.add_argument("--name", help="NRI plugin name")
    parser.add_argument("--idx", help="NRI plugin index (two digits)")
    parser.add_argument("--log", metavar="FILE", help="append log lines here instead of stderr")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="text lines, or one JSON object a line (time, level, event, container, image, fields)")
    parser.add_argument("--range-list", action="store_true",
                        help="record byte ranges too and save <list>.ranges.json beside each list "
                             "(for nydusify optimize --prefetch-files; Linux 6.14+)")
    parser.add_argument("--ready-line", metavar="REGEX",
                        help="end each start-up list at the first line of the container's output matching this "
                             "(default: [record] ready_line)")
    parser.add_argument("--ready-file", metavar="REGEX",
                        help="end it at the first file read matching this, which is listed last "
                             "(default: [record] ready_file)")
    parser.add_argument("--ready-after", type=float, metavar="SECONDS",
                        help="end it this long after the start (default: [record] ready_after; 0: off)")
    parser.add_argument("--server-path", help=argparse.SUPPRESS)  # optimizer flag: no server needed
    parser.add_argument("--events", help=argparse.SUPPRESS)  # optimizer flag: fixed events


class LogFile(logging.handlers.WatchedFileHandler):
    """The log file: reopened on SIGHUP (:meth:`reopen`), or when it was moved or removed."""

    def reopen(self) -> None:
        self.acquire()
        try:
            stream = self._open()  # first: if this fails the old file stays in use
            if self.stream is not None:
                self.stream.close()
            self.stream = stream
            self._statstream()
        finally:
            self.release()


def _setup_logging(path: str | None, form: str = "text") -> LogFile | None:
    """Log to *path*, the launched plugin's default file, or stderr, as text lines or JSON
    (*form*). Returns the file handler."""
    launched = os.environ.get(SOCKET_FD_ENV) and not os.isatty(2)
    target = Path(path) if path else (DEFAULT_LAUNCHED_LOG if launched else None)
    logfile = None
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        logfile = LogFile(target)
        handler: logging.Handler = logfile
        handler.setFormatter(EscapingFormatter("%(asctime)s nydus-top record: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(EscapingFormatter("nydus-top record: %(message)s"))
    if form == "json":
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    return logfile


def run(args: argparse.Namespace) -> int:
    try:
        logfile = _setup_logging(args.log, args.log_format)
    except OSError as err:
        print(printable(f"nydus-top record: cannot log to {args.log}: {err.strerror}"), file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
    except ConfigError as err:
        log.error("%s", err)
        return 2
    for note in config.notes:
        log.info("%s", note)
    overrides: _Overrides = {}
    if args.persist_dir:
        overrides["persist_dir"] = Path(args.persist_dir).absolute()
    if args.readable is not None:
        overrides["readable"] = args.readable
    if args.timeout is not None:
        overrides["timeout"] = args.timeout
    if args.overwrite is not None:
        overrides["overwrite"] = args.overwrite
    if args.containerd_address is not None:
        overrides["containerd_address"] = args.containerd_address.absolute()
    if args.debug:
        logging.getLogger("nydus_top").setLevel(logging.DEBUG)
    if args.timeout is not None and args.timeout < 0:
        log.error("--timeout must be >= 0")
        return 2
    for flag, key in (("--ready-line", "ready_line"), ("--ready-file", "ready_file")):
        value = getattr(args, key)
        if value is not None:
            try:
                compile_pattern(value, flag)
            except ValueError as err:
                log.error("%s", err)
                return 2
            overrides[key] = value  # type: ignore[literal-required]
    if args.ready_after is not None:
        if not 0 <= args.ready_after <= MAX_READY_AFTER:
            log.error("--ready-after must be from 0 to %d seconds", MAX_READY_AFTER)
            return 2
        overrides["ready_after"] = args.ready_after
    config = replace(config, **overrides)
    if args.persist_dir:
        try:
            check_persist_dir(config.persist_dir, "--persist-dir")
        except ConfigError as err:
            log.error("%s", err)
            return 2
    socket_path = args.nri_socket or (None if os.environ.get(SOCKET_FD_ENV) else str(config.nri_socket))
    try:
        model = NodeModel()
        # containerd names the plugins it launches after their file: NRI_PLUGIN_NAME/_IDX.
        name = args.name or os.environ.get("NRI_PLUGIN_NAME") or config.plugin_name
        idx = args.idx or os.environ.get("NRI_PLUGIN_IDX") or config.plugin_index
        session = PluginSession(model, socket_path, name, idx)
    except ValueError as err:
        log.error("%s", err)
        return 2
    lock = RecorderLock()
    # Launched by containerd, the persist_dir may come in NRI Configure: locked there, before any
    # start (the command line's directory is not even made then).
    if not os.environ.get(SOCKET_FD_ENV):
        try:
            lock.move(config.persist_dir)
        except RecorderLockHeld as err:
            log.error("%s", err)
            return 1
        except RecorderLockError as err:
            log.error("%s; recording without the lock", err)
    try:
        return asyncio.run(_serve(session, model, config, args.image, args.namespace, logfile, args.range_list,
                                  lock))
    finally:
        lock.close()


def with_layer(config: Config, text: str, source: str = NRI_LAYER) -> tuple[Config, tuple[str, ...]]:
    """*config* with the TOML *text* applied over it, and that layer's notes. Raises ConfigError."""
    values, notes = parse_layer(text, source)
    if "persist_dir" in values:
        check_persist_dir(values["persist_dir"], source)
    return replace(config, **values, sources=(*config.sources, source)), tuple(notes)


def _log_about(line: str, container_id: str, image: str) -> None:
    log.info("%s", line, extra={"container": container_id, "image": image})


def _settings_line(s: RecordSettings) -> str:
    return (f"into {s.persist_dir} (readable = {str(s.readable).lower()}, timeout = {s.timeout}, "
            f"overwrite = {str(s.overwrite).lower()}{f', ready: {s.ready.describe()}' if s.ready.enabled else ''})")


async def _serve(session: PluginSession, model: NodeModel, config: Config, images: list[str],
                 namespaces: list[str], logfile: LogFile | None, range_list: bool, lock: RecorderLock) -> int:
    pool = TracerPool()
    pool.warm_up()
    metrics = Metrics() if config.metrics_address else None  # the one owner; the parts that count get it
    pusher = (ListPusher(log.info, plain_http=config.registry_plain_http, metrics=metrics)
              if config.registry_push else None)
    store = ImageStore(config.containerd_address) if images else None
    recorder = Recorder(settings_from(config, images, namespaces, range_list), log.info, model,
                        on_saved=pusher.submit if pusher else None, metrics=metrics, log_about=_log_about,
                        references=store.references if store is not None else no_references)
    endpoint = None
    if metrics is not None:
        metrics.observe(connected=lambda: session.ready, connections=lambda: session.connections,
                        push_queue=lambda: pusher.waiting if pusher is not None else 0,
                        memory_used=lambda: recorder.budget.used, memory_limit=lambda: recorder.budget.max_bytes)
        endpoint = Endpoint(metrics, lambda: session.ready, log.warning)
        try:
            host, port = await endpoint.start(config.metrics_address)
        except (OSError, ValueError) as err:
            why = os.strerror(err.errno) if isinstance(err, OSError) and err.errno else str(err)
            log.error("cannot serve metrics on %s: %s", config.metrics_address, why)
            pool.close()
            if pusher is not None:
                pusher.close()
            return 2
        log.info("serving /metrics, /healthz and /readyz on %s:%d", host, port)

    status = 0  # 1 when the persist_dir settled at NRI Configure is another recorder's

    def on_configure(text: str, runtime: str, version: str) -> None:
        # Runs before containerd's next call is read: the first start already uses the result.
        configured: Config | None = None
        notes: tuple[str, ...] = ()
        if text.strip():  # external plugins get no configuration text
            try:
                configured, notes = with_layer(config, text)
            except ConfigError as err:
                log.error("%s; keeping the previous settings", err)
        if not lock_into(configured.persist_dir if configured else recorder.settings.persist_dir):
            return
        if configured is not None:
            for note in notes:
                log.info("%s", note)
            recorder.reconfigure(settings_from(configured, images, namespaces, range_list))
            log.info("%s of %s %s: recording %s", NRI_LAYER, runtime, version, _settings_line(recorder.settings))

    def lock_into(persist_dir: Path) -> bool:
        """Hold *persist_dir*'s lock. Held by another recorder: keep the lock and settings we have,
        or, holding none yet (launched by containerd), stop recording with exit status 1. One
        that cannot be taken at all: one line, recording goes on there unlocked."""
        nonlocal status
        try:
            lock.move(persist_dir)
        except RecorderLockHeld as err:
            if lock.held:
                log.error("%s; keeping the previous settings", err)
            else:
                log.error("%s", err)
                status = 1
                session.stop()
            return False
        except RecorderLockError as err:
            log.error("%s; recording without the lock", err)
        return True

    session.add_configure_hook(on_configure)
    capture = StartupCapture(pool_starter(pool, ranges=range_list, granularity=lambda: recorder.settings.granularity,
                                          window=lambda: recorder.settings.ranges_window, budget=recorder.budget,
                                          slots=RangeSlots(MAX_RANGE_TRACES)))
    capture.arm(recorder.select, recorder.deliver, once=False)
    session.add_start_hook(capture.on_start_container)
    model.subscribe(recorder.on_node_event)
    announced = False

    def on_sync(event: NodeEvent) -> None:
        # containerd synchronizes external plugins only; one it launched gets events right away.
        nonlocal announced
        if event.kind is EventKind.SYNC and not announced:
            announced = True
            ready = recorder.settings.ready
            log.info("recording container starts via %s into %s%s", session.target, recorder.settings.persist_dir,
                     f" (start-up ends at readiness: {ready.describe()})" if ready.enabled else "")

    model.subscribe(on_sync)
    loop = asyncio.get_running_loop()

    def stop(sig: signal.Signals) -> None:
        count = len(recorder.recordings)
        log.info("%s: stopping; saving %d recording%s in progress", sig.name, count, "" if count == 1 else "s")
        session.stop()

    def reopen_log() -> None:
        assert logfile is not None
        try:
            logfile.reopen()
        except OSError as err:  # keeps logging to the file it had open
            log.error("SIGHUP: cannot reopen %s: %s", logfile.baseFilename, err.strerror or err)
            return
        log.info("SIGHUP: log file %s reopened", logfile.baseFilename)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig)
    if logfile is not None:
        loop.add_signal_handler(signal.SIGHUP, reopen_log)
    else:
        loop.add_signal_handler(signal.SIGHUP, stop, signal.SIGHUP)
    try:
        await session.run_forever()
    finally:
        if endpoint is not None:
            await endpoint.close()
        await recorder.close()
        # The last saves' pushes get their moment while the tracer helper stops (submitted to a
        # thread at once: pool.close holds the loop).
        pushes = None
        if pusher is not None:
            pushes = loop.run_in_executor(None, pusher.close, PUSH_DRAIN_SECONDS, PUSH_LEFT_BEHIND_SECONDS)
        pool.close()
        if pushes is not None:
            await pushes
        if store is not None:
            store.close()
    return status
