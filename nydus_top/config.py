"""Layered TOML configuration.

Layers, each overriding single keys of the previous ones: the packaged defaults
(``nydus_top.conf/nydus-top.toml``), ``/etc/nydus-top/config.toml``, the user's
``$XDG_CONFIG_HOME/nydus-top/config.toml`` (``~/.config`` without XDG), ``--config PATH``, and
text handed over at runtime (containerd's NRI Configure). Missing system/user files are skipped.
``$NYDUS_TOP_NRI_SOCKET`` sets ``[nri] socket`` over every layer (``--nri-socket`` still wins).
Any bad layer raises :class:`ConfigError` with one line naming the file and the key.

A configuration file says which program root runs (``nydusify``) and where root writes
(``persist_dir``): a file, or a persist_dir, that anyone but root (or the user running us) owns
or could change, or with such a directory above it, is refused with one line (see
:mod:`nydus_top.fs.trust`), as ssh and sudo do.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import tomli

from nydus_top.fs import trust
from nydus_top.fs.reading import ReadError, ReadMissing, read_regular

SYSTEM_CONFIG = Path("/etc/nydus-top/config.toml")
NRI_EVENTS = frozenset({
    "RunPodSandbox", "StopPodSandbox", "RemovePodSandbox", "CreateContainer", "PostCreateContainer",
    "StartContainer", "PostStartContainer", "UpdateContainer", "PostUpdateContainer", "StopContainer",
    "RemoveContainer",
})
TARGET_FIELDS = frozenset({"registry", "path", "repo", "name", "tag"})
ENV_NRI_SOCKET = "NYDUS_TOP_NRI_SOCKET"  # environment variable: [nri] socket over every file
ENV_CONTAINERD_ADDRESS = "NYDUS_TOP_CONTAINERD_ADDRESS"  # environment variable: [convert] containerd_address
_ENVIRONMENT = {ENV_NRI_SOCKET: "nri_socket", ENV_CONTAINERD_ADDRESS: "containerd_address"}  # variable -> field
CONVERT_FORMATS = ("nydusify", "estargz", "zstdchunked")  # the first is the default
MAX_READY_AFTER = 86400  # [record] ready_after at most: a day
MAX_KEEP_RUNS = 1000  # keep_runs at most: an image's run directory stays listable at a glance
MAX_RANGES_WINDOW = 3600  # [ranges] window at most, seconds: the range tracer's cost never lasts a container's life
CONFIG_MAX_BYTES = 1 << 20  # a configuration file larger than this is refused unread


class ConfigError(Exception):
    """A configuration layer is unreadable or invalid; the message is one line."""


@dataclass(frozen=True, slots=True)
class Config:
    """The merged configuration. Build it with :func:`load_config` or :func:`default_config`."""

    persist_dir: Path  # optimizer key: result files go below it
    readable: bool  # optimizer key: human units in the .csv
    timeout: int  # optimizer key: seconds, 0 = none; > 0 adds .timeout<N>s to result names
    overwrite: bool  # optimizer key: replace existing result files
    events: tuple[str, ...]  # optimizer key, checked but not used: the recorder needs fixed events
    nydusify: str  # [convert] nydusify: binary name (PATH lookup) or path
    nydusify_args: tuple[str, ...]  # [convert] extra_args
    target_template: str  # [convert] target, e.g. "{repo}:{tag}-nydus"
    nri_socket: Path  # [nri] socket
    plugin_name: str  # [nri] plugin_name
    plugin_index: str  # [nri] plugin_index, two digits
    ranges: bool = True  # [ranges] enable: record byte ranges beside the file list (Linux 6.14+)
    granularity: int = 1 << 20  # [ranges] granularity: bytes ranges are rounded out to; 0 = exact
    ranges_window: int = 30  # [ranges] window: seconds after a trace's start that ranges are recorded
    ranges_on_attach: bool = False  # [ranges] attach: record ranges when attaching to a running container
    registry_push: bool = False  # [registry] push: the recorder pushes each saved list to its image's registry
    registry_plain_http: tuple[str, ...] = ()  # [registry] plain_http: registries (host[:port]) reached over HTTP
    max_pull_bytes: int = 1 << 30  # [registry] max_pull_bytes: bytes of lists one pull fetches, at most
    max_pull_lists: int = 100  # [registry] max_pull_lists: lists one pull fetches, at most
    metrics_address: str = ""  # [metrics] address: record serves /metrics, /healthz, /readyz here; "" = off
    sources: tuple[str, ...] = ()  # the layers that were read, in order
    notes: tuple[str, ...] = ()  # one-line remarks for the operator (ignored keys)
    keep_runs: int = 20  # recorded starts kept per image in the run store (0: none; see nydus_top.runs.store)
    origins: tuple[tuple[str, str], ...] = ()  # (field, the layer that set its value last)
    convert_format: str = "nydusify"  # [convert] format: nydusify, estargz or zstdchunked
    ctr_remote: str = "ctr-remote"  # [convert] ctr_remote: binary name (PATH lookup) or path
    containerd_address: Path = Path("/run/containerd/containerd.sock")  # [convert] containerd_address
    containerd_namespace: str = "k8s.io"  # [convert] containerd_namespace: where CRI keeps its images
    estargz_target: str = "{repo}:{tag}-esgz"  # [convert] estargz_target
    zstdchunked_target: str = "{repo}:{tag}-zstdchunked"  # [convert] zstdchunked_target
    ready_line: str = ""  # [record] ready_line: regex; start-up ends at the first matching output line
    ready_file: str = ""  # [record] ready_file: regex; start-up ends at the first matching file read
    ready_after: float = 0.0  # [record] ready_after: seconds; start-up ends this long after the start (0: off)

    def origin(self, name: str) -> str:
        """The layer that set field *name*: a file path, "command line (--flag)", ...; "" if unknown."""
        return dict(self.origins).get(name, "")

    def overridden(self, values: Mapping[str, Any], source: str) -> Config:
        """This configuration with *values* (field -> value) set by *source*, e.g. a command-line flag."""
        origins = {**dict(self.origins), **{name: source for name in values}}
        return replace(self, **values, origins=tuple(origins.items()))


class _Bad(Exception):
    pass


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"must be true or false, got {_kind(value)}")
    return value


def _seconds(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Bad(f"must be an integer >= 0, got {_shown(value)}")
    return value


def _window(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RANGES_WINDOW:
        raise _Bad(f"must be an integer from 1 to {MAX_RANGES_WINDOW} (seconds), got {_shown(value)}")
    return value


def _keep(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_KEEP_RUNS:
        raise _Bad(f"must be an integer from 0 to {MAX_KEEP_RUNS}, got {_shown(value)}")
    return value


def _positive(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Bad(f"must be an integer >= 1, got {_shown(value)}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value or "\0" in value:
        raise _Bad(f"must be a non-empty string, got {_shown(value)}")
    return value


def _abs_path(value: Any) -> Path:
    text = os.path.expanduser(_text(value))
    if not os.path.isabs(text):
        raise _Bad(f"must be an absolute path, got {value!r}")
    return Path(os.path.normpath(text))


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and "\0" not in v for v in value):
        raise _Bad(f"must be a list of strings, got {_shown(value)}")
    return tuple(value)


def _registry_hosts(value: Any) -> tuple[str, ...]:
    hosts = _strings(value)
    bad = [h for h in hosts if not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:]+\](:[0-9]{1,5})?", h)]
    if bad:
        raise _Bad(f"must list registries as host or host:port, got {bad[0]!r}")
    return hosts


def _events(value: Any) -> tuple[str, ...]:
    events = _strings(value)
    unknown = [e for e in events if e not in NRI_EVENTS]
    if unknown:
        raise _Bad(f"unknown NRI event {unknown[0]!r} (known: {', '.join(sorted(NRI_EVENTS))})")
    return events


def _template(value: Any) -> str:
    text = _text(value)
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError as err:
        raise _Bad(f"is not a valid template: {err}") from None
    unknown = sorted(fields - TARGET_FIELDS)
    if unknown:
        raise _Bad(f"unknown field {{{unknown[0]}}} (known: {', '.join(sorted(TARGET_FIELDS))})")
    return text


def _regex(value: Any) -> str:
    if not isinstance(value, str) or "\0" in value:
        raise _Bad(f"must be a string (a regular expression; \"\" for none), got {_shown(value)}")
    try:
        re.compile(value)
    except re.error as err:
        raise _Bad(f"is not a valid regular expression: {err}") from None
    return value


def _ready_after(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_READY_AFTER:
        raise _Bad(f"must be a number of seconds from 0 to {MAX_READY_AFTER}, got {_shown(value)}")
    return float(value)


def _format(value: Any) -> str:
    if value not in CONVERT_FORMATS:
        raise _Bad(f"must be one of {', '.join(CONVERT_FORMATS)}, got {_shown(value)}")
    return str(value)


_ADDRESS_RE = re.compile(r"(?:(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]))?:(?P<port>[0-9]{1,5})")


def parse_address(address: str) -> tuple[str | None, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (every interface): (host or None, port). Raises ValueError."""
    match = _ADDRESS_RE.fullmatch(address)
    if match is None or not 0 <= int(match["port"]) < 65536:  # 0: any free port
        raise ValueError(f"{address!r} is not host:port or :port")
    host = match["host"]
    return (host.strip("[]") if host else None), int(match["port"])


def _address(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad(f"must be a string like \"127.0.0.1:9477\" or \":9477\", got {_shown(value)}")
    if value:
        try:
            parse_address(value)
        except ValueError as err:
            raise _Bad(f"must be host:port or :port, got {_shown(value)}") from err
    return value


def _plugin_name(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-zA-Z0-9_.+-]+", value):
        raise _Bad(f"must be letters, digits and _.+- (as NRI requires), got {_shown(value)}")
    return value


def _index(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{2}", value):
        raise _Bad(f"must be a two-digit string like \"90\", got {_shown(value)}")
    return value


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else _kind(value)


# TOML key -> (Config field, validator)
_SCHEMA: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "persist_dir": ("persist_dir", _abs_path),
    "readable": ("readable", _bool),
    "timeout": ("timeout", _seconds),
    "overwrite": ("overwrite", _bool),
    "events": ("events", _events),
    "keep_runs": ("keep_runs", _keep),
    "convert.nydusify": ("nydusify", _text),
    "convert.extra_args": ("nydusify_args", _strings),
    "convert.target": ("target_template", _template),
    "convert.format": ("convert_format", _format),
    "convert.ctr_remote": ("ctr_remote", _text),
    "convert.containerd_address": ("containerd_address", _abs_path),
    "convert.containerd_namespace": ("containerd_namespace", _plugin_name),
    "convert.estargz_target": ("estargz_target", _template),
    "convert.zstdchunked_target": ("zstdchunked_target", _template),
    "nri.socket": ("nri_socket", _abs_path),
    "nri.plugin_name": ("plugin_name", _plugin_name),
    "nri.plugin_index": ("plugin_index", _index),
    "ranges.enable": ("ranges", _bool),
    "ranges.granularity": ("granularity", _seconds),  # an integer >= 0, like a timeout
    "ranges.window": ("ranges_window", _window),
    "ranges.attach": ("ranges_on_attach", _bool),
    "record.ready_line": ("ready_line", _regex),
    "record.ready_file": ("ready_file", _regex),
    "record.ready_after": ("ready_after", _ready_after),
    "registry.push": ("registry_push", _bool),
    "registry.plain_http": ("registry_plain_http", _registry_hosts),
    "registry.max_pull_bytes": ("max_pull_bytes", _positive),
    "registry.max_pull_lists": ("max_pull_lists", _positive),
    "metrics.address": ("metrics_address", _address),
}
_TABLES = {key.split(".")[0] for key in _SCHEMA if "." in key}
TOML_KEYS: dict[str, str] = {name: key for key, (name, _) in _SCHEMA.items()}  # Config field -> TOML key
_IGNORED = {"server_path": "server_path is ignored: nydus-top traces with its own tracer"}


def parse_layer(text: str, source: str) -> tuple[dict[str, Any], list[str]]:
    """Validate one TOML layer: (Config field -> value, notes). Raises ConfigError."""
    try:
        data = tomli.loads(text)
    except tomli.TOMLDecodeError as err:
        raise ConfigError(f"{source}: invalid TOML: {err}") from None
    values: dict[str, Any] = {}
    notes: list[str] = []
    flat: list[tuple[str, Any]] = []
    for key, value in data.items():
        if key in _TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: key '{key}' must be a table, got {_kind(value)}")
            flat.extend((f"{key}.{sub}", v) for sub, v in value.items())
        else:
            flat.append((key, value))
    for key, value in flat:
        if key in _IGNORED:
            notes.append(f"{source}: {_IGNORED[key]}")
            continue
        if key not in _SCHEMA:
            raise ConfigError(f"{source}: unknown key '{key}'")
        name, check = _SCHEMA[key]
        try:
            values[name] = check(value)
        except _Bad as err:
            raise ConfigError(f"{source}: key '{key}' {err}") from None
    return values, notes


def _read(path: Path) -> str:
    """A configuration file's text: a trusted regular file (see nydus_top.fs.trust), read without
    blocking. Raises ReadMissing when it does not exist, ConfigError (one line) otherwise."""
    try:
        data = read_regular(path, limit=CONFIG_MAX_BYTES, trusted=True)
    except ReadMissing:
        raise
    except ReadError as err:
        raise ConfigError(str(err)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def check_persist_dir(path: Path, source: str) -> None:
    """Raise ConfigError (one line) unless *path*, where root writes, is trusted: owned by root
    (or us) and writable by no one else, and so is every directory above it (see
    nydus_top.fs.trust). *source* names who set it."""
    try:
        trust.check_dir(path)
    except trust.UntrustedError as err:
        raise ConfigError(f"persist_dir {path} (from {source or 'the defaults'}) refused: {err}") from None


def user_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/nydus-top/config.toml``, or under ``~/.config``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return Path(base, "nydus-top", "config.toml")


def _packaged() -> tuple[str, str]:
    resource = resources.files("nydus_top.conf").joinpath("nydus-top.toml")
    return str(resource), resource.read_text(encoding="utf-8")


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    system_path: Path = SYSTEM_CONFIG,
    extra: Sequence[tuple[str, str]] = (),
) -> Config:
    """Merge the packaged defaults, *system_path*, the user's file, *path* and *extra* layers.

    *path* is ``--config`` (must exist); *extra* holds (source name, TOML text) pairs applied
    last, e.g. ``("NRI Configure", text)``. Raises ConfigError (one line: file, key, problem).
    """
    layers = [_packaged()]
    for optional in (system_path, user_config_path(environ)):
        try:
            layers.append((str(optional), _read(optional)))
        except ReadMissing:
            continue
    if path is not None:
        explicit = Path(path)
        try:
            layers.append((str(explicit), _read(explicit)))
        except ReadMissing:
            raise ConfigError(f"{explicit}: no such file") from None
    layers.extend(extra)
    config = _with_environment(_merge(layers), os.environ if environ is None else environ)
    check_persist_dir(config.persist_dir, config.origin("persist_dir"))
    return config


def _with_environment(config: Config, env: Mapping[str, str]) -> Config:
    """*config* with ``$NYDUS_TOP_NRI_SOCKET`` and ``$NYDUS_TOP_CONTAINERD_ADDRESS`` (those set and
    not empty) as its NRI socket and containerd address."""
    for variable, field in _ENVIRONMENT.items():
        text = env.get(variable)
        if not text:
            continue
        try:
            socket = _abs_path(text)
        except _Bad as err:
            raise ConfigError(f"${variable} {err}") from None
        config = config.overridden({field: socket}, f"${variable}")
    return config


def _merge(layers: Sequence[tuple[str, str]]) -> Config:
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    notes: list[str] = []
    for source, text in layers:
        values, layer_notes = parse_layer(text, source)
        merged.update(values)
        origins.update((name, source) for name in values)
        notes.extend(layer_notes)
    missing = sorted(name for name, _ in _SCHEMA.values() if name not in merged)
    if missing:
        raise ConfigError(f"{layers[0][0]}: packaged defaults lack '{missing[0]}'")
    return Config(**merged, sources=tuple(source for source, _ in layers), notes=tuple(notes),
                  origins=tuple(origins.items()))


def default_config() -> Config:
    """The packaged defaults alone (no system or user files)."""
    return _merge([_packaged()])
