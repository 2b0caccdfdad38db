"""Generated DAVIS- and YouTube-VOS-layout folders for the evaluation tests."""

import json
from pathlib import Path

import numpy as np
import pytest

from stm.data.io import write_frame, write_mask
from stm.data.synthetic import SyntheticSpec, render_video, write_davis_sequence

SPEC = SyntheticSpec(height=64, width=96, min_frames=5, max_frames=5, min_objects=2, max_objects=2)


def make_davis(root: Path, names=("a", "b"), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for name in names:
        write_davis_sequence(root, name, *render_video(rng, SPEC))
    return root


def make_youtube(root: Path, seed=0, all_frames=False) -> Path:
    """One video, frames named 00000, 00005, ...: object 2 given at the first frame, object 7 joins at
    the third scored frame (non-contiguous ids). With all_frames, a dense copy with every frame."""
    rng = np.random.default_rng(seed)
    frames, labels = render_video(
        rng, SyntheticSpec(height=64, width=96, min_frames=9, max_frames=9, min_objects=2, max_objects=2)
    )
    ids = np.array([0, 2, 7], dtype=np.uint8)[labels]
    dense_names = [f"{5 * t:05d}" for t in range(9)]
    scored = range(0, 9, 2)
    for t in range(9):
        if all_frames:
            write_frame(root / "valid_all_frames" / "JPEGImages" / "v1" / f"{dense_names[t]}.jpg", frames[t])
        if t in scored:
            write_frame(root / "valid" / "JPEGImages" / "v1" / f"{dense_names[t]}.jpg", frames[t])
    write_mask(root / "valid" / "Annotations" / "v1" / f"{dense_names[0]}.png", np.where(ids[0] == 2, 2, 0))
    write_mask(root / "valid" / "Annotations" / "v1" / f"{dense_names[4]}.png", np.where(ids[4] == 7, 7, 0))
    meta = {
        "videos": {
            "v1": {
                "objects": {
                    "2": {"category": "thing", "frames": [dense_names[t] for t in scored]},
                    "7": {"category": "thing", "frames": [dense_names[t] for t in scored if t >= 4]},
                }
            }
        }
    }
    (root / "valid" / "meta.json").write_text(json.dumps(meta))
    return root


@pytest.fixture
def davis_root(tmp_path) -> Path:
    return make_davis(tmp_path / "davis")


@pytest.fixture
def youtube_root(tmp_path) -> Path:
    return make_youtube(tmp_path / "ytvos")


@pytest.fixture(autouse=True, scope="module")
def _tiny_tests_use_one_thread(one_thread):
    """Every test here runs on tiny frames (see `one_thread` in tests/conftest.py)."""
