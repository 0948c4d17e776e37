"""What every bench shares: its command line (``--help``, ``--quick``) and the import path.

Run a bench as ``.venv/bin/python bench/NAME.py [--quick] [options]``. ``--quick`` runs it at tiny
sizes without judging targets: ``tests/test_benches.py`` runs every bench so, so a moved module or a
changed signature fails the test suite rather than the next measurement.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT / "scripts", ROOT):  # the test kit and sandbox (scripts/), the checkout's nydus_top
    if str(_path) not in sys.path:
        sys.path.insert(1, str(_path))

QUICK_HELP = "tiny sizes, no targets: only checks that the bench still runs"


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser described by the bench's docstring, with ``--quick``."""
    text = doc or ""
    made = argparse.ArgumentParser(description=text.split("\n\n")[0], epilog="\n\n".join(text.split("\n\n")[1:]),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    made.add_argument("--quick", action="store_true", help=QUICK_HELP)
    return made
