"""Deterministic node and trace data for the TUI tests and benchmarks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from nydus_top.config import TOML_KEYS, Config
from nydus_top.lists.ranges import RangeBook
from nydus_top.model.node import Container, ContainerState, NodeModel, Pod
from nydus_top.model.records import Access, Overflow
from testkit.replay import ReplayBackend

NOW = 1_700_000_000.0  # the fixed clock: every age is relative to this


def make_config(persist_dir: str | Path = "/var/lib/nydus-top-test/results", **changes: object) -> Config:
    """A fixed effective config (independent of the machine's /etc and ~/.config)."""
    config = Config(
        persist_dir=Path(persist_dir), readable=False, timeout=0, overwrite=False, events=("StartContainer",),
        nydusify="nydusify", nydusify_args=(), target_template="{repo}:{tag}-nydus",
        nri_socket=Path("/var/run/nri/nri.sock"), plugin_name="nydus-top", plugin_index="90",
        sources=("<package>/nydus_top/conf/nydus-top.toml", "/etc/nydus-top/config.toml"),
        notes=("/etc/nydus-top/config.toml: server_path is ignored: nydus-top traces with its own tracer",),
        keep_runs=0,  # tests that keep runs ask for it with a persist_dir of their own
    )
    origins = {name: config.sources[0] for name in TOML_KEYS} | {"persist_dir": config.sources[1]}
    return replace(config, origins=tuple(origins.items())).overridden(changes, "command line (test)")


PODS = [
    Pod("p-web", "web-7d9f", "default", "u1"),
    Pod("p-db", "db-0", "storage", "u2"),
    Pod("p-job", "batch-x1", "jobs", "u3"),
]
CONTAINERS = [
    Container("c-nginx", "p-web", "nginx", "docker.io/library/nginx:1.25", ContainerState.RUNNING, 4242,
              NOW - 400, NOW - 390),
    Container("c-side", "p-web", "sidecar", "registry.local:5000/tools/envoy:v1", ContainerState.RUNNING, 4300,
              NOW - 400, NOW - 388),
    Container("c-pg", "p-db", "postgres", "docker.io/library/postgres:16", ContainerState.RUNNING, 5120,
              NOW - 7300, NOW - 7200),
    Container("c-job", "p-job", "worker", "docker.io/acme/worker:2.1", ContainerState.CREATED, 0, NOW - 30, None),
]

STARTUP = [
    ("/usr/sbin/nginx", 1_200_000, "exec"),
    ("/lib/x86_64-linux-gnu/libc.so.6", 1_922_136, "open"),
    ("/lib/x86_64-linux-gnu/libpcre2-8.so.0", 629_384, "open"),
    ("/lib/x86_64-linux-gnu/libssl.so.3", 696_008, "open"),
    ("/lib/x86_64-linux-gnu/libcrypto.so.3", 4_709_656, "read"),
    ("/etc/nginx/nginx.conf", 648, "read"),
    ("/etc/nginx/mime.types", 5_349, "read"),
    ("/etc/nginx/conf.d/default.conf", 1_093, "read"),
    ("/var/cache/nginx/client_temp/0001", 0, "open"),
    ("/usr/share/nginx/html/index.html", 615, "read"),
    ("/etc/passwd", 1_204, "read"),
    ("/etc/group", 512, "read"),
    ("/run/nginx.pid", 5, "open"),
    ("/etc/ssl/openssl.cnf", 12_411, "read"),
    ("/usr/lib/ssl/cert.pem", 221_470, "read"),
    ("/etc/localtime", 118, "read"),
]
RUNTIME_CREATED = {"/var/cache/nginx/client_temp/0001", "/run/nginx.pid"}


def startup_trace() -> list[Access | Overflow]:
    records: list[Access | Overflow] = []
    for seq, (path, size, kind) in enumerate(STARTUP):
        pid, comm = (4242, "nginx") if seq < 10 else (4250, "nginx-worker")
        records.append(Access(seq, path, size, 1_500 + seq * 137_000, kind, pid, comm))
    records.insert(12, Overflow(1_500 + 11 * 137_000))
    return records


def startup_ranges() -> RangeBook:
    """What the range tracer saw of STARTUP: binaries mapped (whole), config read whole, a few
    blocks of the big library and of the certificate bundle; the rest without data."""
    book = RangeBook()
    for path in ("/usr/sbin/nginx", "/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libssl.so.3",
                 "/etc/nginx/nginx.conf", "/etc/nginx/mime.types", "/etc/passwd"):
        book.mark_whole(path)
    book.add("/lib/x86_64-linux-gnu/libcrypto.so.3", 0, 4096)
    book.add("/lib/x86_64-linux-gnu/libcrypto.so.3", 2_400_000, 2_400_000 + 65_536)
    book.add("/usr/lib/ssl/cert.pem", 0, 110_000)
    return book


def synthetic(n: int, start: int = 0) -> list[Access]:
    """n distinct accesses with realistic-looking paths, numbered from ``start``."""
    return [Access(i, f"/usr/lib/pkg{i % 97}/mod{i // 97}/file{i}.so", 4096 + i, i * 50,
                   ("exec", "open", "read")[i % 3], 1000 + i % 7, f"proc{i % 7}") for i in range(start, start + n)]


def make_backend(persist_dir: str | Path | None = None, **config: object) -> ReplayBackend:
    node = NodeModel()
    node.replace_all(PODS, CONTAINERS)
    cfg = make_config(persist_dir, **config) if persist_dir else make_config(**config)
    return ReplayBackend(node, cfg, recordings={"c-nginx": startup_trace()},
                         created={"c-nginx": set(RUNTIME_CREATED)}, ranges={"c-nginx": startup_ranges()}, clock=NOW)
