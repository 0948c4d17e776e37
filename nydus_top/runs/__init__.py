"""Recorded starts of an image kept as runs, their stability and the consensus list."""
