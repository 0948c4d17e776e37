"""Text for the operator's terminal: container data made safe to show, sizes made short."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# C0 and C1 control characters, DEL, the bidi embeddings/overrides/isolates that reorder what
# follows, the bidi marks (ALM, LRM, RLM) that flip neutral characters next to them, the line and
# paragraph separators some viewers break lines at, and the invisible byte-order mark. And every
# surrogate, one at a time: a surrogate escape (U+DC80..U+DCFF, an undecodable byte) as that byte,
# any other as itself. JSON from a registry spells any surrogate, and surrogate escapes encoded
# back to bytes together can be a control or an override (U+DCC2 U+DC9B: the bytes of U+009B).
_ESCAPES = (
    {c: f"\\u{c:04x}" for c in range(0xD800, 0xE000)}
    | {c: f"\\x{c - 0xDC00:02x}" for c in range(0xDC80, 0xDD00)}
    | {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
    | {10: "\\n", 9: "\\t", 13: "\\r"}
    | {c: f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A),
                                  0x061C, 0x200E, 0x200F, 0x2028, 0x2029, 0xFEFF)}
)


def printable(text: str) -> str:
    """Control characters escaped, undecodable bytes (surrogate escapes) shown as ``\\xNN``.

    Paths, process names and runtime metadata come from other tenants: written raw they could
    move the cursor, retitle the terminal or reorder a line.
    """
    return text.translate(_ESCAPES)


class EscapingFormatter(logging.Formatter):
    """A log formatter whose every line goes through :func:`printable`: names, paths and error
    texts from containers and runtimes reach log files and terminals escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


# LogRecord attributes of the logging module itself; any other attribute came with ``extra=``.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, RFC 3339), ``level``, ``event`` (the message),
    ``container`` and ``image`` (given with ``extra=``, else null) and ``fields`` (the other extras).

    Every string goes through :func:`printable` before it is JSON-encoded, so a value read back
    is exactly what the text format shows: no control, C1 or bidi character, no lone surrogate.
    """

    def format(self, record: logging.LogRecord) -> str:
        event = record.getMessage()
        if record.exc_info:
            event += "\n" + self.formatException(record.exc_info)
        extras = {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS}
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": event,
            "container": extras.pop("container", None),
            "image": extras.pop("image", None),
            "fields": extras,
        }
        return json.dumps(_safe(entry), ensure_ascii=False, separators=(",", ":"))


def _safe(value: object) -> object:
    """*value* with every string (keys too) made printable; anything not JSON becomes its text."""
    if isinstance(value, str):
        return printable(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        return {printable(str(k)): _safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_safe(v) for v in value]
    return printable(str(value))


def counted(count: int, noun: str, plural: str = "") -> str:
    """``1 warning``, ``2 warnings``: *count* and *noun*, in the plural (*plural*, else noun + s)
    unless the count is 1."""
    return f"{count} {noun}" if count == 1 else f"{count} {plural or noun + 's'}"


def human_size(size: int | None) -> str:
    """Bytes in binary units, one decimal above bytes (``1.5K``); "-" when unknown."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "K", "M", "G"):
        if value < 1024:
            return f"{int(value)}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}T"
