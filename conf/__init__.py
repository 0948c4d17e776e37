"""Default configuration shipped with nydus-top (package data)."""
