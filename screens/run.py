"""Start the app on this node: the live backend (NRI + tracer) with the operator's config."""

from __future__ import annotations

import argparse
import sys

from .app import NydusTopApp


def run(args: argparse.Namespace) -> int:
    from nydus_top.config import ConfigError
    from nydus_top.livebackend import open_backend

    try:
        backend = open_backend(nri_socket=args.nri_socket, config_path=args.config)
    except ConfigError as err:
        print(f"nydus-top: {err}", file=sys.stderr)
        return 2
    NydusTopApp(backend).run()
    return 0
