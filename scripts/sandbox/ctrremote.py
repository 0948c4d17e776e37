"""``ctr-remote``, stargz-snapshotter's client (image convert to eStargz / zstd:chunked, push), from Debian.

Debian's ``stargz-snapshotter`` package (forky = sid's 0.14.3-7) ships only ``ctr-remote``; it is
fetched into the shared sandbox cache like the node's other programs (never installed).
"""

from __future__ import annotations

from pathlib import Path

from sandbox.aptfetch import AptCache, AptError

PACKAGE = "stargz-snapshotter"
SUITE = "forky"


def ctr_remote() -> Path:
    """The path of ``ctr-remote`` unpacked from Debian's stargz-snapshotter (fetched once, cached)."""
    binary = AptCache().unpacked(PACKAGE, SUITE) / "usr/bin/ctr-remote"
    if not binary.is_file():
        raise AptError(f"{PACKAGE} from {SUITE} has no usr/bin/ctr-remote")
    return binary
