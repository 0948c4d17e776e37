"""Saving, loading, merging and exporting prefetch lists; byte formats as the optimizer writes them.

Format facts from containerd/nydus-snapshotter @ a7a1f071: ``pkg/fanotify/fanotify.go`` writes
the list with ``fmt.Fprintln(f, path)`` and the table with Go ``encoding/csv`` (header
``path,size,elapsed``, LF ends, a field quoted only if it holds ``,`` ``"`` CR or LF or starts
with a space); ``pkg/utils/display/display.go`` renders readable sizes (``%d B`` below 1024,
else ``%.1f KiB``/``MiB``...) and times (``%d us`` below 1000, ``%.3f ms`` below 10^6, else
``%.3f s``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nydus_top.lists.files import (
    ListExistsError,
    ListFileError,
    csv_line,
    inexpressible,
    load_list,
    merge,
    range_list,
    readable_elapsed,
    readable_size,
    result_paths,
    save_list,
    save_range_list,
)
from nydus_top.model.records import Access, ListedFile


def access(seq: int, path: str, size: int = 100, elapsed: int = 10) -> Access:
    return Access(seq, path, size, elapsed, "open", 42, "app")


def test_readable_units_like_display_go() -> None:
    assert [readable_size(n) for n in (0, 1023, 1024, 1536, 1048575, 1048576, 5 << 30, 3 << 40)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 KiB", "1024.0 KiB", "1.0 MiB", "5.0 GiB", "3.0 TiB"]
    assert [readable_elapsed(n) for n in (0, 999, 1000, 1500, 999999, 1000000, 61234567)] == [
        "0 us", "999 us", "1.000 ms", "1.500 ms", "999.999 ms", "1.000 s", "61.235 s"]
    # Go's strconv rounds an exact half to even (strconv/decimal.go shouldRoundUp), as Python does
    assert readable_size(1280) == "1.2 KiB" and readable_size(1331) == "1.3 KiB"
    assert readable_elapsed(1234500) == "1.234 s" and readable_elapsed(2500) == "2.500 ms"


def test_csv_quoting_like_go_encoding_csv() -> None:
    assert csv_line(ListedFile("/usr/bin/app", 1234, 56)) == "/usr/bin/app,1234,56\n"
    assert csv_line(ListedFile("/a,b", 1, 2)) == '"/a,b",1,2\n'
    assert csv_line(ListedFile('/say "hi"', 1, 2)) == '"/say ""hi""",1,2\n'
    assert csv_line(ListedFile("/cr\rhere", 1, 2)) == '"/cr\rhere",1,2\n'
    assert csv_line(ListedFile("/with space", 1, 2)) == "/with space,1,2\n"
    assert csv_line(ListedFile("/lib/x.so", 1536, 1500), readable=True) == "/lib/x.so,1.5 KiB,1.500 ms\n"
    assert csv_line(ListedFile("/plain")) == "/plain,,\n"


@pytest.mark.parametrize(
    ("path", "reason"),
    [("/ok/file", None), ("/ok/inner space", None), ("/ok/cr\rinside", None),
     ("relative/x", "not an absolute path"), (" /lead", "not an absolute path"),
     ("/nl\nx", "contains a newline"), ("/trail ", "ends with whitespace"),
     ("/trail\t", "ends with whitespace"), ("/nbsp\u00a0", "ends with whitespace"),
     ("/bad\udcffbyte", "not valid UTF-8"), ("/caf\u00e9", None)],
)
def test_inexpressible_paths(path: str, reason: str | None) -> None:
    assert inexpressible(path) == reason


def test_save_writes_list_and_csv_in_first_access_order(tmp_path: Path) -> None:
    paths = result_paths(tmp_path, "docker.io/library/nginx:1.25")
    trace = [access(0, "/usr/sbin/nginx", 1200000, 150), access(1, "/etc/nginx/nginx.conf", 2048, 900),
             access(2, "/usr/sbin/nginx", 1, 1), access(3, "/lib/a,b.so", 10, 1000001)]
    result = save_list(trace, paths.list)
    assert result.paths == (paths.list, paths.csv) and result.written == 3 and result.warnings == ()
    assert paths.list.read_bytes() == b"/usr/sbin/nginx\n/etc/nginx/nginx.conf\n/lib/a,b.so\n"
    assert paths.csv.read_bytes() == (
        b"path,size,elapsed\n/usr/sbin/nginx,1200000,150\n/etc/nginx/nginx.conf,2048,900\n"
        b'"/lib/a,b.so",10,1000001\n')
    assert oct(paths.list.stat().st_mode & 0o777) == "0o644"
    save_list(trace, tmp_path / "readable", readable=True)
    assert (tmp_path / "readable.csv").read_text() == (
        'path,size,elapsed\n/usr/sbin/nginx,1.1 MiB,150 us\n/etc/nginx/nginx.conf,2.0 KiB,900 us\n'
        '"/lib/a,b.so",10 B,1.000 s\n')


def test_inexpressible_paths_are_left_out_with_warnings(tmp_path: Path) -> None:
    trace = [access(0, "/bin/sh"), access(1, "/tmp/evil\n/etc/shadow"), access(2, "/trailing "),
             access(3, "/bad\udcff"), access(4, "/ok")]
    result = save_list(trace, tmp_path / "l")
    assert (tmp_path / "l").read_bytes() == b"/bin/sh\n/ok\n"
    assert (tmp_path / "l.csv").read_bytes() == b"path,size,elapsed\n/bin/sh,100,10\n/ok,100,10\n"
    assert result.written == 2
    assert result.warnings == ("left out '/tmp/evil\\n/etc/shadow': contains a newline",
                               "left out '/trailing ': ends with whitespace",
                               "left out '/bad\\udcff': not valid UTF-8")
    assert all("\n" not in w for w in result.warnings)


def test_existing_files_are_not_overwritten_unless_asked(tmp_path: Path) -> None:
    target = tmp_path / "dir" / "app:v1"
    save_list([access(0, "/old")], target)
    with pytest.raises(ListExistsError) as info:
        save_list([access(0, "/new")], target)
    assert info.value.path == target and "already exists" in str(info.value)
    assert target.read_text() == "/old\n"
    (tmp_path / "dir" / "app:v1.csv").unlink()  # only the csv missing: still refused, nothing written
    with pytest.raises(ListExistsError):
        save_list([access(0, "/new")], target)
    assert target.read_text() == "/old\n" and not (tmp_path / "dir" / "app:v1.csv").exists()
    save_list([access(0, "/new")], target, overwrite=True)
    assert target.read_text() == "/new\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["app:v1", "app:v1.csv"]


def test_full_disk_keeps_old_files_and_leaves_no_temp(tiny_tmpfs: Path) -> None:
    target = tiny_tmpfs / "library" / "big:latest"
    save_list([access(0, "/small")], target)
    huge = [access(i, f"/usr/share/data/{i:06d}-{'x' * 80}") for i in range(2000)]  # ~190 KiB > 64 KiB
    with pytest.raises(ListFileError) as info:
        save_list(huge, target, overwrite=True)
    message = str(info.value)
    assert message.startswith("cannot save ") and message.endswith(": No space left on device")
    assert "\n" not in message
    assert target.read_text() == "/small\n"
    assert (tiny_tmpfs / "library" / "big:latest.csv").read_text() == "path,size,elapsed\n/small,100,10\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["big:latest", "big:latest.csv"]


UNPRIVILEGED_SAVE = """
import sys
from nydus_top.lists.files import ListFileError, save_list
from nydus_top.model.records import ListedFile
try:
    save_list([ListedFile("/x", 1, 1)], sys.argv[1], overwrite=True)
except ListFileError as err:
    print(err)
"""


def test_unwritable_directory_gives_clear_error_and_keeps_old_file(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    target = locked / "app:v1"
    save_list([access(0, "/old")], target)
    locked.chmod(0o555)
    # root without CAP_DAC_OVERRIDE is bound by the mode bits like anybody else
    out = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner",
                          sys.executable, "-c", UNPRIVILEGED_SAVE, str(target)],
                         capture_output=True, text=True, check=True)
    assert out.stdout == f"cannot save {target}: Permission denied\n"
    assert target.read_text() == "/old\n"
    assert sorted(os.listdir(locked)) == ["app:v1", "app:v1.csv"]


def test_load_optimizer_files(tmp_path: Path) -> None:
    # as the optimizer leaves them: Fprintln list + encoding/csv table
    listing = tmp_path / "nginx:latest"
    listing.write_bytes(b"/usr/sbin/nginx\n/lib/a,b.so\n/etc/nginx/nginx.conf\n")
    (tmp_path / "nginx:latest.csv").write_bytes(
        b'path,size,elapsed\n/usr/sbin/nginx,1200000,150\n"/lib/a,b.so",10,1000\n/etc/nginx/nginx.conf,2048,900\n')
    loaded = load_list(listing)
    assert loaded.entries == (ListedFile("/usr/sbin/nginx", 1200000, 150), ListedFile("/lib/a,b.so", 10, 1000),
                              ListedFile("/etc/nginx/nginx.conf", 2048, 900))
    assert loaded.warnings == ()
    assert load_list(tmp_path / "nginx:latest.csv").entries == loaded.entries


def test_load_readable_csv_and_plain_list_without_csv(tmp_path: Path) -> None:
    table = tmp_path / "app.csv"
    table.write_text("path,size,elapsed\n/bin/app,1.5 KiB,1.500 ms\n/lib/x,12 B,7 us\n/y,2.0 MiB,1.250 s\n")
    assert load_list(table).entries == (ListedFile("/bin/app", 1536, 1500), ListedFile("/lib/x", 12, 7),
                                        ListedFile("/y", 2 << 20, 1250000))
    plain = tmp_path / "plain"
    plain.write_text("/a\n\nrelative\n/b\n/a\n")
    loaded = load_list(plain)
    assert loaded.entries == (ListedFile("/a"), ListedFile("/b"))
    assert loaded.warnings == (f"{plain}:3: skipped 'relative': not an absolute path",)


def test_plain_list_with_a_broken_csv_loads_with_one_warning(tmp_path: Path) -> None:
    listing = tmp_path / "app:v1"
    listing.write_text("/a\n/b\n")
    (tmp_path / "app:v1.csv").write_text("path,size,elapsed\n/a,lots,1\n")
    loaded = load_list(listing)
    assert loaded.entries == (ListedFile("/a"), ListedFile("/b"))
    assert loaded.warnings == (f"{tmp_path}/app:v1.csv:2: bad size or elapsed 'lots' (sizes and times left out)",)


@pytest.mark.parametrize(
    ("content", "message"),
    [("path,size\n/a,1\n", "not a prefetch csv"),
     ("path,size,elapsed\n/a,1\n", ":2: expected 3 columns, got 2"),
     ("path,size,elapsed\n/a,1,2\n/b,lots,2\n", ":3: bad size or elapsed 'lots'"),
     ("path,size,elapsed\n/a,1 KiB,2 KiB\n", ":2: bad size or elapsed '2 KiB'"),
     ('path,size,elapsed\n"/a,1,2\n', "malformed csv")],
)
def test_malformed_csv_is_one_line_naming_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ListFileError) as info:
        load_list(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value)
    assert "\n" not in str(info.value)


def test_unreadable_list(tmp_path: Path) -> None:
    with pytest.raises(ListFileError, match=r"^cannot read .*missing: No such file or directory$"):
        load_list(tmp_path / "missing")


def test_save_load_round_trip(tmp_path: Path) -> None:
    trace = [access(i, f"/data/{i}", i * 1000, i * 7) for i in range(50)]
    save_list(trace, tmp_path / "run")
    loaded = load_list(tmp_path / "run")
    assert [(e.path, e.size, e.elapsed_us) for e in loaded.entries] == [
        (a.path, a.size, a.elapsed_us) for a in trace]


def test_merge_keeps_first_appearance_stable_and_unique() -> None:
    first = [ListedFile("/bin/app", 1, 10), ListedFile("/lib/a", 2, 20), ListedFile("/etc/conf", 3, 30)]
    second = [ListedFile("/bin/app", 1, 5), ListedFile("/lib/b", 4, 15), ListedFile("/etc/conf", 3, 25),
              ListedFile("/lib/b", 4, 99), ListedFile("/var/x", 5, 40)]
    merged = merge(first, second)
    assert [e.path for e in merged] == ["/bin/app", "/lib/a", "/etc/conf", "/lib/b", "/var/x"]
    assert merged[0] is first[0] and merged[3] is second[1]
    assert merge() == [] and [e.path for e in merge(second)] == ["/bin/app", "/lib/b", "/etc/conf", "/var/x"]


def test_range_list_export(tmp_path: Path) -> None:
    entries = [access(0, "/bin/app"), access(1, "/odd\nname"), access(2, "rel"), access(3, "/bin/app"),
               access(4, "/caf\u00e9")]
    data, warnings = range_list(entries)
    doc = json.loads(data)
    assert doc == {"version": "v1", "files": [{"path": "/bin/app", "ranges": None},
                                              {"path": "/odd\nname", "ranges": None},
                                              {"path": "/caf\u00e9", "ranges": None}]}
    assert warnings == ("left out 'rel': not an absolute path",)
    out = tmp_path / "prefetch.json"
    result = save_range_list(entries, out)
    assert result.written == 3 and json.loads(out.read_bytes()) == doc
    with pytest.raises(ListExistsError):
        save_range_list(entries, out)


@pytest.mark.parametrize("text", [
    "path,size,elapsed\n/a,1,2\n/b c/ü,3,4\n/a,5,6\n",  # the common shape: the fast reader
    "path,size,elapsed\n/a,1,2\n\"/x,y\",3,4\n",  # quoted: the csv module
    "path,size,elapsed\r\n/a,1,2\r\n",  # CRLF
    "path,size,elapsed\n/a,1.5 KiB,2 ms\n",  # readable units
    "path,size,elapsed\nrel,1,2\n/b,3,4\n",  # a relative path: skipped with a warning
    "path,size,elapsed\n/a,,\n",  # sizes and times left out
])
def test_the_fast_csv_reader_agrees_with_the_csv_module(tmp_path: Path, text: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from nydus_top.lists import files as listfile

    path = tmp_path / "l.csv"
    path.write_text(text)
    fast = listfile.load_list(path)
    monkeypatch.setattr(listfile, "_load_plain_csv", lambda _text: None)  # every row through the csv module
    slow = listfile.load_list(path)
    assert (fast.entries, fast.warnings) == (slow.entries, slow.warnings)
