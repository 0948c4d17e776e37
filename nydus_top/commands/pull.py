"""``nydus-top pull IMAGE [-o DIR]``: fetch every list attached to an image in the registry.

Each list is written as a run (``<created>-<node>_<artifact>``, with its csv, metadata and range
list), by default into the image's run directory under persist_dir, so ``nydus-top consensus
--image IMAGE`` counts them with the runs recorded here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from nydus_top.config import ConfigError, load_config
from nydus_top.fs.confined import within
from nydus_top.imageref import ImageRefError
from nydus_top.lists.files import ListExistsError, ListFileError
from nydus_top.runs import store as runstore
from nydus_top.text import counted, printable

PROG = "nydus-top pull"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", help="host[:port]/repo:tag or @digest")
    parser.add_argument("-o", "--output", type=Path, metavar="DIR",
                        help="directory to write the lists to (default: the image's runs under persist_dir)")
    parser.add_argument("--plain-http", action="store_true", help="talk HTTP, not HTTPS, to the registry "
                        "(also for the registries [registry] plain_http lists)")


@dataclass(slots=True)
class Pulled:
    written: list[Path]  # lists written
    present: int  # lists already there
    skipped: list[str]  # one line per artifact passed over (or the limit reached)


def pull_into(image_text: str, outdir: Path, *, plain_http: bool, persist_dir: Path,
              max_bytes: int, max_lists: int, plain_hosts: Collection[str] = ()) -> Pulled:
    """Fetch the lists of *image_text* into *outdir*, at most *max_lists* lists and *max_bytes*
    bytes; an artifact that cannot be used is skipped (one line), the others are written. The
    registry is talked to over HTTP with *plain_http* or when it is one of *plain_hosts*
    (``[registry] plain_http``).

    Under *persist_dir* no directory is followed if it is a symlink (missing ones are made
    beneath it); elsewhere (an -o the operator typed) directories resolve as usual."""
    from nydus_top.registry import artifacts as registry  # noqa: PLC0415 - the SDK loads only for registry commands

    image = registry.parse_reference(image_text)
    client = registry.Client(image.registry, plain_http=plain_http or image.registry in plain_hosts)
    root = within(outdir, persist_dir)
    if root is None:
        outdir.mkdir(parents=True, exist_ok=True)
    result = Pulled([], 0, [])
    try:
        for item in registry.iter_lists(client, image, max_bytes=max_bytes, max_lists=max_lists):
            if isinstance(item, registry.Skipped):
                result.skipped.append(f"skipped artifact {item.artifact} of {image_text}: {item.why}" if item.artifact
                                      else f"{image_text}: {item.why}")
                continue
            try:  # written as fetched
                result.written.append(registry.write_pulled(outdir, item, root=root)[0])
            except ListExistsError:
                result.present += 1
    finally:
        client.close()
    return result


def run(args: argparse.Namespace) -> int:
    from nydus_top.registry.artifacts import RegistryError  # noqa: PLC0415 - the registry SDK loads only when asked

    try:
        config = load_config(getattr(args, "config", None))
        outdir = args.output or runstore.image_dir(config.persist_dir, args.image)
        pulled = pull_into(args.image, outdir, plain_http=args.plain_http, persist_dir=config.persist_dir,
                           max_bytes=config.max_pull_bytes, max_lists=config.max_pull_lists,
                           plain_hosts=config.registry_plain_http)
    except (ConfigError, ImageRefError, RegistryError, ListFileError, OSError) as err:
        print(f"{PROG}: {printable(str(err))}", file=sys.stderr)
        return 1
    for path in pulled.written:
        print(printable(str(path)))
    for line in pulled.skipped:
        print(f"{PROG}: {printable(line)}", file=sys.stderr)
    print(f"pulled {counted(len(pulled.written), 'list')} of {printable(args.image)} into {printable(str(outdir))}"
          + (f" ({pulled.present} were already there)" if pulled.present else ""), file=sys.stderr)
    return 1 if pulled.skipped else 0
