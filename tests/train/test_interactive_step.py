"""Interactive training step: rounds of scribbles (the DAVIS robot's after the first), memory of scribbled
frames, learning."""

import numpy as np
import pytest
import torch

from stm.config import Config, LossConfig, load_config
from stm.data.clips import ClipBatch
from stm.data.scribbles import davis_json_maps
from stm.evaluation.davis_robot import robot_scribbles
from stm.model.stm import STM
from stm.train.interactive_step import InteractiveClipStep
from stm.train.losses import SegmentationLoss
from stm.train.steps import CLIP_STEPS
from stm.train.trainer import clip_step

pytestmark = pytest.mark.usefixtures("one_thread")


def clip_batch(batch=2, frames=3, height=48, width=64) -> ClipBatch:
    """Two objects moving right on a textured background."""
    torch.manual_seed(0)
    images = torch.rand(batch, frames, 3, height, width) * 0.3
    labels = torch.zeros(batch, frames, height, width, dtype=torch.long)
    for t in range(frames):
        labels[:, t, 8:26, 4 + 4 * t : 24 + 4 * t] = 1
        labels[:, t, 28:44, 30 + 3 * t : 52 + 3 * t] = 2
    images[:, :, 0] += 0.6 * (labels == 1)
    images[:, :, 2] += 0.6 * (labels == 2)
    return ClipBatch(images, labels, torch.ones(batch, 2, dtype=torch.bool))


class Counting(STM):
    def __init__(self):
        super().__init__("interactive", "resnet18")
        self.query_frames, self.memory_frames, self.scribble_pixels = 0, 0, 0.0

    def encode_query(self, frame):
        self.query_frames += frame.shape[0]
        return super().encode_query(frame)

    def encode_memory(self, frame, masks, scribbles=None, **options):
        self.memory_frames += frame.shape[0]
        self.scribble_pixels += float(scribbles.sum()) if scribbles is not None else 0.0
        assert scribbles is not None and scribbles.shape[:3] == (frame.shape[0], masks.shape[1], 2)
        return super().encode_memory(frame, masks, scribbles, **options)


def test_step_is_registered_and_plays_one_round_per_frame_of_a_short_clip():
    model = Counting()
    step = clip_step("interactive", model, SegmentationLoss(LossConfig()), Config())
    assert isinstance(step, InteractiveClipStep) and "interactive" in CLIP_STEPS
    batch = clip_batch()
    output = step(batch, 0)
    assert output.loss.ndim == 0 and torch.isfinite(output.loss)
    assert output.probs.shape == (2, 2, 3, 48, 64)  # the trainer's overlay shape: frames 2..T
    assert model.query_frames == 2 * 3  # each clip frame encoded once, shared by 3 rounds
    assert model.memory_frames == 2 * 3  # one scribbled frame per clip per round
    assert len(step.round_iou) == 3
    output.loss.backward()
    assert model.memory_encoder.trunk.extra_stem.weight.grad.abs().sum() > 0


def test_a_clip_longer_than_the_rounds_keeps_unscribbled_frames():
    model = Counting()
    step = clip_step("interactive", model, SegmentationLoss(LossConfig()), Config())
    output = step(clip_batch(frames=5), 0)
    assert model.query_frames == 2 * 5 and model.memory_frames == 2 * 3  # 3 rounds: 2 frames never scribbled
    assert len(step.round_iou) == 3 and output.probs.shape[:2] == (2, 4)


def test_the_config_sets_rounds_and_stroke_width():
    drawn = {}
    for thickness in (1, 5):
        model = Counting()
        config = load_config(None, ["interactive.train_rounds=2", f"interactive.scribble_thickness={thickness}"])
        step = clip_step("interactive", model, SegmentationLoss(LossConfig()), config)
        step(clip_batch(frames=5), 0)
        assert (step.rounds, step.thickness) == (2, thickness) and model.memory_frames == 2 * 2
        drawn[thickness] = model.scribble_pixels
    assert drawn[5] > 2 * drawn[1]  # wider strokes reach the memory encoder


def test_later_rounds_are_the_robots_corrections_of_the_worst_frame():
    batch = clip_batch(batch=1, frames=5)
    truth = batch.labels.numpy()
    prediction = truth.astype(np.uint8).copy()
    prediction[0, 3][truth[0, 3] == 1] = 0  # frame 3 misses object 1 ...
    prediction[0, 3, 2:8, 40:60] = 2  # ... and calls some background object 2
    prediction[0, 1, :, :40][truth[0, 1, :, :40] == 2] = 1  # frame 1 calls part of object 2 object 1 (less wrong)
    step = InteractiveClipStep(STM("interactive", "resnet18"), SegmentationLoss(LossConfig()), thickness=1)
    scribbled = [{3}]  # frame 3 was scribbled already: the next worst is frame 1
    chosen, maps = step._scribbles(1, truth, prediction, scribbled, 2, np.random.default_rng(0))
    assert chosen == [1] and scribbled == [{1, 3}]
    expected = davis_json_maps(robot_scribbles(truth[0], prediction[0], 1, 2), 1, 2, 48, 64)
    assert np.array_equal(maps[0], expected)
    assert maps[0, 1, 0].sum() > 10 and not maps[0, 0, 0].any()  # object 2 is missed: positive for it ...
    assert maps[0, 0, 1].sum() > 10  # ... and the same stroke tells object 1 it is not there
    chosen, maps = step._scribbles(1, truth, prediction, [set()], 2, np.random.default_rng(0))
    assert chosen == [3]
    assert maps[0, 0, 0].sum() > 10  # missed object 1: positive for object 1
    background = maps[0, 1, 1] & (truth[0, 3] == 0)
    assert background.sum() > 5 and not (maps[0, 1, 0] & (truth[0, 3] == 0)).any()  # false object 2: negative


def test_semi_model_is_refused():
    with pytest.raises(ValueError, match="interactive"):
        InteractiveClipStep(STM("semi", "resnet18"), SegmentationLoss(LossConfig()))


def test_a_few_steps_on_one_clip_lower_the_loss():
    torch.manual_seed(0)
    model = STM("interactive", "resnet18")
    step = InteractiveClipStep(model, SegmentationLoss(LossConfig()))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = clip_batch(batch=1, frames=2)
    losses = []
    for index in range(10):
        optimizer.zero_grad()
        loss = step(batch, index).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]
