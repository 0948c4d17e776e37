"""Which converter builds which format: nydusify for nydus, ctr-remote for eStargz and zstd:chunked."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from nydus_top.config import CONVERT_FORMATS, Config
from nydus_top.convert.ctr_remote import prepare_ctr_remote
from nydus_top.convert.nydusify import Conversion, ConversionError, prepare_conversion
from nydus_top.model.records import Listable

NYDUSIFY = CONVERT_FORMATS[0]
TITLES = {NYDUSIFY: "nydus", "estargz": "eStargz", "zstdchunked": "zstd:chunked"}  # for the operator


def input_name(fmt: str) -> str:
    """What the first step reads on stdin, for the operator: the plain list or the record."""
    return "list" if fmt == NYDUSIFY else "record"


def prepare(
    config: Config, fmt: str, source: str, entries: Iterable[Listable], *, target: str | None = None,
    nydusify: str | None = None, extra_args: Sequence[str] = (), push: bool = True, plain_http: bool = False,
) -> tuple[Conversion, tuple[str, ...]]:
    """(conversion of *source* to *fmt* with *entries* first, warnings); see the two converters.

    *nydusify* and *extra_args* apply to nydusify, *push* and *plain_http* to ctr-remote.
    Raises ConversionError (unknown format, bad images, empty list).
    """
    if fmt == NYDUSIFY:
        return prepare_conversion(config, source, entries, target=target, nydusify=nydusify, extra_args=extra_args)
    if fmt not in CONVERT_FORMATS:
        raise ConversionError(f"unknown format {fmt!r} (choose {', '.join(CONVERT_FORMATS)})")
    return prepare_ctr_remote(config, fmt, source, entries, target=target, push=push, plain_http=plain_http)
