"""Start the app on this node: the live backend (NRI + tracer) with the operator's config."""

from __future__ import annotations

import argparse

from .app import NydusTopApp


def run(args: argparse.Namespace) -> int:
    from nydus_top.livebackend import open_backend

    backend = open_backend(nri_socket=args.nri_socket, config_path=args.config)
    NydusTopApp(backend).run()
    return 0
