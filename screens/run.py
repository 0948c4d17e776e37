"""Start the app on this node: the live backend (NRI + tracer) with the operator's config."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from nydus_top.config import ConfigError, load_config
from nydus_top.text import printable
from nydus_top.workspace.live import LiveBackend

from .app import NydusTopApp

COMMAND_LINE = "command line ({})"  # the source name of a value a flag set


class _ToApp(logging.Handler):
    """Keeps warnings from the background threads (NRI reconnects, tracer) for the screens."""

    def __init__(self, app: NydusTopApp) -> None:
        super().__init__(logging.WARNING)
        self.app = app

    def emit(self, record: logging.LogRecord) -> None:
        self.app.warnings.append(self.format(record))


def build_app(args: argparse.Namespace) -> NydusTopApp:
    """The app on the live backend, connecting; raises ConfigError for a bad config."""

    config = load_config(args.config)
    if args.nri_socket:  # shown on the Config screen as what the app is connected to
        config = config.overridden({"nri_socket": Path(args.nri_socket).absolute()},
                                   COMMAND_LINE.format("--nri-socket"))
    backend = LiveBackend(config, args.nri_socket)
    app = NydusTopApp(backend)
    logger = logging.getLogger("nydus_top")
    logger.addHandler(_ToApp(app))
    logger.propagate = False  # the terminal belongs to the app
    backend.start()
    return app


def run(args: argparse.Namespace) -> int:
    try:
        app = build_app(args)
    except ConfigError as err:
        print(printable(f"nydus-top: {err}"), file=sys.stderr)
        return 2
    app.run()
    return 0
