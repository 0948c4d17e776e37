"""A list pushed to the registry is read without following symlinks: a file planted beside a saved
list as a symlink (its range list, say) never sends another file's content to a registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from nydus_top.registry import artifacts as registry


def test_a_symlink_beside_a_list_is_not_pushed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"root:hash\n")
    listing = tmp_path / "app:1"
    listing.write_bytes(b"/bin/app\n")
    Path(f"{listing}.csv").write_bytes(b"path,size,elapsed\n/bin/app,1,1\n")
    Path(f"{listing}.ranges.json").symlink_to(secret)
    with pytest.raises(registry.RegistryError) as err:
        registry.list_files(listing)
    assert str(err.value) == f"{listing}.ranges.json is a symlink: not pushed"


def test_the_files_of_a_list_are_read(tmp_path: Path) -> None:
    listing = tmp_path / "app:1"
    listing.write_bytes(b"/bin/app\n")
    assert registry.list_files(listing) == {"": b"/bin/app\n"}


def test_a_fifo_beside_a_list_does_not_hang_the_push(tmp_path: Path) -> None:
    import os

    listing = tmp_path / "app:1"
    listing.write_bytes(b"/bin/app\n")
    os.mkfifo(f"{listing}.csv")
    with pytest.raises(registry.RegistryError) as err:
        registry.list_files(listing)
    assert str(err.value) == f"{listing}.csv: not a regular file, not pushed"
