"""A generated video and an annotation server on it, for the app's tests."""

import numpy as np
import pytest

from stm.app.annotator import Annotator
from stm.app.workspace import Workspace
from stm.data.frames import ArrayFrames
from stm.data.synthetic import SyntheticSpec, render_video

SPEC = SyntheticSpec(height=48, width=64, min_frames=6, max_frames=6, min_objects=1, max_objects=1)


@pytest.fixture(scope="session")
def video():
    """(frames [T, H, W, 3] uint8, true labels [T, H, W]) of one generated video with one object."""
    return render_video(np.random.default_rng(3), SPEC)


def make_annotator(root, frames, semi=None, interactive=None, source=None) -> Annotator:
    height, width = frames[0].shape[:2]
    workspace = Workspace(root, "generated", len(frames), height, width)
    source = source if source is not None else list(frames)
    return Annotator(workspace, ArrayFrames(frames), source, semi, interactive)


@pytest.fixture(autouse=True)
def _tiny_tests_use_one_thread(one_thread):
    """Every test here runs on tiny frames (see `one_thread` in tests/conftest.py)."""
