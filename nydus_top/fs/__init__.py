"""Filesystem access that is safe as root: writes and removals confined beneath a directory."""
