"""Global options (--config, --nri-socket) work before and after every subcommand that uses
them, and are refused where they do not apply, never silently ignored."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nydus_top.cli import COMMANDS, GLOBAL_OPTIONS, main, parse_args

REQUIRED = {"trace": ["--pid", "1"], "convert": ["LIST"], "ps": [], "record": [], "consensus": [],
            "diff": ["A", "B"], "push": ["LIST"], "pull": ["IMAGE"], "evaluate": ["LIST"]}


def dest(option: str) -> str:
    return option[2:].replace("-", "_")


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("option", sorted(GLOBAL_OPTIONS))
def test_a_global_option_works_on_either_side_of_the_command_or_is_refused(
        command: str, option: str, capsys: pytest.CaptureFixture[str]) -> None:
    rest = REQUIRED[command]
    if option in COMMANDS[command][2]:
        assert getattr(parse_args([option, "before", command, *rest]), dest(option)) == "before"
        assert getattr(parse_args([command, *rest, option, "after"]), dest(option)) == "after"
        assert getattr(parse_args([option, "before", command, *rest, option, "after"]), dest(option)) == "after"
        assert getattr(parse_args([command, *rest]), dest(option)) is None
    else:
        with pytest.raises(SystemExit) as exit_:
            parse_args([option, "x", command, *rest])
        assert exit_.value.code == 2
        assert f"error: {option} does not apply to '{command}'" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            parse_args([command, *rest, option, "x"])  # not shown there, not accepted there


def test_the_app_takes_both_options() -> None:
    args = parse_args(["--config", "c.toml", "--nri-socket", "/s"])
    assert (args.command, args.config, args.nri_socket) == (None, "c.toml", "/s")


@pytest.mark.parametrize("command", ["ps", "record", "convert"])
def test_config_before_the_command_is_read(command: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("readable = 'yes'\n")
    listing = tmp_path / "list"
    listing.write_text("/bin/sh\n")
    rest = [str(listing)] if command == "convert" else []
    out = subprocess.run([sys.executable, "-m", "nydus_top", "--config", str(bad), command, *rest],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert f"{bad}: key 'readable'" in line


def test_nri_socket_before_ps_is_the_one_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    socket = tmp_path / "none.sock"
    assert main(["--nri-socket", str(socket), "ps"]) == 1
    assert f"cannot list from NRI at {socket}" in capsys.readouterr().err


def test_help_shows_where_each_global_option_applies(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "for the app, ps, trace, record" in text
    assert "for the app, ps, trace, convert, record, consensus, evaluate, push, pull" in text


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_prints_its_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    # argparse expands % in help texts: a bare "1 %" in one made `consensus --help` crash
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert f"usage: nydus-top {command}" in capsys.readouterr().out


def test_the_nri_socket_comes_from_the_environment_unless_given(tmp_path: Path) -> None:
    env_socket, flag_socket = tmp_path / "env.sock", tmp_path / "flag.sock"
    env = {**os.environ, "NYDUS_TOP_NRI_SOCKET": str(env_socket)}
    out = subprocess.run([sys.executable, "-I", "-m", "nydus_top", "ps"], capture_output=True, text=True,
                         timeout=60, env=env, cwd=tmp_path)
    assert out.returncode == 1 and f"cannot list from NRI at {env_socket}" in out.stderr
    out = subprocess.run([sys.executable, "-I", "-m", "nydus_top", "--nri-socket", str(flag_socket), "ps"],
                         capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert out.returncode == 1 and f"cannot list from NRI at {flag_socket}" in out.stderr
    out = subprocess.run([sys.executable, "-I", "-m", "nydus_top", "ps"], capture_output=True, text=True,
                         timeout=60, env={**env, "NYDUS_TOP_NRI_SOCKET": "relative.sock"}, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == "nydus-top ps: $NYDUS_TOP_NRI_SOCKET must be an absolute path, got 'relative.sock'"


def test_the_readme_says_which_commands_take_each_global_option() -> None:
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    nri = re.search(r"The app, ((?:`[a-z]+`(?:, | and ))+`[a-z]+`) take `--nri-socket PATH`", readme)
    assert nri is not None
    assert set(re.findall(r"`([a-z]+)`", nri.group(1))) == {n for n, (_, _, uses) in COMMANDS.items()
                                                             if "--nri-socket" in uses}
    assert "every command but `diff` takes it" in readme
    assert {n for n, (_, _, uses) in COMMANDS.items() if "--config" not in uses} == {"diff"}
