"""Memory per list entry of ``nydus-top consensus -o`` (issue 18 item 7: it was about 1.7 KB an
entry; a 3M-entry list must fit in 512 MiB, see bench/consensus_huge.py for the full size).

A child process counts a warm-up list (every module a consensus loads gets loaded), notes its
resident memory, then counts a list of ENTRIES entries and reports how far its own peak (VmHWM)
rose above that: the growth per entry, with no time bound. The child's PathTables keep no dict
beside their compact index (as from DICT_PATHS paths on), so a moderate list costs what each
entry of a huge one does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ENTRIES = 100_000
BYTES_PER_ENTRY = 400  # bound on the growth per entry: about 190 now, 1730 before the compact tally

MEASURE = """
import re, sys
from nydus_top.cli import main
from nydus_top.lists import paths

paths.DICT_PATHS = 0

def status(field):
    with open("/proc/self/status") as f:
        return int(re.search(field + r":\\s+(\\d+) kB", f.read())[1])

config, small, big, out = sys.argv[1:]
assert main(["--config", config, "consensus", small, "-o", out + ".small"]) == 0
before = status("VmRSS")
assert main(["--config", config, "consensus", big, "-o", out]) == 0
print(status("VmHWM") - before, file=sys.stderr)
"""


def write_run(path: Path, entries: int) -> None:
    """A run as the recorder saves it: the plain list and its csv (paths of about 60 bytes)."""
    names = [f"/usr/lib/python3/dist-packages/pkg{i % 997:03d}/module_{i:08d}.py" for i in range(entries)]
    path.write_text("".join(f"{name}\n" for name in names))
    Path(f"{path}.csv").write_text("path,size,elapsed\n" + "".join(f"{name},{1000 + i},{3 * i}\n"
                                                                    for i, name in enumerate(names)))


def test_consensus_of_a_big_list_grows_memory_by_a_few_hundred_bytes_an_entry(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'persist_dir = "{tmp_path / "persist"}"\n')
    small, big = tmp_path / "small", tmp_path / "big"
    write_run(small, 100)
    write_run(big, ENTRIES)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-I", "-c", MEASURE, str(config), str(small), str(big), str(out)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.read_bytes() == big.read_bytes()  # one run: its own list, in its order
    grown_kib = int(done.stderr.splitlines()[-1])
    assert grown_kib * 1024 < ENTRIES * BYTES_PER_ENTRY, f"{grown_kib * 1024 // ENTRIES} bytes an entry"
