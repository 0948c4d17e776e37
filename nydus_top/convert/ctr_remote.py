"""Convert with stargz-snapshotter's ``ctr-remote``: eStargz or zstd:chunked with a prioritized-files record.

``ctr-remote image convert --oci --estargz --estargz-record-in /dev/stdin SRC DST`` (or
``--zstdchunked``/``--zstdchunked-record-in``) runs on containerd's content store (its socket and
namespace from the configuration), then ``ctr-remote image push DST`` (``--plain-http`` when asked
for or when DST's registry is one of ``[registry] plain_http``). The record is the list, in its
order, one ``{"path": "/abs/path"}`` JSON value per line, fed on stdin: no temporary file.
Argv only; the process handling (streaming, cancel) is :class:`nydus_top.convert.nydusify.Conversion`'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from nydus_top.config import Config
from nydus_top.convert.nydusify import Conversion, ConversionError, target_for
from nydus_top.imageref import ImageRefError, parse_image_ref
from nydus_top.model.records import Listable

FORMATS = ("estargz", "zstdchunked")
RECORD_IN = "/dev/stdin"


def record_input(entries: Iterable[Listable]) -> tuple[bytes, tuple[str, ...]]:
    """(record bytes, warnings): each absolute path once, in order, as ``{"path": ...}`` per line.

    A path that is not absolute or not UTF-8 (JSON cannot carry its bytes) is left out with a
    warning; an empty record is refused (the conversion would prioritize nothing).
    """
    seen: set[str] = set()
    lines: list[str] = []
    warnings: list[str] = []
    for entry in entries:
        path = entry.path
        if path in seen:
            continue
        seen.add(path)
        reason = _inexpressible(path)
        if reason:
            warnings.append(f"left out {path!r}: {reason}")
            continue
        lines.append(json.dumps({"path": path}, ensure_ascii=True) + "\n")
    if not lines:
        raise ConversionError("the prefetch list is empty (the record would prioritize no file)")
    return "".join(lines).encode(), tuple(warnings)


def _inexpressible(path: str) -> str:
    if not path.startswith("/"):
        return "not an absolute path"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "not UTF-8 (a record is JSON)"
    return ""


def convert_argv(config: Config, fmt: str, source: str, target: str) -> list[str]:
    """``ctr-remote --address A --namespace N image convert --oci --<fmt> --<fmt>-record-in /dev/stdin S T``."""
    return [*_base(config), "image", "convert", "--oci", f"--{fmt}", f"--{fmt}-record-in", RECORD_IN, source, target]


def push_argv(config: Config, target: str, *, plain_http: bool) -> list[str]:
    """``ctr-remote --address A --namespace N image push [--plain-http] T``."""
    return [*_base(config), "image", "push", *(["--plain-http"] if plain_http else []), target]


def _base(config: Config) -> list[str]:
    return [config.ctr_remote, "--address", str(config.containerd_address), "--namespace",
            config.containerd_namespace]


def prepare_ctr_remote(
    config: Config, fmt: str, source: str, entries: Iterable[Listable], *, target: str | None = None,
    push: bool = True, plain_http: bool = False,
) -> tuple[Conversion, tuple[str, ...]]:
    """(conversion: convert, then push unless *push* is False; warnings about left-out paths).

    Source and target are normalised as containerd names images (``nginx`` ->
    ``docker.io/library/nginx:latest``); *target* defaults to the format's template. Raises
    ConversionError for an unknown format, a bad source/target or an empty list.
    """
    if fmt not in FORMATS:
        raise ConversionError(f"format {fmt!r} is not converted by ctr-remote (choose {' or '.join(FORMATS)})")
    record, warnings = record_input(entries)
    if target is None:
        target = target_for(config.estargz_target if fmt == "estargz" else config.zstdchunked_target, source)
    refs = []
    for role, ref in (("source", source), ("target", target)):
        try:
            refs.append(parse_image_ref(ref))
        except ImageRefError as err:
            raise ConversionError(f"{role} image: {err}") from None
    src, dst = (str(ref) for ref in refs)
    plain = plain_http or refs[1].domain in config.registry_plain_http
    then = [push_argv(config, dst, plain_http=plain)] if push else []
    return Conversion(convert_argv(config, fmt, src, dst), record, then=then), warnings
