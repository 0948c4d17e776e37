"""The exceptions the NRI wire layer raises for bytes it cannot accept."""


class ProtocolError(Exception):
    """Malformed or unexpected data from the runtime; the connection must be dropped."""


class LimitExceeded(ProtocolError):
    """The runtime sent more than one of our named limits allows; the connection must be dropped."""
