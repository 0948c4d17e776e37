"""Fetch and unpack Debian packages into a shared cache, without touching the system's apt state.

A private apt configuration (its own sources file, lists and cache directories) points at the
mirror the machine already uses, read from its apt sources; packages are fetched with
``apt-get download`` and unpacked with ``dpkg -x``. The cache is shared by every sandbox on the
machine and guarded by a lock file, so concurrent users neither re-download nor collide.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE = Path("/var/cache/nydus-top/sandbox")
SUITES = ("bookworm", "trixie", "forky")
_DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
_SOURCES_LIST = Path("/etc/apt/sources.list")
_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
LOCK_TIMEOUT = 600.0
APT_TIMEOUT = 300.0


class AptError(RuntimeError):
    """A package could not be located, downloaded or unpacked."""


@dataclass(frozen=True)
class Mirror:
    """The machine's Debian mirror: where to download from and which keyring signs it."""

    uri: str
    signed_by: str


def cache_dir() -> Path:
    """The shared package cache (``$NYDUS_TOP_SANDBOX_CACHE`` or ``/var/cache/nydus-top/sandbox``)."""
    return Path(os.environ.get("NYDUS_TOP_SANDBOX_CACHE") or DEFAULT_CACHE)


def parse_deb822_mirror(text: str) -> Mirror | None:
    """The first non-security Debian ``URIs`` of a deb822 sources file, with its ``Signed-By``."""
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        suites = fields.get("suites", "").split()
        if "deb" not in fields.get("types", "").split() or not fields.get("uris"):
            continue
        if any(s.endswith("-security") for s in suites):
            continue
        return Mirror(fields["uris"].split()[0], fields.get("signed-by") or _KEYRING)
    return None


def parse_sources_list_mirror(text: str) -> Mirror | None:
    """The first non-security ``deb`` URI of a one-line-style ``sources.list``."""
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb" and not words[2].endswith("-security"):
            return Mirror(words[1], _KEYRING)
    return None


def machine_mirror() -> Mirror:
    """The Debian mirror configured on this machine (never a hard-coded host)."""
    if _DEBIAN_SOURCES.exists():
        mirror = parse_deb822_mirror(_DEBIAN_SOURCES.read_text())
        if mirror:
            return mirror
    if _SOURCES_LIST.exists():
        mirror = parse_sources_list_mirror(_SOURCES_LIST.read_text())
        if mirror:
            return mirror
    raise AptError(f"no Debian mirror found in {_DEBIAN_SOURCES} or {_SOURCES_LIST}")


@contextmanager
def file_lock(path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``, waiting at most ``timeout`` seconds for it.

    The holder writes its pid into the file, so that a waiter that gives up can say who holds it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    lock.seek(0)
                    holder = lock.read().strip()
                    raise TimeoutError(f"{path} still locked after {timeout:.0f}s by pid {holder}") from None
                time.sleep(0.05)
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield


def cache_lock(cache: Path) -> contextlib.AbstractContextManager[None]:
    """Hold the cache's lock (another process may be downloading for a while)."""
    return file_lock(cache / "lock", LOCK_TIMEOUT)


class AptCache:
    """Packages from the machine's mirror, downloaded and unpacked once into ``cache``."""

    def __init__(self, cache: Path | None = None) -> None:
        self.cache = cache or cache_dir()
        self._state = self.cache / "apt"

    def _options(self) -> list[str]:
        return [
            "-o", f"Dir::Etc::sourcelist={self._state / 'sources.list'}",
            "-o", "Dir::Etc::sourceparts=/dev/null",
            "-o", f"Dir::State::Lists={self._state / 'lists'}",
            "-o", f"Dir::Cache={self._state / 'cache'}",
            "-o", "Dir::Etc::preferences=/dev/null",
            "-o", "Dir::Etc::preferencesparts=/dev/null",
            "-o", "APT::Sandbox::User=root",
            "-o", "Acquire::Retries=3",
        ]

    def _apt(self, tool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run([tool, "-q", *self._options(), *args], cwd=cwd, capture_output=True, text=True,
                                  timeout=APT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AptError(f"{tool} {args[0]} did not finish within {APT_TIMEOUT:.0f}s") from None

    def _update(self) -> None:
        mirror = machine_mirror()
        (self._state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (self._state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        (self._state / "sources.list").write_text("".join(
            f"deb [signed-by={mirror.signed_by}] {mirror.uri} {suite} main\n" for suite in SUITES))
        done = self._apt("apt-get", "update")
        if done.returncode != 0:
            raise AptError(f"apt-get update (private, {mirror.uri}) failed: {_last_line(done.stderr)}")

    def _version(self, package: str, suite: str) -> str | None:
        shown = self._apt("apt-cache", "show", f"{package}/{suite}")
        match = re.search(r"^Version: (\S+)$", shown.stdout, re.M)
        return match.group(1) if shown.returncode == 0 and match else None

    def unpacked(self, package: str, suite: str) -> Path:
        """The root of ``package`` from ``suite`` unpacked with ``dpkg -x`` (fetched if needed)."""
        if suite not in SUITES:
            raise AptError(f"unsupported suite {suite!r} (known: {', '.join(SUITES)})")
        with cache_lock(self.cache):
            current = self.cache / "pkgs" / f"{package}_{suite}"
            if current.is_symlink() and current.resolve().is_dir():
                return current.resolve()
            if not (self._state / "lists").is_dir() or self._version(package, suite) is None:
                self._update()
            version = self._version(package, suite)
            if version is None:
                raise AptError(f"package {package} not found in {suite}")
            return self._unpack(package, suite, version, current)

    def _unpack(self, package: str, suite: str, version: str, current: Path) -> Path:
        pkgs = current.parent
        pkgs.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=pkgs, prefix=".fetch-") as tmp:
            done = self._apt("apt-get", "download", f"{package}={version}", cwd=Path(tmp))
            debs = list(Path(tmp).glob("*.deb"))
            if done.returncode != 0 or len(debs) != 1:
                raise AptError(f"apt-get download {package}={version} failed: {_last_line(done.stderr)}")
            root = Path(tmp) / "root"
            subprocess.run(["dpkg", "-x", str(debs[0]), str(root)], check=True, capture_output=True)
            final = pkgs / f"{package}_{version.replace(':', '%')}"
            if final.exists():
                shutil.rmtree(final)
            root.rename(final)
        link = pkgs / f".{current.name}.new"
        link.unlink(missing_ok=True)
        link.symlink_to(final.name)
        link.rename(current)
        return final


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"
