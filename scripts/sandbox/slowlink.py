"""A registry behind a slow link: Debian's docker-registry in a network namespace of our own.

``SlowLink(directory, link).up()`` creates a network namespace and a veth pair into it, gives the
pair a /30 of link-local addresses (169.254.0.0/16, never 169.254.169.0/24, and only a /30 that no
address or route of the host overlaps), shapes both ends with ``tbf`` to the link's rate, and
starts, inside the namespace, the registry on the namespace's loopback and ``delayproxy.py`` on the
namespace's veth address in front of it (the one-way delay: this kernel has no netem). Nothing is
routed but that /30. ``down()`` stops both processes by pid and deletes the namespace and the veth
pair by the names it recorded; the registry's storage stays in ``directory/data``.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REGISTRY = "/usr/bin/docker-registry"
PORT = 5000
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_PROXY = Path(__file__).with_name("delayproxy.py")
_LINK = re.compile(r"^(\d+(?:\.\d+)?)(kbit|mbit|gbit),(\d+(?:\.\d+)?)ms$")
_LINK_LOCAL = ipaddress.ip_network("169.254.0.0/16")
_AVOID = ipaddress.ip_network("169.254.169.0/24")  # cloud metadata services live there


class LinkError(RuntimeError):
    """The slow link could not be set up or removed; one line says why."""


@dataclass(frozen=True)
class Link:
    """A link profile: a rate for ``tbf`` and a one-way delay, e.g. ``Link.parse("100mbit,20ms")``."""

    rate: str
    delay_ms: float

    @classmethod
    def parse(cls, text: str) -> Link:
        match = _LINK.match(text.strip().lower())
        if not match or float(match.group(1)) <= 0:
            raise LinkError(f"link {text!r}: expected RATE,DELAY like 100mbit,20ms (kbit, mbit or gbit; ms)")
        return cls(f"{match.group(1)}{match.group(2)}", float(match.group(3)))

    def __str__(self) -> str:
        return f"{self.rate},{self.delay_ms:g}ms"

    @property
    def rate_bits(self) -> float:
        match = re.match(r"^([\d.]+)(kbit|mbit|gbit)$", self.rate)
        assert match
        return float(match.group(1)) * {"kbit": 1e3, "mbit": 1e6, "gbit": 1e9}[match.group(2)]


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise LinkError(f"{' '.join(command)}: {done.stderr.strip()}")
    return done


def _tc(*args: str, netns: str | None = None) -> None:
    command = ["tc", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise LinkError(f"{' '.join(command)}: {done.stderr.strip()}")


def _host_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host has an address or a route in."""
    found = []
    for args in (("-j", "-4", "addr"), ("-j", "-4", "route", "show", "table", "all")):
        for entry in json.loads(_ip(*args).stdout or "[]"):
            for addr in entry.get("addr_info", []):
                found.append(ipaddress.ip_network(f"{addr['local']}/{addr['prefixlen']}", strict=False))
            dst = entry.get("dst")
            if dst and dst != "default":
                with contextlib.suppress(ValueError):
                    found.append(ipaddress.ip_network(dst, strict=False))
    return [n for n in found if isinstance(n, ipaddress.IPv4Network)]


def choose_subnet(seed: str, taken: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """A link-local /30 that overlaps none of ``taken`` nor 169.254.169.0/24, starting where ``seed`` hashes."""
    subnets = 1 << 14  # /30s in a /16
    start = int(hashlib.sha256(seed.encode()).hexdigest(), 16) % subnets
    for i in range(subnets):
        net = ipaddress.ip_network(f"{_LINK_LOCAL.network_address + 4 * ((start + i) % subnets)}/30")
        if net.network_address.packed[2] in (0, 255) or net.overlaps(_AVOID):
            continue
        if not any(net.overlaps(t) for t in taken if t.prefixlen > 0):
            return net
    raise LinkError("no free link-local /30 left")


class SlowLink:
    """The namespace, veth pair, shaping, registry and delay proxy of one sandbox node."""

    def __init__(self, directory: Path, link: Link | None = None) -> None:
        self.dir = directory
        self.link = link
        self.state_file = directory / "link.json"
        tag = hashlib.sha256(str(directory).encode()).hexdigest()[:10]
        self.netns = f"nydus-top-{tag}"
        self.host_if, self.ns_if = f"nt{tag}h", f"nt{tag}n"  # at most 15 bytes (IFNAMSIZ)

    def state(self) -> dict[str, object]:
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    @property
    def host(self) -> str:
        """``ADDRESS:PORT`` of the registry as the host reaches it (through the link)."""
        address = self.state().get("registry", "")
        if not isinstance(address, str) or not address:
            raise LinkError(f"no slow link is up in {self.dir}")
        return address

    def up(self) -> str:
        """Create everything and start the registry; returns its ``ADDRESS:PORT``."""
        if self.link is None:
            raise LinkError("no link profile given")
        self.down()
        self.dir.mkdir(parents=True, exist_ok=True)
        net = choose_subnet(self.netns, _host_networks())
        host_addr, ns_addr = (f"{a}/30" for a in list(net.hosts())[:2])
        registry = f"{net.network_address + 2}:{PORT}"
        self._save({"netns": self.netns, "veth": self.host_if, "subnet": str(net), "registry": registry,
                    "link": str(self.link), "pids": []})
        try:
            _ip("netns", "add", self.netns)
            _ip("link", "set", "lo", "up", netns=self.netns)
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if, "netns", self.netns)
            _ip("addr", "add", host_addr, "dev", self.host_if)
            _ip("addr", "add", ns_addr, "dev", self.ns_if, netns=self.netns)
            _ip("link", "set", self.host_if, "up")
            _ip("link", "set", self.ns_if, "up", netns=self.netns)
            self._shape()
            self._start_registry()
            self._start_proxy(registry)
        except BaseException:
            self.down()
            raise
        return registry

    def _shape(self) -> None:
        assert self.link is not None
        burst = max(int(self.link.rate_bits / 8 / 100), 64 * 1024)  # 10 ms of the rate, at least 64 KiB
        for dev, netns in ((self.host_if, None), (self.ns_if, self.netns)):
            _tc("qdisc", "add", "dev", dev, "root", "tbf", "rate", self.link.rate, "burst", str(burst),
                "latency", "100ms", netns=netns)

    def _spawn(self, name: str, argv: list[str], ready: str) -> None:
        """Start ``argv`` inside the namespace in a session of its own, its output to ``name.log``; wait
        until that log shows ``ready`` (it outlives this process, so it writes to a file, not a pipe)."""
        log_path = self.dir / f"{name}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(["ip", "netns", "exec", self.netns, *argv], stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        state = self.state()
        pids = state.get("pids")
        started = [process.pid, _start_time(process.pid)]
        self._save({**state, "pids": [*(pids if isinstance(pids, list) else []), started]})
        deadline = time.monotonic() + START_TIMEOUT
        while ready not in (text := log_path.read_text(errors="replace")):
            if process.poll() is not None or time.monotonic() > deadline:
                lines = text.strip().splitlines() or ["(no output)"]
                raise LinkError(f"{name} not ready (exit status {process.poll()}): {lines[-1]} (log: {log_path})")
            time.sleep(0.02)

    def _start_registry(self) -> None:
        config = self.dir / "registry.yml"
        config.write_text(f"version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n"
                          f"    rootdirectory: {self.dir}/data\n  delete:\n    enabled: true\n"
                          f"http:\n  addr: 127.0.0.1:{PORT}\n  secret: nydus-top-slowlink\n")
        self._spawn("registry", [REGISTRY, "serve", str(config)], f"listening on 127.0.0.1:{PORT}")

    def _start_proxy(self, registry: str) -> None:
        assert self.link is not None
        delay = f"{self.link.delay_ms / 1000:g}"
        argv = [sys.executable, "-I", str(_PROXY), registry, f"127.0.0.1:{PORT}", delay]
        self._spawn("delayproxy", argv, "listening")

    def _save(self, state: dict[str, object]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.state_file)

    def pids(self) -> list[int]:
        """Pids of this link's processes: every process in its namespace, and those it started (by pid and
        start time, so a reused pid is never taken for ours) wherever they are now."""
        recorded = self.state().get("pids")
        found = {entry[0] for entry in (recorded if isinstance(recorded, list) else [])
                 if isinstance(entry, list) and len(entry) == 2 and all(isinstance(v, int) for v in entry)
                 and _start_time(entry[0]) == entry[1]}
        if Path(f"/run/netns/{self.netns}").exists():
            found.update(int(p) for p in _ip("netns", "pids", self.netns, check=False).stdout.split() if p.isdigit())
        return sorted(p for p in found if not _zombie(p))

    def exists(self) -> dict[str, bool]:
        """Which of this link's parts exist now: namespace, veth, processes."""
        return {
            "netns": Path(f"/run/netns/{self.netns}").exists(),
            "veth": _ip("link", "show", self.host_if, check=False).returncode == 0,
            "processes": bool(self.pids()),
        }

    def down(self) -> None:
        """Stop the registry and the proxy, delete the veth pair and the namespace (each if present)."""
        pids_seen: set[int] = set()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self.pids()
            pids_seen.update(pids)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + STOP_TIMEOUT
            while (pids := [p for p in pids if not _zombie(p)]) and time.monotonic() < deadline:
                time.sleep(0.02)
            if not pids:
                break
        for pid in pids_seen:  # reap the ones that are our own children (a long-lived caller's)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        if _ip("link", "show", self.host_if, check=False).returncode == 0:
            _ip("link", "del", self.host_if)
        if Path(f"/run/netns/{self.netns}").exists():
            _ip("netns", "del", self.netns)
        self.state_file.unlink(missing_ok=True)


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat); None if it is gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True

