"""Validation during training treats DAVIS void (255) as the official evaluation does: background."""

import numpy as np
import pytest
import torch

from stm.config import load_config
from stm.data.io import read_mask, write_mask
from stm.data.synthetic import SyntheticSpec, ensure_synthetic_davis
from stm.model.stm import STM
from stm.train.validation import evaluate_videos, load_videos, make_validator


@pytest.fixture
def void_videos(tmp_path):
    """One held-out video twice: with a void band (255) over its top rows and object 1's left edge, and
    the same with the void written as background."""
    spec = SyntheticSpec(height=32, width=48, min_frames=4, max_frames=4, min_objects=2, max_objects=2)
    roots = []
    for name in ("void", "clean"):
        root = ensure_synthetic_davis(tmp_path / name, spec, train=0, val=1, seed=3)
        for path in sorted(root.glob("Annotations/480p/*/*.png")):
            labels = read_mask(path)
            voided = labels.copy()
            voided[:3] = 255
            voided[:, :-1][(labels[:, 1:] == 1) & (labels[:, :-1] == 0)] = 255  # a void rim, as DAVIS draws
            write_mask(path, voided if name == "void" else np.where(voided == 255, 0, voided))
        roots.append(root)
    return roots


def test_semi_validation_scores_void_as_background(void_videos):
    void_root, clean_root = void_videos
    config = load_config(None, [f"val.root={void_root}"]).val
    videos = load_videos(config)
    assert all(255 not in np.unique(labels) for _, _, video in videos for labels in video)
    torch.manual_seed(0)
    model = STM("semi", "resnet18", decoder_channels=16).eval()
    clean = load_videos(load_config(None, [f"val.root={clean_root}"]).val)
    raw = [(name, frames, [read_mask(p) for p in sorted((void_root / "Annotations/480p" / name).glob("*.png"))])
           for name, frames, _ in clean]
    assert 255 in np.unique(raw[0][2][0])
    expected = evaluate_videos(model, clean, progress=False)
    assert evaluate_videos(model, raw, progress=False) == pytest.approx(expected)  # void given straight in
    validate = make_validator(load_config(None, [f"val.root={void_root}", "model.backbone=resnet18"]))
    assert validate(model, 0) == pytest.approx(expected)


def test_interactive_validation_never_plays_object_255(void_videos):
    void_root, clean_root = void_videos
    torch.manual_seed(0)
    model = STM("interactive", "resnet18", decoder_channels=16).eval()
    scores = []
    for root in (void_root, clean_root):
        overrides = [f"val.root={root}", "model.mode=interactive", "model.backbone=resnet18", "interactive.rounds=2"]
        validate = make_validator(load_config(None, overrides))
        scores.append(validate(model, 0))
    assert scores[0] == pytest.approx(scores[1])
