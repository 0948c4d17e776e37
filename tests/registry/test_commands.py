"""push, pull and consensus --pull through the CLI: two nodes' lists meet in the registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nydus_top.cli import main
from nydus_top.lists.files import load_list
from nydus_top.lists.meta import ListMeta
from nydus_top.model.records import ListedFile
from nydus_top.runs import store as runstore
from tests.lists.helpers import FAKE_NYDUSIFY

from .conftest import LocalRegistry


def _node(tmp_path: Path, name: str, image: str, runs: list[list[str]]) -> Path:
    """A persist_dir as a node's recorder leaves it: runs of *image* with metadata."""
    persist = tmp_path / name / "persist"
    for n, paths in enumerate(runs):
        runstore.save_run(persist, [ListedFile(p, 1, 10 * i) for i, p in enumerate(paths)],
                          ListMeta(image=image, container="app", node=name).with_origin(), when=1_700_000_000 + n)
    config = tmp_path / name / "config.toml"
    config.write_text(f'persist_dir = "{persist}"\n[convert]\nnydusify = "{FAKE_NYDUSIFY}"\n')
    return config


def test_two_nodes_push_then_one_pulls_and_converts(tmp_path: Path, local_registry: LocalRegistry,
                                                    pushed_image: tuple[str, str], monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    ref, digest = pushed_image
    node_a = _node(tmp_path, "node-a", ref, [["/bin/app", "/etc/app.conf", "/tmp/a0"]])
    node_b = _node(tmp_path, "node-b", ref, [["/bin/app", "/etc/app.conf", "/tmp/b0"], ["/bin/app", "/tmp/b1"]])
    for config in (node_a, node_b):
        for run in runstore.runs_of(runstore.image_dir(config.parent / "persist", ref)):
            assert main(["push", str(run), "--plain-http"]) == 0, capsys.readouterr().err
    assert f"to {ref}@{digest} as sha256:" in capsys.readouterr().out
    # A third machine pulls everything attached and builds the consensus from the registry alone.
    conv = tmp_path / "conv.toml"
    conv.write_text(f'persist_dir = "{tmp_path / "conv"}"\n[convert]\nnydusify = "{FAKE_NYDUSIFY}"\n')
    out = tmp_path / "consensus"
    assert main(["--config", str(conv), "consensus", "--pull", ref, "--plain-http", "--min-share", "0.6",
                 "-o", str(out)]) == 0, capsys.readouterr().err
    assert out.read_bytes() == b"/bin/app\n/etc/app.conf\n"
    loaded = load_list(out)
    assert loaded.meta is not None and loaded.meta.image == ref and len(loaded.meta.runs) == 3
    # Pulling again adds nothing; the lists are runs of the image now.
    assert main(["--config", str(conv), "pull", ref, "--plain-http"]) == 0
    assert "pulled 0 lists" in capsys.readouterr().err
    record = tmp_path / "rec"
    record.mkdir()
    monkeypatch.setenv("FAKE_NYDUSIFY_RECORD", str(record))
    monkeypatch.setenv("FAKE_NYDUSIFY_MODE", "ok")
    assert main(["convert", str(out), "--config", str(conv), "--source", ref]) == 0
    assert json.loads((record / "argv.json").read_text())[:3] == ["convert", "--source", ref]
    assert (record / "stdin").read_bytes() == b"/bin/app\n/etc/app.conf\n"


def test_push_counts_the_lists_paths_not_the_artifacts_files(tmp_path: Path, local_registry: LocalRegistry,
                                                               pushed_image: tuple[str, str],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    ref, _ = pushed_image
    paths = [f"/app/lib{n}.so" for n in range(7)]
    config = _node(tmp_path, "node", ref, [paths])
    (run,) = runstore.runs_of(runstore.image_dir(config.parent / "persist", ref))
    assert main(["push", str(run), "--plain-http"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"attached {run} (7 paths; with its .csv, metadata) to {ref}@" in out, out


def test_push_refuses_a_list_without_an_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = tmp_path / "bare"
    bare.write_text("/bin/app\n")
    assert main(["push", str(bare)]) == 2
    assert "has no metadata naming its image: pass --image" in capsys.readouterr().err
    assert main(["push", str(bare), "--image", "app:1"]) == 1
    assert "with a registry host" in capsys.readouterr().err


def test_pull_of_an_image_without_lists(tmp_path: Path, local_registry: LocalRegistry,
                                        pushed_image: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    ref = pushed_image[0].replace(":1", "-none:1")
    assert main(["pull", ref, "--plain-http", "-o", str(tmp_path / "o")]) == 1
    assert "404" in capsys.readouterr().err


def test_convert_straight_from_the_registry(tmp_path: Path, local_registry: LocalRegistry,
                                            pushed_image: tuple[str, str], monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    ref, _ = pushed_image
    node = _node(tmp_path, "node-a", ref, [["/bin/app", "/etc/app.conf", "/tmp/x"], ["/bin/app", "/etc/app.conf"],
                                           ["/bin/app", "/lib/once.so"]])
    for run in runstore.runs_of(runstore.image_dir(node.parent / "persist", ref)):
        assert main(["push", str(run), "--plain-http"]) == 0
    conv = tmp_path / "conv.toml"
    conv.write_text(f'persist_dir = "{tmp_path / "conv"}"\n[convert]\nnydusify = "{FAKE_NYDUSIFY}"\n')
    record = tmp_path / "rec"
    record.mkdir()
    monkeypatch.setenv("FAKE_NYDUSIFY_RECORD", str(record))
    monkeypatch.setenv("FAKE_NYDUSIFY_MODE", "ok")
    capsys.readouterr()
    assert main(["convert", "--config", str(conv), "--pull", ref, "--plain-http", "--min-share", "0.6"]) == 0
    err = capsys.readouterr().err
    assert f"consensus of 3 runs of {ref} at 0.6: 2 of 4 files" in err
    assert json.loads((record / "argv.json").read_text())[:3] == ["convert", "--source", ref]
    assert (record / "stdin").read_bytes() == b"/bin/app\n/etc/app.conf\n"
    assert main(["convert", "--config", str(conv), "LIST", "--pull", ref]) == 2
    assert "name a LIST or --pull IMAGE" in capsys.readouterr().err


def test_every_registry_command_reads_plain_http_from_the_configuration(
        tmp_path: Path, local_registry: LocalRegistry, pushed_image: tuple[str, str],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    ref, _ = pushed_image
    node = _node(tmp_path, "node-a", ref, [["/bin/app", "/etc/app.conf"]])
    (run,) = runstore.runs_of(runstore.image_dir(node.parent / "persist", ref))
    # Without --plain-http and without the configuration saying so: the cause, and what fixes it.
    assert main(["push", str(run), "--config", str(node)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (f"nydus-top push: {local_registry.host} answers HTTP, not HTTPS (--plain-http, or "
                    f'[registry] plain_http = ["{local_registry.host}"] in the configuration)')
    with node.open("a") as fh:
        fh.write(f'[registry]\nplain_http = ["{local_registry.host}"]\n')
    assert main(["push", str(run), "--config", str(node)]) == 0, capsys.readouterr().err
    assert main(["--config", str(node), "pull", ref, "-o", str(tmp_path / "pulled")]) == 0, capsys.readouterr().err
    assert len(runstore.runs_of(tmp_path / "pulled")) == 1
    assert main(["--config", str(node), "consensus", "--pull", ref, "--json"]) == 0, capsys.readouterr().err
    record = tmp_path / "rec"
    record.mkdir()
    monkeypatch.setenv("FAKE_NYDUSIFY_RECORD", str(record))
    monkeypatch.setenv("FAKE_NYDUSIFY_MODE", "ok")
    assert main(["convert", "--config", str(node), "--pull", ref]) == 0, capsys.readouterr().err
    assert (record / "stdin").read_bytes() == b"/bin/app\n/etc/app.conf\n"


def test_push_of_a_missing_file_says_it_cannot_read_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nonexistent"
    assert main(["push", str(missing), "--image", "registry.example/app:1"]) == 2
    assert capsys.readouterr().err == f"nydus-top push: cannot read {missing}: no such file\n"
    assert main(["push", str(missing)]) == 2
    assert capsys.readouterr().err == f"nydus-top push: cannot read {missing}: no such file\n"


@pytest.mark.parametrize("command", [["push", "LIST", "--image"], ["pull"]])
def test_an_unresolvable_registry_host_names_the_reference(tmp_path: Path, command: list[str]) -> None:
    """In a network namespace of its own (nothing but a down loopback), no name resolves and
    nothing leaves the machine. The hint fits every command (pull has no --image)."""
    listing = tmp_path / "list"
    listing.write_text("/bin/app\n")
    argv = [str(listing) if arg == "LIST" else arg for arg in command]
    out = subprocess.run(["unshare", "--net", sys.executable, "-I", "-m", "nydus_top", *argv,
                          "registry.nydus-top-test.invalid/app:1"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr == (f"nydus-top {command[0]}: cannot resolve the registry host registry.nydus-top-test.invalid "
                          "(is the image reference host[:port]/repo:tag right?)\n")
