"""Item 7 of issue 9: a runtime peer that syncs and then sends garbage, every time.

It used to get 64 reconnections and 130 log lines in 10 s: the backoff started over after every
sync. Now it starts over only after a healthy connection (session.HEALTHY_AFTER seconds after
its sync), and identical lines are logged once, with "(repeated N times)" when the trouble ends
(a healthy connection) or the session stops. session.REPEATS_KEPT bounds the lines held back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from nydus_top.nri import session as nri_session
from nydus_top.nri.session import RepeatLog
from testkit.hostile_peer import Served, run
from testkit.runtime_peer import pod_msg

GARBAGE = b"\x00\x00\x00\x09\x00\x00\x00\x00"  # a mux frame for connection 9
BACKOFF = (0.01, 0.16)


def session_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "nydus_top.nri.session"]


async def flap(s: Served) -> tuple[float, float]:
    """Serve one connection as the broken runtime does; return when it was accepted and how long
    the session had waited before connecting."""
    conn = await s.peer.accept(10)
    accepted, waited = time.monotonic(), s.session.last_wait
    await conn.handshake(pods=[pod_msg(1)])
    conn.send_raw(GARBAGE)
    assert await conn.closed()
    return accepted, waited


def test_a_runtime_that_syncs_then_breaks_is_retried_ever_more_slowly_with_one_line_per_cause(
        tmp_path: Path, caplog) -> None:
    attempts = 8

    async def main():
        async with Served(tmp_path, backoff=BACKOFF) as s:
            times, waits = [], []
            for _ in range(attempts):  # the window: until the session connected this often
                accepted, waited_before = await flap(s)
                times.append(accepted)
                waits.append(waited_before)
            waited = [min(BACKOFF[0] * 2 ** k, BACKOFF[1]) for k in range(attempts - 1)]
            assert waits[1:] == waited
            gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
            assert all(gap >= w for gap, w in zip(gaps, waited, strict=True)), (gaps, waited)
            assert len(session_lines(caplog)) == 2  # registered, protocol error: once each

    with caplog.at_level(logging.INFO):
        run(main())
    target = tmp_path / "nri.sock"
    error = (f"NRI: protocol error from the runtime at {target}: mux frame for unknown connection 9; "
             "reconnecting")
    assert session_lines(caplog) == [
        f"NRI: registered as 90-nydus-top at {target}", error,
        f"NRI: registered as 90-nydus-top at {target} (repeated {attempts - 1} times)",
        f"{error} (repeated {attempts - 1} times)",
    ]


def test_a_healthy_connection_starts_the_backoff_over_and_reports_the_repeats(
        tmp_path: Path, caplog, monkeypatch) -> None:
    monkeypatch.setattr(nri_session, "HEALTHY_AFTER", 0.3)

    async def main():
        reported = asyncio.Event()

        class Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if "(repeated" in record.getMessage():
                    reported.set()

        handler = Handler()
        logging.getLogger("nydus_top.nri.session").addHandler(handler)
        try:
            async with Served(tmp_path, backoff=BACKOFF) as s:
                for _ in range(4):
                    await flap(s)
                conn = await s.peer.accept(10)
                assert s.session.last_wait == 8 * BACKOFF[0]
                await conn.handshake(pods=[pod_msg(2)])
                await asyncio.wait_for(reported.wait(), 10)  # healthy: the repeats are reported now
                assert session_lines(caplog)[-1].endswith("(repeated 3 times)")
                conn.close()
                await s.peer.accept(10)
                assert s.session.last_wait == BACKOFF[0]  # started over after the healthy one
        finally:
            logging.getLogger("nydus_top.nri.session").removeHandler(handler)

    with caplog.at_level(logging.INFO):
        run(main())


@pytest.mark.parametrize("extra", [0, 1])
def test_repeat_log_holds_repeats_kept_lines_one_more_reports_them(caplog, extra: int) -> None:
    lines = RepeatLog(logging.getLogger("test.repeats"))
    with caplog.at_level(logging.INFO, logger="test.repeats"):
        for i in range(nri_session.REPEATS_KEPT + extra):
            lines.log(logging.WARNING, "cause %d", i)
            lines.log(logging.WARNING, "cause %d", i)
        got = [r.getMessage() for r in caplog.records]
    first = [f"cause {i}" for i in range(nri_session.REPEATS_KEPT)]
    if extra:  # the 33rd distinct line: the 32 held ones are reported first
        assert got == [*first, *(f"{line} (repeated 1 time)" for line in first), f"cause {len(first)}"]
    else:
        assert got == first


def test_an_internal_error_the_runtime_provokes_every_time_is_one_line(tmp_path: Path, caplog, monkeypatch) -> None:
    def broken(msg):
        raise RuntimeError("boom")

    monkeypatch.setattr("nydus_top.nri.to_model.pod", broken)  # a bug of ours that every sync hits

    async def main():
        async with Served(tmp_path, backoff=BACKOFF) as s:
            for _ in range(3):
                conn = await s.peer.accept(10)
                await conn.accept_registration()
                await conn.call("Configure", b"")
                conn.send_call("Synchronize", b"\x0a\x00")  # one (empty) pod
                assert await conn.closed()

    run(main())
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    line = f"NRI: internal error serving {tmp_path / 'nri.sock'}: RuntimeError: boom; reconnecting"
    assert errors == [line, f"{line} (repeated 2 times)"]
