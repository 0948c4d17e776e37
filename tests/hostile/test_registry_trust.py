"""A registry is untrusted: its answers are cut at one deadline for the whole request, read to at
most what their descriptor says, checked against their digest; one bad artifact is skipped with
one line naming it, a pull is capped in lists and bytes and fetches a list's files once."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from nydus_top.cli import main
from nydus_top.lists.files import load_list
from nydus_top.registry import artifacts as registry
from nydus_top.runs import store as runstore
from tests.hostile.registry_peer import HostileRegistry, digest, hostile_registry, slow_header_registry

REPO = "team/app"
CREATED = "2024-01-0{}T00:00:00Z"


def _config(tmp_path: Path, extra: str = "") -> str:
    config = tmp_path / "config.toml"
    config.write_text(f'persist_dir = "{tmp_path / "persist"}"\n{extra}')
    return str(config)


def _in_thread(call: Any) -> tuple[threading.Thread, list[BaseException]]:
    """Run *call* on a thread (a hang then fails the test instead of stalling the suite)."""
    raised: list[BaseException] = []

    def target() -> None:
        try:
            call()
        except BaseException as err:  # noqa: BLE001 - handed to the test
            raised.append(err)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, raised


def test_a_registry_trickling_header_bytes_is_cut_at_the_request_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "REQUEST_DEADLINE", 1.0)
    with slow_header_registry(0.05) as host:
        client = registry.Client(host, plain_http=True, timeout=5)
        thread, raised = _in_thread(lambda: client.resolve(registry.parse_reference(f"{host}/{REPO}:1")))
        thread.join(120)  # a margin for a loaded machine: without the deadline this never ends
        assert not thread.is_alive(), "resolve still waits for the headers"
    (err,) = raised
    assert isinstance(err, registry.RegistryError)
    assert str(err) == f"GET http://{host}/v2/{REPO}/manifests/1: no complete answer within 1 s (REQUEST_DEADLINE)"


def test_pull_from_a_registry_trickling_headers_ends_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(registry, "REQUEST_DEADLINE", 1.0)
    rc: list[int] = []
    with slow_header_registry(0.05) as host:
        thread, raised = _in_thread(lambda: rc.append(main(["--config", _config(tmp_path), "pull",
                                                             f"{host}/{REPO}:1", "--plain-http"])))
        thread.join(120)
        assert not thread.is_alive(), "pull still waits for the headers"
    assert raised == [] and rc == [1]
    assert capsys.readouterr().err.splitlines() == [
        f"nydus-top pull: GET http://{host}/v2/{REPO}/manifests/1: no complete answer within 1 s (REQUEST_DEADLINE)"]


def test_abort_ends_a_request_under_way() -> None:
    with slow_header_registry(0.05) as host:
        client = registry.Client(host, plain_http=True, timeout=5)
        thread, raised = _in_thread(lambda: client.resolve(registry.parse_reference(f"{host}/{REPO}:1")))
        while not client._deadlines and thread.is_alive():
            thread.join(0.01)  # until the request is under way
        client.abort()
        thread.join(120)
        assert not thread.is_alive()
    assert [str(e) for e in raised] == [f"GET http://{host}/v2/{REPO}/manifests/1: aborted: shutting down"]
    with pytest.raises(registry.RegistryError, match="aborted"):  # and later ones are refused
        client.resolve(registry.parse_reference(f"{host}/{REPO}:1"))


def _pull(tmp_path: Path, hostile: HostileRegistry, extra: str = "") -> tuple[int, list[str], list[Path]]:
    ref = f"{hostile.host}/{REPO}:1"
    rc = main(["--config", _config(tmp_path, extra), "pull", ref, "--plain-http"])
    return rc, [], runstore.runs_of(runstore.image_dir(tmp_path / "persist", ref))


def test_a_blob_is_read_to_at_most_its_descriptors_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small = b"/bin/a/twenty/bytes\n"
    with hostile_registry() as hostile:
        subject = hostile.image(REPO, "1")
        entry = hostile.artifact(REPO, subject, small, created=CREATED.format(1))
        hostile.put(f"/v2/{REPO}/blobs/{digest(small)}", small + b"x" * (8 << 20))  # 8 MiB more than it says
        hostile.referrers(REPO, subject, [entry])
        rc, _, runs = _pull(tmp_path, hostile)
    err = capsys.readouterr().err
    assert rc == 1 and runs == []
    assert f"skipped artifact {entry['digest']} of {hostile.host}/{REPO}:1: GET " in err
    assert f"/blobs/{digest(small)}: answer larger than 20 bytes" in err


def test_a_manifest_is_read_to_at_most_its_descriptors_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with hostile_registry() as hostile:
        subject = hostile.image(REPO, "1")
        entry = hostile.artifact(REPO, subject, b"/bin/a\n", created=CREATED.format(1))
        hostile.referrers(REPO, subject, [{**entry, "size": entry["size"] - 1}])
        rc, _, runs = _pull(tmp_path, hostile)
    assert rc == 1 and runs == []
    assert f"answer larger than {entry['size'] - 1} bytes" in capsys.readouterr().err


def test_a_blob_not_matching_its_digest_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with hostile_registry() as hostile:
        subject = hostile.image(REPO, "1")
        good = hostile.artifact(REPO, subject, b"/bin/good\n", created=CREATED.format(1))
        bad = hostile.artifact(REPO, subject, b"/bin/real\n", created=CREATED.format(2))
        hostile.put(f"/v2/{REPO}/blobs/{digest(b'/bin/real' + bytes([10]))}", b"/bin/evil\n")  # same size
        hostile.referrers(REPO, subject, [good, bad])
        rc, _, runs = _pull(tmp_path, hostile)
    err = capsys.readouterr().err
    assert rc == 1 and [run.read_bytes() for run in runs] == [b"/bin/good\n"]
    assert f"skipped artifact {bad['digest']}" in err and "content does not match its digest" in err


def test_a_manifest_not_matching_its_digest_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with hostile_registry() as hostile:
        subject = hostile.image(REPO, "1")
        listed = hostile.artifact(REPO, subject, b"/bin/listed\n", created=CREATED.format(1))
        other = hostile.artifact(REPO, subject, b"/bin/other\n", created=CREATED.format(2))
        # The referrers name the first; the registry serves the second's manifest under its digest.
        hostile.answers[f"/v2/{REPO}/manifests/{listed['digest']}"] = \
            hostile.answers[f"/v2/{REPO}/manifests/{other['digest']}"]
        hostile.referrers(REPO, subject, [listed])
        rc, _, runs = _pull(tmp_path, hostile)
    err = capsys.readouterr().err
    assert rc == 1 and runs == []
    assert f"manifest {REPO}@{listed['digest']}: content does not match its digest" in err


def test_a_list_sharing_its_files_with_one_fetched_is_skipped_unfetched(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with hostile_registry() as hostile:
        subject = hostile.image(REPO, "1")
        entries = [hostile.artifact(REPO, subject, b"/bin/same\n", created=CREATED.format(1),
                                    csv=b"path,size,elapsed\n/bin/same,1,1\n", annotations={"n": str(n)})
                   for n in range(30)]
        hostile.referrers(REPO, subject, entries)
        rc, _, runs = _pull(tmp_path, hostile)
        blobs = [path for path in hostile.asked if "/blobs/" in path]
    err = capsys.readouterr().err.splitlines()
    assert rc == 1 and len(runs) == 1 and len(blobs) == 2  # each blob fetched once
    assert sum("the same files as sha256:" in line for line in err) == 29


@pytest.mark.parametrize(("extra", "pulled", "why"), [
    ("[registry]\nmax_pull_lists = 2\n", 2, "2 lists (max_pull_lists) reached: 1 more lists not fetched"),
    ("[registry]\nmax_pull_bytes = 22\n", 2, "22 bytes (max_pull_bytes) reached: 1 more lists not fetched"),
    ("[registry]\nmax_pull_bytes = 21\n", 1, "21 bytes (max_pull_bytes) reached: 2 more lists not fetched")])
def test_a_pull_is_capped_in_lists_and_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str,
                                            pulled: int, why: str) -> None:
    with hostile_registry() as hostile:
        subject = hostile.image(REPO, "1")
        entries = [hostile.artifact(REPO, subject, f"/bin/list{n}\n".encode(), created=CREATED.format(n))
                   for n in range(1, 4)]  # 11 bytes each
        hostile.referrers(REPO, subject, entries)
        rc, _, runs = _pull(tmp_path, hostile, extra)
        blobs = [path for path in hostile.asked if "/blobs/" in path]
    err = capsys.readouterr().err.splitlines()
    assert rc == 1 and len(runs) == pulled and len(blobs) == pulled
    assert err[0] == f"nydus-top pull: {hostile.host}/{REPO}:1: pull limit of {why}"
    assert len(err) == 2  # the limit's line and the summary


def test_one_bad_artifact_is_skipped_by_consensus_pull(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with hostile_registry() as hostile:
        subject = hostile.image(REPO, "1")
        good = [hostile.artifact(REPO, subject, b"/bin/app\n", created=CREATED.format(n), annotations={"n": str(n)},
                                 csv=f"path,size,elapsed\n/bin/app,1,{n}\n".encode()) for n in (1, 2)]
        headless = hostile.artifact(REPO, subject, b"/bin/bad\n", created=CREATED.format(3),
                                    csv=b"/bin/bad,1,1\n")  # a csv without its header line
        binary = hostile.artifact(REPO, subject, b"\x7fELF\x00\x01/\n", created=CREATED.format(4))
        hostile.referrers(REPO, subject, [*good, headless, binary])
        ref = f"{hostile.host}/{REPO}:1"
        out = tmp_path / "consensus"
        rc = main(["--config", _config(tmp_path), "consensus", "--pull", ref, "--plain-http", "-o", str(out)])
    err = capsys.readouterr().err.splitlines()
    assert rc == 0, err
    assert err == [f"nydus-top consensus: skipped artifact {headless['digest']} of {ref}: list.csv: not a prefetch csv "
                   "(first line must be 'path,size,elapsed')",
                   f"nydus-top consensus: skipped artifact {binary['digest']} of {ref}: list: a binary file, "
                   "not a prefetch list"]
    loaded = load_list(out)
    assert [e.path for e in loaded.entries] == ["/bin/app"] and loaded.meta is not None and len(loaded.meta.runs) == 2


def test_empty_and_unreadable_runs_never_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "runs"
    directory.mkdir()
    (directory / "20240101T000000.000000Z-a").write_text("/bin/app\n")
    (directory / "20240101T000001.000000Z-b").write_text("")  # empty: no run
    (directory / "20240101T000002.000000Z-c").write_text("/bin/app\n")
    (directory / "20240101T000002.000000Z-c.csv").write_text("/bin/app,1,1\n")  # no header: unreadable
    rc = main(["--config", _config(tmp_path), "consensus", "--json", str(directory)])
    out, err = capsys.readouterr()
    assert rc == 0
    assert [json.loads(line)["runs"] for line in out.splitlines()] == [1]
    assert err.splitlines() == [
        f"nydus-top consensus: skipped {directory}/20240101T000001.000000Z-b: no files (an empty run does not count)",
        f"nydus-top consensus: skipped {directory}/20240101T000002.000000Z-c: {directory}/20240101T000002.000000Z-c"
        ".csv: not a prefetch csv (first line must be 'path,size,elapsed')"]


@pytest.mark.parametrize(("files", "why"), [
    ({"": b"\x7fELF\x02\x01\x01\x00/bin\n"}, "a binary file, not a prefetch list"),
    ({"": b""}, "an empty list"),
    ({"": b"\n\n"}, "an empty list"),
    ({"": b"/bin/app\nrelative\n"}, ":2: not an absolute path: not a prefetch list"),
    ({"": b"/bin/app\n", ".csv": b"/bin/app,1,1\n"}, ".csv: not a prefetch csv (first line must be"),
    ({"": b"/bin/app\n", ".ranges.json": b"{}"}, ".ranges.json: bad range list")])
def test_push_refuses_what_is_no_prefetch_list(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               files: dict[str, bytes], why: str) -> None:
    listing = tmp_path / "list"
    for suffix, data in files.items():
        Path(f"{listing}{suffix}").write_bytes(data)
    # Nothing listens there: a list that got as far as the registry would fail otherwise.
    # rc 2: what was given is unusable (rc 1 is the registry failing)
    assert main(["push", str(listing), "--image", "127.0.0.1:1/team/app:1", "--plain-http"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"nydus-top push: {listing}") and why in line and line.endswith(": not pushed")


def test_one_bad_artifact_is_skipped_by_convert_pull(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with hostile_registry() as hostile:
        subject = hostile.image(REPO, "1")
        good = hostile.artifact(REPO, subject, b"/bin/app\n", created=CREATED.format(1))
        headless = hostile.artifact(REPO, subject, b"/bin/bad\n", created=CREATED.format(2), csv=b"/bin/bad,1,1\n")
        hostile.referrers(REPO, subject, [good, headless])
        ref = f"{hostile.host}/{REPO}:1"
        out = tmp_path / "ranges.json"
        rc = main(["--config", _config(tmp_path), "convert", "--pull", ref, "--plain-http", "--range-list", str(out)])
    err = capsys.readouterr().err.splitlines()
    assert rc == 0, err
    assert err[0] == (f"nydus-top convert: skipped artifact {headless['digest']} of {ref}: list.csv: not a prefetch "
                      "csv (first line must be 'path,size,elapsed')")
    assert [f["path"] for f in json.loads(out.read_text())["files"]] == ["/bin/app"]
