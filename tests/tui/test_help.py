"""The help screen's key table."""

from __future__ import annotations

from textual.binding import Binding

from nydus_top.screens.help import _keys


def test_keys_accepts_the_tuple_bindings_textual_allows() -> None:
    # A widget may declare BINDINGS as (key, action, description) tuples; help read `.key` of each
    # and failed on them.
    assert _keys([("x", "act", "Do it"), Binding("question_mark,slash", "help", "Help")]) == [
        ("x", "Do it"), ("?, /", "Help")]
