"""The one exception the NRI wire layer raises for bytes it cannot accept."""


class ProtocolError(Exception):
    """Malformed or unexpected data from the runtime; the connection must be dropped."""
