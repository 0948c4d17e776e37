"""A configuration file says which program root runs and where root writes: one that another
user owns or could change, or below such a directory, is refused in one line, as ssh and sudo
do (issue 18 item 10). So is such a persist_dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nydus_top.cli import main
from nydus_top.commands.record import with_layer
from nydus_top.config import ConfigError, default_config, load_config

NOBODY = 65534


def trusted_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    path.chmod(0o755)
    return path


def config_in(directory: Path, text: str = "timeout = 5\n") -> Path:
    path = directory / "config.toml"
    path.write_text(text)
    path.chmod(0o644)
    return path


def no_user(tmp_path: Path) -> dict[str, object]:
    """load_config's search path pointed at nothing (no /etc, no user file)."""
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "none"), "HOME": "/nonexistent"}
    return {"system_path": tmp_path / "none.toml", "environ": environ}


def test_a_trusted_config_is_read(tmp_path: Path) -> None:
    config = config_in(trusted_dir(tmp_path / "etc"))
    assert load_config(config, **no_user(tmp_path)).timeout == 5


@pytest.mark.parametrize("spoil, why", [
    (lambda p: os.chown(p, NOBODY, -1), "is owned by uid 65534, not root"),
    (lambda p: p.chmod(0o664), "is writable by group or others (mode 0664)"),
    (lambda p: p.chmod(0o646), "is writable by group or others (mode 0646)"),
])
def test_a_config_file_others_could_change_is_refused(tmp_path: Path, spoil, why: str) -> None:
    config = config_in(trusted_dir(tmp_path / "etc"))
    spoil(config)
    with pytest.raises(ConfigError) as caught:
        load_config(config, **no_user(tmp_path))
    assert str(caught.value) == f"{config}: refused: {config} {why}"


@pytest.mark.parametrize("spoil, why", [
    (lambda p: os.chown(p, NOBODY, -1), "is owned by uid 65534, not root"),
    (lambda p: p.chmod(0o775), "is writable by group or others (mode 0775)"),
    (lambda p: p.chmod(0o777), "is writable by group or others (mode 0777)"),
])
def test_a_config_below_a_directory_others_could_change_is_refused(tmp_path: Path, spoil, why: str) -> None:
    upper = trusted_dir(tmp_path / "upper")
    config = config_in(trusted_dir(upper / "etc"))
    spoil(upper)
    with pytest.raises(ConfigError) as caught:
        load_config(config, **no_user(tmp_path))
    assert str(caught.value) == f"{config}: refused: its directory {upper} {why}"


def test_a_sticky_directory_above_like_tmp_is_fine(tmp_path: Path) -> None:
    shared = trusted_dir(tmp_path / "shared")
    shared.chmod(0o1777)
    config = config_in(trusted_dir(shared / "mine"))
    assert load_config(config, **no_user(tmp_path)).timeout == 5


def test_a_symlink_is_judged_by_the_file_it_names(tmp_path: Path) -> None:
    theirs = config_in(trusted_dir(tmp_path / "theirs"))
    os.chown(theirs, NOBODY, -1)
    link = trusted_dir(tmp_path / "etc") / "config.toml"
    link.symlink_to(theirs)
    with pytest.raises(ConfigError, match=f"^{link}: refused: {theirs} is owned by uid 65534"):
        load_config(link, **no_user(tmp_path))


def test_the_system_and_user_files_of_the_search_path_are_held_to_it_too(tmp_path: Path) -> None:
    system = config_in(trusted_dir(tmp_path / "etc"))
    xdg = trusted_dir(tmp_path / "xdg")
    user = config_in(trusted_dir(xdg / "nydus-top"))
    environ = {"XDG_CONFIG_HOME": str(xdg), "HOME": "/nonexistent"}
    assert load_config(system_path=system, environ=environ).timeout == 5
    user.chmod(0o666)
    with pytest.raises(ConfigError, match=f"^{user}: refused: .* writable by group or others"):
        load_config(system_path=system, environ=environ)
    user.chmod(0o644)
    os.chown(system, NOBODY, -1)
    with pytest.raises(ConfigError, match=f"^{system}: refused: .* owned by uid 65534"):
        load_config(system_path=system, environ=environ)


def test_root_never_runs_the_nydusify_an_untrusted_config_names(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "ran-as-root"
    script = tmp_path / "their-nydusify"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)
    config = config_in(trusted_dir(tmp_path / "etc"), f'persist_dir = "{tmp_path / "persist"}"\n'
                                                       f'[convert]\nnydusify = "{script}"\n')
    config.chmod(0o666)  # as found in issue 18: another user edited it
    listed = tmp_path / "app:1"
    listed.write_text("/bin/app\n")
    assert main(["--config", str(config), "convert", str(listed), "--source", "127.0.0.1:5000/app:1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"nydus-top convert: {config}: refused: {config} is writable by group or others (mode 0666)"]
    assert not marker.exists()


@pytest.mark.parametrize("spoil, why", [
    (lambda p: os.chown(p, NOBODY, -1), "is owned by uid 65534, not root"),
    (lambda p: p.chmod(0o777), "is writable by group or others (mode 0777)"),
    (lambda p: p.chmod(0o1777), "is writable by group or others (mode 1777)"),  # sticky: still theirs to fill
])
def test_a_persist_dir_others_could_change_is_refused(tmp_path: Path, spoil, why: str) -> None:
    persist = trusted_dir(tmp_path / "persist")
    config = config_in(trusted_dir(tmp_path / "etc"), f'persist_dir = "{persist}"\n')
    assert load_config(config, **no_user(tmp_path)).persist_dir == persist
    spoil(persist)
    with pytest.raises(ConfigError) as caught:
        load_config(config, **no_user(tmp_path))
    assert str(caught.value) == f"persist_dir {persist} (from {config}) refused: {persist} {why}"


def test_a_persist_dir_yet_to_be_made_is_judged_by_the_directory_above(tmp_path: Path) -> None:
    upper = trusted_dir(tmp_path / "upper")
    config = config_in(trusted_dir(tmp_path / "etc"), f'persist_dir = "{upper / "a" / "b"}"\n')
    assert load_config(config, **no_user(tmp_path)).persist_dir == upper / "a" / "b"
    upper.chmod(0o777)
    with pytest.raises(ConfigError, match=f"refused: its directory {upper} is writable by group or others"):
        load_config(config, **no_user(tmp_path))


def test_a_persist_dir_below_a_directory_others_own_is_refused(tmp_path: Path) -> None:
    upper = trusted_dir(tmp_path / "upper")
    persist = trusted_dir(upper / "persist")
    os.chown(upper, NOBODY, -1)
    with pytest.raises(ConfigError, match=f"refused: its directory {upper} is owned by uid 65534"):
        with_layer(default_config(), f'persist_dir = "{persist}"\n')


def test_record_refuses_an_untrusted_persist_dir_flag(tmp_path: Path) -> None:
    persist = trusted_dir(tmp_path / "persist")
    persist.chmod(0o777)
    config = config_in(trusted_dir(tmp_path / "etc"), "")
    # Its first line says why it refuses (without the fix: that it retries the missing socket, for ever).
    with subprocess.Popen([sys.executable, "-I", "-m", "nydus_top", "--config", str(config), "record",
                           "--persist-dir", str(persist), "--nri-socket", str(tmp_path / "no.sock")],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True) as record:
        assert record.stderr is not None
        first = record.stderr.readline()
        if "refused" not in first:
            record.kill()
        assert first == (f"nydus-top record: persist_dir {persist} (from --persist-dir) refused: "
                         f"{persist} is writable by group or others (mode 0777)\n")
        assert record.wait() == 2


READ_ONLY_MOUNT = """
import os, subprocess, sys
from pathlib import Path
from nydus_top.config import ConfigError, load_config
base = Path(sys.argv[1])
subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0777", "cm", str(base)], check=True)
(base / "config.toml").write_text("timeout = 9\\n")
(base / "config.toml").chmod(0o666)
none = {"XDG_CONFIG_HOME": str(base / "none"), "HOME": "/nonexistent"}
def outcome():
    try:
        return str(load_config(base / "config.toml", system_path=base / "none.toml", environ=none).timeout)
    except ConfigError as err:
        return str(err)
print(outcome())
subprocess.run(["mount", "-o", "remount,ro", str(base)], check=True)
print(outcome())
"""


def test_on_a_read_only_mount_like_a_configmap_the_mode_does_not_matter(tmp_path: Path) -> None:
    # kubelet mounts a ConfigMap read-only; its directory's mode may say 0777: no one can write it.
    base = trusted_dir(tmp_path / "cm")
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-I", "-c",
                           READ_ONLY_MOUNT, str(base)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    writable, read_only = done.stdout.splitlines()
    config = base / "config.toml"
    assert writable == f"{config}: refused: {config} is writable by group or others (mode 0666)"
    assert read_only == "9"
