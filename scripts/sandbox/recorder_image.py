"""The nydus-top container image, built without Docker or a registry: an OCI archive.

Its base is Debian's Python 3.11 as installed on this machine (``scripts/setup`` installs it):
the files of ``python3.11-minimal`` and ``libpython3.11-stdlib`` and of every package they depend
on, as dpkg lists them (documentation, manuals and translations left out). On top, nydus-top
with its runtime dependencies, installed by pip from this checkout into Python's
``/usr/local/lib/python3.11/dist-packages``. The entry point is ``python3.11 -I -m nydus_top``,
so the DaemonSet's ``args`` (``record --config ...``) pick the command.

Usage: ``scripts/build-image [--output ARCHIVE] [--ref REF]``; the archive imports with
``ctr -n k8s.io images import`` on a node, or goes to a registry with any OCI tool.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from sandbox import images

ROOT = Path(__file__).resolve().parents[2]
BASE_PACKAGES = ("python3.11-minimal", "libpython3.11-stdlib")
SITE = "/usr/local/lib/python3.11/dist-packages"
PYTHON = "/usr/bin/python3.11"
DEFAULT_REF = "nydus-top.local/nydus-top:0.1.0"
_LEFT_OUT = ("/usr/share/doc/", "/usr/share/man/", "/usr/share/locale/", "/usr/share/lintian/",
             "/usr/share/bug/", "/usr/share/info/")
_DEPENDS = re.compile(r"([a-z0-9][a-z0-9+.-]*)(?::[a-z0-9]+)?")


class ImageBuildError(RuntimeError):
    pass


def _query(package: str, fmt: str) -> str:
    done = subprocess.run(["dpkg-query", "-W", "-f", fmt, package], capture_output=True, text=True)
    if done.returncode != 0:
        raise ImageBuildError(f"Debian package {package} is not installed (scripts/setup installs it)")
    return done.stdout


def _installed(package: str) -> bool:
    done = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Status}", package], capture_output=True, text=True)
    return done.returncode == 0 and done.stdout.strip() == "installed"


def package_closure(roots: Iterable[str]) -> list[str]:
    """*roots* and every installed package they (pre-)depend on, first alternative installed."""
    todo, seen = list(roots), set()
    while todo:
        package = todo.pop()
        if package in seen:
            continue
        seen.add(package)
        depends = _query(package, "${Pre-Depends}, ${Depends}")
        for clause in filter(None, (c.strip() for c in depends.split(","))):
            for alternative in clause.split("|"):
                match = _DEPENDS.match(alternative.strip())
                if match and _installed(match.group(1)):
                    todo.append(match.group(1))
                    break
    return sorted(seen)


def package_files(packages: Iterable[str]) -> dict[str, images.Content]:
    """The regular files and symlinks the packages installed, by path."""
    files: dict[str, images.Content] = {}
    for package in packages:
        listed = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout
        for path in listed.splitlines():
            if not path.startswith("/") or path.startswith(_LEFT_OUT) or path in files:
                continue
            if os.path.islink(path):
                files[path] = images.Symlink(os.readlink(path))
            elif os.path.isfile(path):
                files[path] = Path(path)
    return files


def install_nydus_top(stage: Path) -> dict[str, images.Content]:
    """nydus-top and its runtime dependencies, installed by pip into *stage*, as image files under SITE."""
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           "--no-warn-script-location", "--target", str(stage), str(ROOT)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise ImageBuildError(f"pip could not install nydus-top: {done.stderr.strip().splitlines()[-1:]}")
    files: dict[str, images.Content] = {}
    for directory, _, names in os.walk(stage):
        for name in names:
            path = Path(directory) / name
            rel = path.relative_to(stage).as_posix()
            if rel.startswith("bin/"):
                continue  # console scripts point at the build's interpreter
            files[f"{SITE}/{rel}"] = images.Symlink(os.readlink(path)) if path.is_symlink() else path
    return files


# Debian architecture -> OCI platform architecture, where the names differ.
_OCI_ARCH = {"i386": "386", "armhf": "arm", "armel": "arm", "ppc64el": "ppc64le"}


def host_platform() -> tuple[str, str]:
    """(OCI architecture, glibc version) of this host's Debian packages: what the image is made of."""
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    return _OCI_ARCH.get(arch, arch), _query("libc6", "${Version}")


def build(archive: Path, ref: str = DEFAULT_REF) -> str:
    """Write the image as an OCI archive; returns its manifest digest. Its platform is this
    host's architecture (its binaries are), and it carries this host's glibc (libc6), so it runs
    on nodes of that architecture whatever their own glibc is."""
    packages = package_closure(BASE_PACKAGES)
    if "libc6" not in packages:  # the native tracer and Python need the glibc they were built with
        raise ImageBuildError(f"libc6 is not among the packages {', '.join(BASE_PACKAGES)} depend on")
    files = package_files(packages)
    if PYTHON not in files:
        raise ImageBuildError(f"{PYTHON} is not among the files of {', '.join(BASE_PACKAGES)}")
    with tempfile.TemporaryDirectory(prefix="nydus-top-image-") as stage:
        files |= install_nydus_top(Path(stage))
        files["/tmp/.keep"] = b""
        files["/etc/nydus-top/.keep"] = b""
        images.build_image(ref, files, [PYTHON, "-I", "-m", "nydus_top"], archive,
                           env=("PATH=/usr/local/bin:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE=1"),
                           architecture=host_platform()[0])
    return images.archive_digest(archive)


def source_digest() -> str:
    """A digest of what goes into the image from this checkout (to reuse a built archive)."""
    h = hashlib.sha256()
    for top in ("pyproject.toml", "setup.py", "native", "nydus_top", "screens", "conf"):
        for path in sorted((ROOT / top).rglob("*")) if (ROOT / top).is_dir() else [ROOT / top]:
            generated = path.name.endswith((".so", "_pb2.py", "_pb2.pyi"))
            if path.is_file() and "__pycache__" not in path.parts and not generated:
                h.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


CACHE_KEEP = 3  # cached archives kept (several checkouts share the cache)


def cached_archive(ref: str = DEFAULT_REF) -> Path:
    """The image of this checkout as an archive in the sandbox cache, built only when the sources changed."""
    from sandbox.aptfetch import cache_dir, file_lock

    directory = cache_dir() / "images"
    directory.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{source_digest()} {ref}".encode()).hexdigest()[:16]
    archive = directory / f"nydus-top-{key}.tar"
    with file_lock(directory / ".nydus-top-image.lock", 600):
        if not archive.exists():
            partial = archive.with_suffix(".partial")
            build(partial, ref)
            partial.rename(archive)
            built = sorted(directory.glob("nydus-top-*.tar"), key=lambda p: p.stat().st_mtime, reverse=True)
            for stale in built[CACHE_KEEP:]:
                stale.unlink(missing_ok=True)
        else:
            os.utime(archive)  # the newest used stay
    return archive
