"""A small seeded fuzz of the commands that read lists from disk (diff, consensus, evaluate,
convert --range-list): generated hostile lists, csvs, range lists and metadata, FIFOs and
directories where files go. Every command answers with an exit status of 0, 1 or 2, never an
exception, and prints no raw control, C1 or bidi character. Deterministic: the same cases each run."""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import pytest

from nydus_top.cli import main

IMAGE = "127.0.0.1:5000/demo:1"
CASES = 150
NUMBERS = ["0", "1", "-1", "1.5", "1e3", "nan", "inf", "-inf", str(2 ** 63), str(2 ** 64), str(10 ** 30), "9" * 400,
           "9" * 4301, "9" * 400 + " EiB", "1.5 KiB", "99999999 EiB", "0x10", " 1", "１２", "", "+1", "10 us"]
ODD = ["\x1b[31m", "\x1b]0;x\x07", "\x00", "\x7f", "\u0085", "\u009b", "\u202e", "\u2066", "\r", "\t", "\udcff"]
VALUES: list[object] = [None, True, 0, -1, 1.5, 2 ** 64, 10 ** 30, "x", "", [], {}, [[]], [[0, 1]], {"a": 1}, "\x1b[2J"]
# what must never reach the terminal raw: C0 but LF and TAB, DEL, C1, bidi overrides and isolates
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u202a-\u202e\u2066-\u2069]")


def a_path(r: random.Random) -> str:
    return r.choice(["rel/path", "", "/a,b\"c", "/../../etc/passwd", "/x" * 300, f"/bin/f{r.randrange(9)}",
                     "/bin/" + r.choice(ODD) + "y", f"/bin/f{r.randrange(9)}"])


def plain(r: random.Random) -> bytes:
    return r.choice([b"", b"\n\n", b"/bin/a\x00b\n/bin/c\n", b"/bin/\xff\xfe\n/bin/ok\n", b"/bin/a\r\n/bin/b\r/c\n",
                     b"path,size,elapsed\n", b"/bin/a\n/bin/a\n/bin/b\n", bytes(r.randrange(256) for _ in range(64)),
                     "/bin/\u202eevil\n/bin/\x1b[2Jx\n".encode(), b"\xef\xbb\xbf/bin/a\n",
                     "".join(a_path(r) + "\n" for _ in range(5)).encode("utf-8", "surrogateescape")])


def table(r: random.Random) -> bytes:
    rows = []
    for _ in range(r.randrange(1, 6)):
        path = a_path(r)
        if any(c in path for c in ',"\r\n'):
            path = '"' + path.replace('"', '""') + '"'
        rows.append(f"{path},{r.choice(NUMBERS)},{r.choice(NUMBERS)}")
    body = "path,size,elapsed\n" + "\n".join(rows) + r.choice(["\n", "", "\r\n"])
    return r.choice([body.encode("utf-8", "surrogateescape"), b"", b"path,size,elapsed\n", b"path,size,elapsed",
                     b"path,size,elapsed\n/bin/a,1\n", b'path,size,elapsed\n/bin/"a,1,1\n'])


def ranges(r: random.Random) -> bytes:
    files = [{"path": r.choice(["/bin/a", "/bin/f1", a_path(r)]),
              "ranges": r.choice([None, [], [[0, 100], [50, 100], [10, 5]], r.choice(VALUES),
                                  [[r.choice([0, -1, 5, 2 ** 63, 2 ** 64]), r.choice([0, -5, 10, 2 ** 64])]]])}
             for _ in range(r.randrange(1, 4))]
    doc = json.dumps({"version": r.choice(["v1", "v1", "v2", 1]), "files": files}).encode("utf-8", "surrogateescape")
    return r.choice([doc, doc, b"", b"[" * 5000, json.dumps(r.choice(VALUES)).encode(),
                     b'{"version":"v1","files":[{"path":"/bin/a","ranges":[[0,NaN]]}]}'])


FIELDS: dict[str, list[object]] = {
    "image": [IMAGE, IMAGE, "../../../etc", "x/demo:1\x1b[31m", "", 5],
    "complete": [True, False, 0, "true"], "files": [0, -1, 2 ** 64, 1.5, True], "cut_us": [-1, 10 ** 30, "1"],
    "runs": [[], ["\x1b[31m/x", "rel"], [1], "x"], "unobserved": [{}, {"/bin/a": "why\x1b[31m"}, {"/a": 1}, []],
    "container": ["", "\x1b]0;pwn\x07", "\u202e", 1, None], "cut_detail": ["y" * 5000, "\x1b[2J"],
}


def meta(r: random.Random) -> bytes:
    doc = {"schema": r.choice([1, 1, 1, 2, "1"])}
    doc.update({name: r.choice(values) for name, values in FIELDS.items() if r.random() < 0.5})
    return r.choice([json.dumps(doc).encode(), json.dumps(doc).encode(), b"", b"[" * 5000, b"{"])


def planted(r: random.Random, path: Path, make: bytes) -> None:
    kind = r.random()
    if kind < 0.05:
        os.mkfifo(path)
    elif kind < 0.08:
        path.mkdir()
    elif kind < 0.10:
        path.symlink_to("/dev/zero")
    else:
        path.write_bytes(make)


def hostile(r: random.Random, base: Path) -> Path:
    base.parent.mkdir(parents=True, exist_ok=True)
    planted(r, base, plain(r))
    for suffix, make, chance in ((".csv", table, 0.7), (".ranges.json", ranges, 0.5), (".nydus-top.json", meta, 0.7)):
        if r.random() < chance:
            planted(r, Path(f"{base}{suffix}"), make(r))
    csv = Path(f"{base}.csv")
    return csv if r.random() < 0.3 and csv.is_file() else base


def good(base: Path) -> Path:
    base.parent.mkdir(parents=True, exist_ok=True)
    base.write_text("/bin/a\n/bin/b\n/bin/f1\n")
    Path(f"{base}.csv").write_text("path,size,elapsed\n/bin/a,100,1\n/bin/b,2000,50\n/bin/f1,5,70\n")
    Path(f"{base}.nydus-top.json").write_text(json.dumps({"schema": 1, "image": IMAGE}))
    return base


@pytest.mark.parametrize("seed", range(CASES))
def test_hostile_lists_get_an_answer_not_an_exception(tmp_path: Path, seed: int,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    r = random.Random(seed)
    persist = tmp_path / "persist"
    runs = persist / ".nydus-top" / "image-runs" / "127.0.0.1:5000" / "demo:1"
    runs.mkdir(parents=True)
    good(runs / "20260101T000000.000000Z-c0")
    run = hostile(r, runs / "20260101T000009.000000Z-evil")
    config = tmp_path / "config.toml"
    config.write_text(f'persist_dir = "{persist}"\n')
    config.chmod(0o600)
    listed, other = hostile(r, tmp_path / "lists" / "app:1"), good(tmp_path / "good" / "app:1")
    given = ["--config", str(config)]
    for args in (["diff", str(listed), str(other)], ["diff", "--json", str(other), str(listed)],
                 [*given, "consensus", str(listed), str(other), str(run)], [*given, "consensus", "--image", "demo"],
                 [*given, "consensus", "--json", str(runs), "-o", str(tmp_path / "out" / "cons")],
                 [*given, "evaluate", str(listed), str(other), str(run)], [*given, "evaluate", str(listed)],
                 [*given, "evaluate", "--json", str(other), "--image", IMAGE, "--policy", r.choice(["stream", "wait"])],
                 [*given, "convert", str(listed), "--source", IMAGE, "--range-list", str(tmp_path / "r.json"),
                  "--granularity", r.choice(["0", "4096"]), "--force"]):
        status = main(args)
        out, err = capsys.readouterr()
        assert status in (0, 1, 2), (args, err)
        for text in (out, err):
            raw = RAW.search(text)
            assert raw is None, (args, text[max(0, raw.start() - 80):raw.end() + 40])
