"""What a registry answers is untrusted: a manifest that is no manifest is one line, not a crash;
lists are fetched and written one at a time (memory holds one list, never every list attached)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nydus_top.cli import main
from nydus_top.registry import artifacts as registry
from nydus_top.runs import store as runstore
from tests.hostile.registry_peer import hostile_registry

REPO = "team/app"


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f'persist_dir = "{tmp_path / "persist"}"\n')
    return config


_LIST = b'"artifactType": "application/vnd.nydus-top.prefetch-list.v1"'


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"{" + _LIST + b', "layers": 7}',
                                  b"{" + _LIST + b', "layers": [], "annotations": []}'],
                         ids=["not-json", "not-an-object", "layers-not-a-list", "annotations-not-an-object"])
def test_a_manifest_that_is_no_manifest_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    body: bytes) -> None:
    with hostile_registry() as hostile:
        subject = hostile.image(REPO, "1")
        good = hostile.artifact(REPO, subject, b"/bin/app\n", created="2024-01-01T00:00:00Z")
        bad = hostile.artifact(REPO, subject, b"/bin/bad\n", created="2024-01-02T00:00:00Z", body=body)
        hostile.referrers(REPO, subject, [good, bad])
        ref = f"{hostile.host}/{REPO}:1"
        rc = main(["--config", str(_config(tmp_path)), "pull", ref, "--plain-http"])
    err = capsys.readouterr().err
    if body.startswith(b"not") or body.startswith(b"["):  # skipped with one line naming it, the rest pulled
        assert rc == 1
        assert err.splitlines() == [
            f"nydus-top pull: skipped artifact {bad['digest']} of {ref}: manifest {REPO}@{bad['digest']}: "
            "not a JSON object", f"pulled 1 list of {ref} into {tmp_path}/persist/.nydus-top/image-runs/{ref}"]
    else:  # malformed fields: that list has no usable files and is passed over
        assert rc == 0, err
        assert err.startswith("pulled 1 list of")
    assert "Traceback" not in err


def test_lists_are_written_as_they_are_fetched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with hostile_registry() as hostile:
        subject = hostile.image(REPO, "1")
        first = hostile.artifact(REPO, subject, b"/bin/first\n", created="2024-01-01T00:00:00Z")
        second = hostile.artifact(REPO, subject, b"/bin/second\n", created="2024-01-02T00:00:00Z")
        hostile.referrers(REPO, subject, [second, first])
        del hostile.answers[f"/v2/{REPO}/blobs/{registry.digest_of(b'/bin/second' + bytes([10]))}"]
        ref = f"{hostile.host}/{REPO}:1"
        assert main(["--config", str(_config(tmp_path)), "pull", ref, "--plain-http"]) == 1
        blobs = [path for path in hostile.asked if "/blobs/" in path]
    assert "404" in capsys.readouterr().err
    # The oldest list is on disk before the next one's files are asked for.
    (run,) = runstore.runs_of(runstore.image_dir(tmp_path / "persist", ref))
    assert run.read_bytes() == b"/bin/first\n"
    assert len(blobs) == 2


def test_only_the_annotations_we_use_are_kept_and_clipped(tmp_path: Path) -> None:
    with hostile_registry() as hostile:
        subject = hostile.image(REPO, "1")
        big = {f"junk.{n}": "x" * 1000 for n in range(1000)} | {"io.nydus-top.node": "n" * 100_000}
        entry = hostile.artifact(REPO, subject, b"/bin/app\n", created="2024-01-01T00:00:00Z", annotations=big)
        hostile.referrers(REPO, subject, [entry])
        client = registry.Client(hostile.host, plain_http=True)
        (attached,) = registry.pull_lists(client, registry.parse_reference(f"{hostile.host}/{REPO}:1"))
    assert set(attached.annotations) == {registry.ANNOTATION_CREATED, registry.ANNOTATION_NODE}
    assert len(attached.annotations[registry.ANNOTATION_NODE]) == registry.MAX_ANNOTATION_CHARS


@pytest.mark.parametrize("where", ["referrers", "error"])
def test_json_nested_too_deep_for_the_parser_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          where: str) -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    with hostile_registry() as hostile:
        subject = hostile.image(REPO, "1")
        if where == "referrers":
            hostile.put(f"/v2/{REPO}/referrers/{subject}", deep, "application/vnd.oci.image.index.v1+json")
        else:
            hostile.put(f"/v2/{REPO}/referrers/{subject}", deep, "application/json", status=500)
            hostile.put(f"/v2/{REPO}/manifests/sha256-{subject[7:]}", deep, "application/json", status=500)
        rc = main(["--config", str(_config(tmp_path)), "pull", f"{hostile.host}/{REPO}:1", "--plain-http"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1, err
    expected = "not a JSON object" if where == "referrers" else "registry answered 500"
    assert expected in err


def test_an_answer_trickling_in_is_cut_at_the_request_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """One byte now and then keeps every read within its timeout: the whole answer has a deadline
    (else one such registry holds the recorder's only pusher thread forever)."""
    import time

    from tests.hostile.registry_peer import trickling_registry

    monkeypatch.setattr(registry, "REQUEST_DEADLINE", 1.0)
    with trickling_registry(0.05) as host:
        client = registry.Client(host, plain_http=True, timeout=5)
        started = time.monotonic()
        with pytest.raises(registry.RegistryError) as err:
            client.resolve(registry.parse_reference(f"{host}/{REPO}:1"))
        took = time.monotonic() - started
    assert str(err.value) == (f"GET http://{host}/v2/{REPO}/manifests/1: no complete answer within "
                              "1 s (REQUEST_DEADLINE)")
    assert took < 10


def test_an_answer_cut_short_is_one_line() -> None:
    from tests.hostile.registry_peer import short_registry

    with short_registry() as host:
        client = registry.Client(host, plain_http=True, timeout=5)
        with pytest.raises(registry.RegistryError) as err:
            client.resolve(registry.parse_reference(f"{host}/{REPO}:1"))
    assert str(err.value).startswith(f"GET http://{host}/v2/{REPO}/manifests/1: ") and "\n" not in str(err.value)
