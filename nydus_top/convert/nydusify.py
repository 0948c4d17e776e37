"""Run ``nydusify convert`` with a prefetch list: argv only, live output, clean cancel.

Usable from a CLI (blocking :meth:`Conversion.run`) and from a Textual worker thread (``run``
in the worker, :meth:`Conversion.cancel` from the UI thread). nydusify and everything it
starts run in their own process group; cancel signals the whole group and reaps it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from nydus_top.config import Config
from nydus_top.imageref import ImageRefError, parse_image_ref
from nydus_top.lists.files import render
from nydus_top.model.records import Listable

FS_VERSION = "6"
_MAX_LINE = 64 * 1024


class ConversionError(Exception):
    """The conversion could not be started (bad image, empty list, missing binary)."""


@dataclass(frozen=True, slots=True)
class OutputLine:
    """One line nydusify printed (stdout and stderr merged), without its line end."""

    elapsed: float  # seconds since the process started
    text: str

    def shown(self) -> str:
        """The line as the CLI and the app show it: elapsed time, then nydusify's text."""
        return f"[{self.elapsed:7.1f}s] {self.text}"


@dataclass(frozen=True, slots=True)
class ConversionResult:
    returncode: int  # exit status; -N when killed by signal N
    cancelled: bool
    elapsed: float  # seconds
    program: str = "nydusify"  # the program whose exit this is (a conversion may run several)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.cancelled

    def summary(self) -> str:
        """One line for the operator: success, cancellation or failure with the exit status."""
        took = f"after {self.elapsed:.1f}s"
        if self.cancelled:
            return f"conversion cancelled {took}"
        if self.returncode == 0:
            return f"conversion succeeded {took}"
        if self.returncode < 0:
            name = signal.Signals(-self.returncode).name if -self.returncode in signal.valid_signals() else "?"
            return f"conversion failed {took}: {self.program} killed by signal {-self.returncode} ({name})"
        return f"conversion failed {took}: {self.program} exited with status {self.returncode}"


def target_for(template: str, source: str) -> str:
    """Fill *template* (fields {registry} {path} {repo} {name} {tag}) from the *source* image.

    A source pinned by digest only has ``{tag}`` = ``<algo>-<first 12 hex digits>``.
    Raises ConversionError when the source or the resulting target is not a valid reference.
    """
    try:
        ref = parse_image_ref(source)
    except ImageRefError as err:
        raise ConversionError(f"source image: {err}") from None
    algo, _, hexpart = ref.digest.partition(":")
    tag = ref.tag or f"{algo}-{hexpart[:12]}"
    try:
        target = template.format(registry=ref.domain, path=ref.path, repo=ref.name, name=ref.base, tag=tag)
        parse_image_ref(target)
    except (KeyError, IndexError, ValueError) as err:
        raise ConversionError(f"target template {template!r} gives no valid image for {source}: {err}") from None
    return target


def build_argv(nydusify: str, source: str, target: str, extra_args: Sequence[str] = ()) -> list[str]:
    """``nydusify convert --source S --target T --fs-version 6 --prefetch-patterns [extra...]``."""
    return [nydusify, "convert", "--source", source, "--target", target, "--fs-version", FS_VERSION,
            "--prefetch-patterns", *extra_args]


def prefetch_input(entries: Iterable[Listable]) -> tuple[bytes, tuple[str, ...]]:
    """(stdin bytes, warnings) for ``--prefetch-patterns``; refuses an empty list.

    nydusify treats empty input as "/" (prefetch the whole image), so an empty list is an error.
    """
    data, _, warnings = render(entries)
    if not data:
        raise ConversionError("the prefetch list is empty (nydusify would prefetch the whole image)")
    return data, warnings


def prepare_conversion(
    config: Config, source: str, entries: Iterable[Listable], *, target: str | None = None,
    nydusify: str | None = None, extra_args: Sequence[str] = (),
) -> tuple[Conversion, tuple[str, ...]]:
    """(conversion ready to run, warnings about left-out paths) for *source* and *entries*.

    *target* defaults to the configured template filled from *source*; *nydusify* and
    *extra_args* (appended after the configured ones) override/extend the configuration.
    Raises ConversionError for a bad source/target (so neither can pass for an option) or an
    empty list.
    """
    stdin_data, warnings = prefetch_input(entries)
    if target is None:
        target = target_for(config.target_template, source)
    for role, ref in (("source", source), ("target", target)):
        try:
            parse_image_ref(ref)
        except ImageRefError as err:
            raise ConversionError(f"{role} image: {err}") from None
    argv = build_argv(nydusify or config.nydusify, source, target, (*config.nydusify_args, *extra_args))
    return Conversion(argv, stdin_data), warnings


def cannot_run(binary: str, err: OSError) -> str:
    """One line: why *binary* did not start, and where the binary is named."""
    where = "not on PATH" if "/" not in binary and isinstance(err, FileNotFoundError) else err.strerror or str(err)
    return (f"cannot run {binary}: {where} (install nydusify on PATH, or name it with --nydusify PATH"
            " or [convert] nydusify in the configuration)")


class Conversion:
    """One conversion: *argv* fed *stdin_data*, then each of *then* in turn (stdin empty) while
    the previous one succeeded. ``run`` blocks; ``cancel`` may be called from any thread."""

    def __init__(self, argv: Sequence[str], stdin_data: bytes, *, then: Sequence[Sequence[str]] = (),
                 env: dict[str, str] | None = None, kill_grace: float = 3.0) -> None:
        self.argv = list(argv)
        self.steps = [self.argv, *(list(step) for step in then)]
        self._stdin_data = stdin_data
        self._env = env
        self._kill_grace = kill_grace
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._cancelled = False
        self._done = False
        self._started = 0.0

    @property
    def pid(self) -> int | None:
        """The running step's pid (also its process group id) once started."""
        return self._proc.pid if self._proc else None

    def run(self, on_line: Callable[[OutputLine], None] = lambda line: None) -> ConversionResult:
        """Run the steps, feed the list to the first on stdin, call *on_line* for each output line
        (a later step's command line first, as ``$ argv``), wait.

        Raises ConversionError if a binary cannot be started. A cancel before start means
        nothing is started; a cancel stops the running step and starts no other.
        """
        self._started = time.monotonic()
        result = ConversionResult(0, False, 0.0)
        for index, argv in enumerate(self.steps):
            if index:
                on_line(OutputLine(time.monotonic() - self._started, "$ " + " ".join(argv)))
            result = self._step(argv, self._stdin_data if index == 0 else b"", on_line)
            if not result.ok:
                break
        return result

    def _step(self, argv: list[str], stdin_data: bytes, on_line: Callable[[OutputLine], None]) -> ConversionResult:
        program = os.path.basename(argv[0])
        with self._lock:
            if self._cancelled:
                return ConversionResult(-signal.SIGTERM, True, time.monotonic() - self._started, program)
            try:
                self._proc = subprocess.Popen(
                    argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    env=self._env, start_new_session=True, close_fds=True,
                )
            except OSError as err:
                raise ConversionError(cannot_run(argv[0], err)) from None
            self._done = False
        proc = self._proc
        feeder = threading.Thread(target=self._feed, args=(proc, stdin_data), name="conversion-stdin", daemon=True)
        feeder.start()
        assert proc.stdout is not None
        try:
            while line := proc.stdout.readline(_MAX_LINE):
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                on_line(OutputLine(time.monotonic() - self._started, text))
        except BaseException:  # the callback failed or the thread was interrupted: stop the step now
            self._cancelled = True
            self._kill_group()
            raise
        finally:
            with self._lock:
                self._done = True  # from here on the group is not signalled: its leader gets reaped
            proc.stdout.close()
            returncode = proc.wait()
            feeder.join()
        return ConversionResult(returncode, self._cancelled, time.monotonic() - self._started, program)

    @staticmethod
    def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(data)
        except (BrokenPipeError, ValueError):
            pass  # the step exited (or was cancelled) without reading everything
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass

    def cancel(self) -> None:
        """SIGTERM the running step's process group, SIGKILL it after the grace period. Idempotent."""
        with self._lock:
            self._cancelled = True
            if self._proc is None or self._done:
                return
            self._signal_group(signal.SIGTERM)
        timer = threading.Timer(self._kill_grace, self._kill_group)
        timer.daemon = True
        timer.start()

    def _kill_group(self) -> None:
        with self._lock:
            self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: int) -> None:
        """Signal the group while its output is open (caller holds the lock): until then the
        leader is unreaped, so the group id cannot have been reused."""
        if self._done or self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, sig)
        except ProcessLookupError:
            pass
