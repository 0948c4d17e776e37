"""``nydus-top push LIST [--image REF]``: attach a saved list to its image in the registry.

The list, its csv, its metadata and (when present) its range list go up as one OCI artifact
whose subject is the image's manifest digest (see :mod:`nydus_top.registry.artifacts`). The image comes
from ``--image`` or from the list's metadata; nothing guesses a registry.
"""

from __future__ import annotations

import argparse
import sys

from nydus_top.config import ConfigError, load_config
from nydus_top.lists import meta as listmeta
from nydus_top.text import counted, printable

PROG = "nydus-top push"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("list", metavar="LIST", help="a saved list (its .csv, metadata and range list go along)")
    parser.add_argument("--image", metavar="REF", help="image to attach it to, host[:port]/repo:tag "
                        "(default: the image in the list's metadata)")
    parser.add_argument("--plain-http", action="store_true", help="talk HTTP, not HTTPS, to the registry "
                        "(also for the registries [registry] plain_http lists)")


def run(args: argparse.Namespace) -> int:
    from nydus_top.registry import artifacts as registry  # noqa: PLC0415 - the SDK loads only for registry commands

    try:
        config = load_config(getattr(args, "config", None))
        files = registry.list_files(args.list)  # first: a list that cannot be read is said so
        meta = listmeta.read(args.list)
    except (ConfigError, listmeta.MetaError, registry.RegistryError) as err:
        print(f"{PROG}: {printable(str(err))}", file=sys.stderr)
        return 2
    image_text = args.image or (meta.image if meta else "")
    if not image_text:
        print(f"{PROG}: {printable(args.list)} has no metadata naming its image: pass --image host/repo:tag",
              file=sys.stderr)
        return 2
    try:
        image = registry.parse_reference(image_text)
        plain_http = args.plain_http or image.registry in config.registry_plain_http
        client = registry.Client(image.registry, plain_http=plain_http)
        pushed = registry.push_list(client, image, files, registry.annotations_for(meta))
    except registry.RegistryError as err:
        print(f"{PROG}: {printable(str(err))}", file=sys.stderr)
        return 1
    print(f"attached {printable(args.list)} ({_contents(files[''], pushed.files)}) to "
          f"{printable(str(image))}@{pushed.subject} as {pushed.artifact}")
    return 0


_ALONG = {".csv": ".csv", ".nydus-top.json": "metadata", ".ranges.json": "range list"}  # suffix -> what it is


def _contents(plain: bytes, suffixes: tuple[str, ...]) -> str:
    """``7 paths; with its .csv, metadata``: the list's paths (not the artifact's files) and what went along."""
    along = [_ALONG.get(suffix, suffix) for suffix in suffixes if suffix]
    paths = counted(sum(1 for line in plain.splitlines() if line), "path")
    return f"{paths}; with its {', '.join(along)}" if along else paths
