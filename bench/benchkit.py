"""What every bench shares: its command line (``--help``, ``--quick``) and the import path.

Run a bench as ``.venv/bin/python bench/NAME.py [--quick] [options]``. ``--quick`` runs it at tiny
sizes without judging targets: ``tests/test_benches.py`` runs every bench so, so a moved module or a
changed signature fails the test suite rather than the next measurement.
"""

from __future__ import annotations

import argparse
import random
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


def start_runs(count: int, files: int) -> list[list[tuple[str, int, int]]]:
    """``count`` made-up runs of ``files`` entries (path, size, elapsed µs), the same on every call:
    90 % shared in a stable order, 10 % unique per run, neighbours swapped now and then (start-ups
    race). The consensus and evaluate benches measure on them."""
    rng = random.Random(1)
    shared = [f"/usr/lib/python3/site-packages/pkg{i % 300}/mod{i}.py" for i in range(files * 9 // 10)]
    result = []
    for n in range(count):
        paths = shared + [f"/tmp/run{n}/cache{i}.pyc" for i in range(files - len(shared))]
        for i in range(0, len(paths) - 1, 50):
            if rng.random() < 0.5:
                paths[i], paths[i + 1] = paths[i + 1], paths[i]
        result.append([(p, 1000 + i, i * 40 + rng.randrange(20)) for i, p in enumerate(paths)])
    return result
