"""The byte-exact NRI traffic captured from containerd 1.7.24 (tests/nri/captured/, a copy of the
project's shared/nri-frames/): kept in the repository so that a fresh clone tests against it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

CAPTURED = Path(__file__).resolve().parents[2] / "tests" / "nri" / "captured"


def frames_dir() -> Path:
    """The captured scenarios; ``$NYDUS_TOP_NRI_FRAMES`` points at another capture."""
    return Path(os.environ.get("NYDUS_TOP_NRI_FRAMES") or CAPTURED)


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
