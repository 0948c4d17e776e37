"""Layered configuration: packaged defaults < /etc < user dir < --config < runtime text."""

from __future__ import annotations

from pathlib import Path

import pytest

from nydus_top.config import Config, ConfigError, default_config, load_config, user_config_path

OPTIMIZER_CONF = """\
# the example file shipped with nydus-snapshotter's optimizer plugin, with other values
persist_dir = "/var/lib/optimizer"
readable = true
server_path = "/usr/local/bin/optimizer-server"
timeout = 30
overwrite = true
events = [ "StartContainer", "StopContainer" ]
"""


def _layers(tmp_path: Path, system: str | None = None, user: str | None = None) -> dict:
    system_path = tmp_path / "etc.toml"
    if system is not None:
        system_path.write_text(system)
    xdg = tmp_path / "xdg"
    if user is not None:
        (xdg / "nydus-top").mkdir(parents=True)
        (xdg / "nydus-top" / "config.toml").write_text(user)
    return {"system_path": system_path, "environ": {"XDG_CONFIG_HOME": str(xdg), "HOME": "/nonexistent"}}


def test_packaged_defaults_match_the_optimizer() -> None:
    config = default_config()
    assert isinstance(config, Config)
    assert config.persist_dir == Path("/opt/nri/optimizer/results")
    assert (config.readable, config.timeout, config.overwrite) == (False, 0, False)
    assert config.events == ("StartContainer", "StopContainer")
    assert config.nydusify == "nydusify" and config.nydusify_args == ()
    assert config.target_template == "{repo}:{tag}-nydus"
    assert config.nri_socket == Path("/var/run/nri/nri.sock")
    assert config.registry_push is False and config.registry_plain_http == ()
    assert config.sources[0].endswith("nydus-top.toml")
    assert config.keep_runs == 20
    assert (config.ranges_window, config.ranges_on_attach) == (30, False)  # a start-up window; attach: files only


def test_range_window_and_attach_keys(tmp_path: Path) -> None:
    explicit = tmp_path / "ranges.toml"
    explicit.write_text("[ranges]\nwindow = 3600\nattach = true\n")
    config = load_config(explicit, **_layers(tmp_path))
    assert (config.ranges_window, config.ranges_on_attach) == (3600, True)


def test_registry_push_keys(tmp_path: Path) -> None:
    explicit = tmp_path / "push.toml"
    explicit.write_text('[registry]\npush = true\nplain_http = ["127.0.0.1:5000", "reg.local", "[::1]:5000"]\n')
    config = load_config(explicit, **_layers(tmp_path))
    assert config.registry_push is True
    assert config.registry_plain_http == ("127.0.0.1:5000", "reg.local", "[::1]:5000")


def test_layers_override_single_keys_in_order(tmp_path: Path) -> None:
    kwargs = _layers(
        tmp_path,
        system='timeout = 5\nreadable = true\n[convert]\nnydusify = "/opt/bin/nydusify"\n',
        user='timeout = 7\n[convert]\nextra_args = ["--platform", "linux/amd64"]\n',
    )
    explicit = tmp_path / "cli.toml"
    explicit.write_text('keep_runs = 0\n[nri]\nsocket = "/run/nri/other.sock"\n')
    config = load_config(explicit, extra=[("NRI Configure", "overwrite = true")], **kwargs)
    assert config.timeout == 7  # user beats system
    assert config.readable is True  # system survives where nobody else set it
    assert config.nydusify == "/opt/bin/nydusify"
    assert config.nydusify_args == ("--platform", "linux/amd64")
    assert config.nri_socket == Path("/run/nri/other.sock")
    assert config.overwrite is True
    assert config.keep_runs == 0
    assert config.persist_dir == Path("/opt/nri/optimizer/results")
    assert config.sources[1:] == (str(kwargs["system_path"]), str(user_config_path(kwargs["environ"])),
                                  str(explicit), "NRI Configure")
    user = str(user_config_path(kwargs["environ"]))
    assert {name: config.origin(name) for name in ("timeout", "readable", "nydusify", "nydusify_args",
                                                   "nri_socket", "overwrite", "persist_dir")} == {
        "timeout": user, "readable": str(kwargs["system_path"]), "nydusify": str(kwargs["system_path"]),
        "nydusify_args": user, "nri_socket": str(explicit), "overwrite": "NRI Configure",
        "persist_dir": config.sources[0]}
    flagged = config.overridden({"nri_socket": Path("/run/x.sock")}, "command line (--nri-socket)")
    assert (flagged.nri_socket, flagged.origin("nri_socket")) == (Path("/run/x.sock"), "command line (--nri-socket)")
    assert flagged.origin("timeout") == user


def test_missing_optional_layers_are_skipped(tmp_path: Path) -> None:
    assert load_config(**_layers(tmp_path)).sources == default_config().sources


def test_user_dir_falls_back_to_home_dot_config() -> None:
    assert user_config_path({"HOME": "/home/op"}) == Path("/home/op/.config/nydus-top/config.toml")
    assert user_config_path({"HOME": "/h", "XDG_CONFIG_HOME": "/x"}) == Path("/x/nydus-top/config.toml")


def test_optimizer_config_file_is_accepted_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "optimizer-nri-plugin.conf"
    path.write_text(OPTIMIZER_CONF)
    config = load_config(path, **_layers(tmp_path))
    assert config.persist_dir == Path("/var/lib/optimizer")
    assert (config.readable, config.timeout, config.overwrite) == (True, 30, True)
    assert config.notes == (f"{path}: server_path is ignored: nydus-top traces with its own tracer",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timeout = \"10\"", "key 'timeout' must be an integer >= 0, got '10'"),
        ("timeout = -1", "key 'timeout' must be an integer >= 0, got -1"),
        ("timeout = true", "key 'timeout' must be an integer >= 0, got a boolean"),
        ("readable = 1", "key 'readable' must be true or false, got an integer"),
        ("keep_runs = -1", "key 'keep_runs' must be an integer from 0 to 1000, got -1"),
        ("keep_runs = 1001", "key 'keep_runs' must be an integer from 0 to 1000, got 1001"),
        ("keep_runs = 2.5", "key 'keep_runs' must be an integer from 0 to 1000, got 2.5"),
        ("[ranges]\nwindow = 0", "key 'ranges.window' must be an integer from 1 to 3600 (seconds), got 0"),
        ("[ranges]\nwindow = 3601", "key 'ranges.window' must be an integer from 1 to 3600 (seconds), got 3601"),
        ("[ranges]\nattach = 1", "key 'ranges.attach' must be true or false, got an integer"),
        ("persist_dir = \"results\"", "key 'persist_dir' must be an absolute path, got 'results'"),
        ("persist_dir = \"\"", "key 'persist_dir' must be a non-empty string, got ''"),
        ("events = \"StartContainer\"", "key 'events' must be a list of strings, got 'StartContainer'"),
        ("events = [\"StartContainer\", \"Boot\"]", "key 'events' unknown NRI event 'Boot'"),
        ("persist_dri = \"/x\"", "unknown key 'persist_dri'"),
        ("[convert]\ntarget = \"{repo}:{version}\"", "key 'convert.target' unknown field {version}"),
        ("[convert]\ntarget = \"{repo\"", "key 'convert.target' is not a valid template"),
        ("[convert]\nextra_args = [\"-v\", 3]", "key 'convert.extra_args' must be a list of strings"),
        ("[convert]\nbinary = \"x\"", "unknown key 'convert.binary'"),
        ("convert = 3", "key 'convert' must be a table, got an integer"),
        ("[nri]\nplugin_name = \"nydus top\"",
         "key 'nri.plugin_name' must be letters, digits and _.+- (as NRI requires), got 'nydus top'"),
        ("[nri]\nplugin_index = 5", "key 'nri.plugin_index' must be a two-digit string like \"90\", got 5"),
        ("[registry]\npush = \"yes\"", "key 'registry.push' must be true or false, got a string"),
        ("[registry]\nplain_http = [\"http://reg:5000\"]",
         "key 'registry.plain_http' must list registries as host or host:port, got 'http://reg:5000'"),
        ("timeout = ", "invalid TOML: "),
        ("[nri]\nsocket = \"a\"\nsocket = \"b\"", "invalid TOML: "),
    ],
)
def test_bad_file_gives_one_line_naming_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, **_layers(tmp_path))
    text_out = str(info.value)
    assert text_out.startswith(f"{path}: ")
    assert message in text_out
    assert "\n" not in text_out


def test_bad_system_layer_is_named_even_with_a_good_user_layer(tmp_path: Path) -> None:
    kwargs = _layers(tmp_path, system="readable = \"yes\"\n", user="readable = true\n")
    with pytest.raises(ConfigError, match=rf"^{kwargs['system_path']}: key 'readable' must be true or false"):
        load_config(**kwargs)


def test_explicit_config_must_exist_and_be_readable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.toml: no such file$"):
        load_config(tmp_path / "nope.toml", **_layers(tmp_path))
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match=r"binary.toml: not UTF-8 text$"):
        load_config(binary, **_layers(tmp_path))
    directory = tmp_path / "dir.toml"
    directory.mkdir()
    with pytest.raises(ConfigError, match=r"dir.toml is a directory, not a regular file: not read$"):
        load_config(directory, **_layers(tmp_path))


def test_runtime_text_layer_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^NRI Configure: unknown key 'server'$"):
        load_config(extra=[("NRI Configure", "server = 1")], **_layers(tmp_path))


def test_config_is_frozen() -> None:
    config = default_config()
    with pytest.raises(AttributeError):
        config.timeout = 3  # type: ignore[misc]


def test_convert_format_keys(tmp_path: Path) -> None:

    assert default_config().convert_format == "nydusify"
    path = tmp_path / "c.toml"
    path.write_text('[convert]\nformat = "estargz"\ncontainerd_address = "/n/c.sock"\ncontainerd_namespace = "x"\n')
    config = load_config(path, environ={"HOME": str(tmp_path)}, system_path=tmp_path / "none")
    assert (config.convert_format, str(config.containerd_address), config.containerd_namespace) == (
        "estargz", "/n/c.sock", "x")
    path.write_text('[convert]\nformat = "squashfs"\n')
    with pytest.raises(ConfigError, match="key 'convert.format' must be one of nydusify, estargz, zstdchunked"):
        load_config(path, environ={"HOME": str(tmp_path)}, system_path=tmp_path / "none")


def test_the_containerd_address_comes_from_the_environment_over_the_files(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[convert]\ncontainerd_address = "/n/c.sock"\n')
    env = {"HOME": str(tmp_path), "NYDUS_TOP_CONTAINERD_ADDRESS": "/sandbox/containerd.sock"}
    config = load_config(path, environ=env, system_path=tmp_path / "none")
    assert (config.containerd_address, config.origin("containerd_address")) == (
        Path("/sandbox/containerd.sock"), "$NYDUS_TOP_CONTAINERD_ADDRESS")
    with pytest.raises(ConfigError, match=r"^\$NYDUS_TOP_CONTAINERD_ADDRESS must be an absolute path"):
        load_config(path, environ={**env, "NYDUS_TOP_CONTAINERD_ADDRESS": "c.sock"}, system_path=tmp_path / "none")
