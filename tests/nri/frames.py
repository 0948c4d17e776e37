"""Access to the byte-exact NRI traffic captured from containerd 1.7.24 in shared/nri-frames/."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


def frames_dir() -> Path:
    """shared/nri-frames/ beside the checkout (CI: a copy of shared/ next to the clone)."""
    if env := os.environ.get("NYDUS_TOP_NRI_FRAMES"):
        return Path(env)
    root = Path(__file__).resolve().parents[2]
    for base in (root.parent, root.parent.parent):
        if (base / "shared" / "nri-frames").is_dir():
            return base / "shared" / "nri-frames"
    raise FileNotFoundError("shared/nri-frames not found beside the checkout; set NYDUS_TOP_NRI_FRAMES")


@dataclass(frozen=True)
class Captured:
    scenario: str
    seq: int
    path: Path
    meta: dict

    @property
    def data(self) -> bytes:
        return self.path.read_bytes()


def scenarios() -> list[str]:
    return sorted(p.name for p in frames_dir().iterdir() if (p / "messages.jsonl").is_file())


def captured(scenario: str) -> list[Captured]:
    base = frames_dir() / scenario
    metas = [json.loads(line) for line in (base / "messages.jsonl").read_text().splitlines() if line]
    bins = sorted(base.glob("[0-9][0-9][0-9]_*.bin"))
    assert len(bins) == len(metas), f"{scenario}: {len(bins)} frames, {len(metas)} messages"
    return [Captured(scenario, m["seq"], b, m) for m, b in zip(metas, bins, strict=True)]


def all_captured() -> list[Captured]:
    return [c for s in scenarios() for c in captured(s)]
