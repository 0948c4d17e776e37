"""``record --log-format json``: one JSON object a line, with the text format's escaping guarantees."""

from __future__ import annotations

import json
import logging
import unicodedata

from nydus_top.text import JsonFormatter, printable

HOSTILE = "ctr\x1b]0;owned\x07\u202eevil\x9b2J\udcff\nnext line\ttab\x7f"


def _line(msg: str, *args: object, **extra: object) -> str:
    record = logging.LogRecord("nydus_top.record", logging.WARNING, __file__, 1, msg, args or None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return JsonFormatter().format(record)


def test_a_line_is_one_object_with_the_fields() -> None:
    line = _line("saved %s", "/r/app:1", container="abc123", image="reg/app:1", files=3)
    entry = json.loads(line)
    assert list(entry) == ["time", "level", "event", "container", "image", "fields"]
    assert entry["level"] == "warning" and entry["event"] == "saved /r/app:1"
    assert entry["container"] == "abc123" and entry["image"] == "reg/app:1" and entry["fields"] == {"files": 3}
    assert entry["time"].endswith("+00:00") and "T" in entry["time"]
    assert json.loads(_line("plain"))["container"] is None


def test_every_string_is_escaped_as_the_text_log_escapes_it() -> None:
    line = _line("recording %s", HOSTILE, container=HOSTILE, image=HOSTILE, **{"path": HOSTILE})
    assert "\n" not in line
    # Nothing a terminal or log viewer acts on reaches the line: no C0/C1 control, DEL, bidi
    # override or isolate, lone surrogate.
    assert not [c for c in line if unicodedata.category(c) in ("Cc", "Cs") or "\u202a" <= c <= "\u202e"
                or "\u2066" <= c <= "\u2069"]
    line.encode("utf-8")  # strict: no lone surrogate
    entry = json.loads(line)
    shown = printable(HOSTILE)
    assert entry["event"] == f"recording {shown}"
    assert entry["container"] == entry["image"] == entry["fields"]["path"] == shown
