"""Prefetch lists: file formats, identity metadata, compact storage, byte ranges, diffs."""
