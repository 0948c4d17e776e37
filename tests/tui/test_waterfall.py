"""The waterfall's rows: at most MAX_ROWS drawn (the rest counted in one line), stalls in red."""

from __future__ import annotations

from nydus_top.runs import evaluate as ev
from nydus_top.screens import waterfall


def _step(n: int, wait: float = 0.0) -> ev.Step:
    return ev.Step(f"/f{n}", n * 0.001, 1000, None if wait else n * 0.001, wait, bool(wait))


def test_rows_stop_at_the_limit_and_say_how_many_more() -> None:
    steps = [_step(n) for n in range(waterfall.MAX_ROWS + 3)]
    text = waterfall.rows(steps, 1e6).plain.splitlines()
    assert len(text) == waterfall.MAX_ROWS + 2  # the rows, the note, the time axis
    assert text[-2] == "… 3 more files not drawn"
    at_limit = waterfall.rows(steps[: waterfall.MAX_ROWS], 1e6).plain.splitlines()
    assert len(at_limit) == waterfall.MAX_ROWS + 1 and "not drawn" not in at_limit[-2]


def test_a_stall_is_red_and_its_wait_drawn_after_the_read() -> None:
    drawn = waterfall.rows([_step(0), _step(1, wait=0.05)], 1e6)
    first, second = drawn.plain.splitlines()[:2]
    assert "━" not in first and "◆" in first
    assert "━" in second and " od " in second and "◆" not in second
    red = [span for span in drawn.spans if "red" in str(span.style)]
    assert red and all(drawn.plain[span.start:span.end].strip() for span in red)
    assert min(span.start for span in red) > len(first)  # only the stalled row
