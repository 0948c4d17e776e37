"""The recorder's compact file columns: exact paths back, bytes counted, a limit that holds."""

from __future__ import annotations

import os

from nydus_top.lists.compact import PER_FILE, CompactList
from nydus_top.model.records import ListedFile

PATHS = ["/a", "/data/ünïcødé 文件", os.fsdecode(b"/bad\xff\xfe"), "/new\nline", "/a"]


def test_files_come_back_exactly_in_order() -> None:
    files = CompactList()
    for i, path in enumerate(PATHS):
        assert files.append(path, i * 10, i)
    assert list(files) == [ListedFile(p, i * 10, i) for i, p in enumerate(PATHS)]
    assert os.fsencode(list(files)[2].path) == b"/bad\xff\xfe"
    assert files.nbytes == sum(len(os.fsencode(p)) for p in PATHS) + PER_FILE * len(PATHS)


def test_the_limit_keeps_the_first_files_and_counts_the_rest() -> None:
    files = CompactList(max_bytes=3 * (PER_FILE + 4))
    assert [files.append(f"/f{i:02d}", 1, i) for i in range(5)] == [True, True, True, False, False]
    assert not files.append("/", 1, 9)  # smaller, but after the limit: a list stays a prefix
    assert [f.path for f in files] == ["/f00", "/f01", "/f02"]
    assert files.nbytes == files.max_bytes and files.reached and files.refused == 3


def test_total_size_adds_the_known_sizes() -> None:
    files = CompactList(1 << 20)
    assert files.total_size() == 0
    files.append("/a", 10, 1)
    files.append("/b", 32, 2)
    assert files.total_size() == 42
    files.append("/c", -1, 3)  # unknown: counts nothing
    assert files.total_size() == 42
