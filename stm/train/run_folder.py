"""A run's folder: checkpoints/<config stem>/ with latest.pth, the last few step_<N>.pth, the
resolved config, tensorboard logs and the validation curve.

latest.pth is replaced atomically (stm.data.io.atomic_write: temporary file, fsync, rename),
so a SIGKILL at any moment leaves the previous or the new checkpoint, never a broken one. Each
step_<N>.pth is a hard link to the latest.pth it was written as (a copy where links do not work).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml

from stm.data.io import PARTIAL_GLOB, atomic_write
from stm.model.checkpoint import read_checkpoint

CURVE_FIELDS = ("step", "train_minutes", "wall_minutes", "J&F", "J", "F")


class RunFolder:
    def __init__(self, root: str | os.PathLike, keep_last: int = 3):
        self.root = Path(root)
        self.keep_last = keep_last

    @property
    def latest(self) -> Path:
        return self.root / "latest.pth"

    @property
    def logs(self) -> Path:
        return self.root / "tensorboard"

    def remove_partial_files(self) -> None:
        """Temporary files a killed process left behind (the checkpoints themselves are whole)."""
        for partial in self.root.glob(PARTIAL_GLOB):
            partial.unlink(missing_ok=True)

    def has_checkpoint(self) -> bool:
        return self.latest.is_file()

    def load_latest(self) -> dict[str, Any]:
        return read_checkpoint(self.latest)

    def write_config(self, config: dict) -> None:
        text = yaml.safe_dump(config, sort_keys=False)
        atomic_write(self.root / "config.yaml", lambda path: Path(path).write_text(text))

    def save(self, checkpoint: dict[str, Any], step: int) -> Path:
        """Writes latest.pth atomically, links it as step_<N>.pth and drops the oldest step files."""
        atomic_write(self.latest, lambda temporary: torch.save(checkpoint, temporary))
        atomic_write(self.root / f"step_{step:08d}.pth", self._link_latest)
        files = self.step_files()
        for old in files[: max(len(files) - self.keep_last, 0)]:
            old.unlink(missing_ok=True)
        return self.latest

    def _link_latest(self, temporary: str) -> None:
        os.unlink(temporary)
        try:
            os.link(self.latest, temporary)
        except OSError:  # a file system without hard links
            shutil.copyfile(self.latest, temporary)

    def step_files(self) -> list[Path]:
        return sorted(p for p in self.root.glob("step_*.pth") if re.fullmatch(r"step_\d+\.pth", p.name))

    def write_curve(self, rows: list[dict[str, float]]) -> None:
        """The validation J&F against training time, as curve.csv and curve.json."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CURVE_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write(self.root / "curve.csv", lambda path: Path(path).write_text(buffer.getvalue()))
        atomic_write(self.root / "curve.json", lambda path: Path(path).write_text(json.dumps(rows, indent=1)))
