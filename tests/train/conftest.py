"""A tiny generated DAVIS-layout dataset and a tiny training config for the trainer tests."""

from pathlib import Path

import pytest

from stm.config import Config, load_config
from stm.data.synthetic import SyntheticSpec, ensure_synthetic_davis

TINY = SyntheticSpec(height=32, width=48, min_frames=6, max_frames=7, max_objects=2)


@pytest.fixture(scope="session")
def tiny_videos(tmp_path_factory) -> Path:
    return ensure_synthetic_davis(tmp_path_factory.mktemp("videos") / "syn", TINY, train=3, val=1, seed=1)


def tiny_overrides(videos: Path, run_dir: Path, steps: int = 3) -> list[str]:
    """A run that takes seconds: resnet18, narrow decoder, 32x48 clips of 3 frames, batch 2, no workers."""
    return [
        "model.backbone=resnet18",
        "model.decoder_channels=32",
        f"data.video=[{{root: {videos}, split: train}}]",
        "data.size=[32,48]",
        "data.workers=0",
        "data.skip.start=1",
        "data.skip.end=2",
        "data.skip.ramp_steps=2",
        "train.batch_size=2",
        "train.lr=1e-4",
        f"train.steps={steps}",
        "train.amp=fp32",
        "train.threads=1",
        f"run.dir={run_dir}",
        "run.save_every_steps=1",
        "run.save_every_minutes=0",
        "run.log_every_steps=1",
        "run.image_every_steps=1",
        "run.keep_last=2",
    ]


def tiny_config(videos: Path, run_dir: Path, steps: int = 3, extra: list[str] | None = None) -> Config:
    return load_config(None, tiny_overrides(videos, run_dir, steps) + (extra or []))
