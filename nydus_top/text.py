"""Text for the operator's terminal: container data made safe to show, sizes made short."""

from __future__ import annotations

import logging

# C0 and C1 control characters, DEL, and the bidi overrides/isolates that reorder what follows.
_ESCAPES = (
    {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
    | {10: "\\n", 9: "\\t", 13: "\\r"}
    | {c: f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}
)


def printable(text: str) -> str:
    """Control characters escaped, undecodable bytes (surrogate escapes) shown as ``\\xNN``.

    Paths, process names and runtime metadata come from other tenants: written raw they could
    move the cursor, retitle the terminal or reorder a line.
    """
    text = text.translate(_ESCAPES)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


class EscapingFormatter(logging.Formatter):
    """A log formatter whose every line goes through :func:`printable`: names, paths and error
    texts from containers and runtimes reach log files and terminals escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


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
