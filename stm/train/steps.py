"""The training step on one batch of clips, as STM trains: memorise frame 1 with its ground truth,
predict frame 2, memorise frame 2 with the predicted soft masks, predict frame 3 from both, and so on;
the loss is averaged over frames 2..T.

A step is an nn.Module whose forward runs the whole clip, so DistributedDataParallel sees one forward
per step and synchronises every gradient of the model it wraps. Steps are registered by name in
CLIP_STEPS (config key train.step) as factories of (model, loss, config); another module adds its own
with `register_step`, e.g. the interactive step in stm/train/interactive_step.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from stm.config import Config
from stm.data.clips import ClipBatch
from stm.model.stm import STM
from stm.train.losses import SegmentationLoss


@dataclass
class StepOutput:
    loss: Tensor  # scalar, averaged over the predicted frames
    probs: Tensor  # [B, T - 1, 1 + N, H, W] the predictions of frames 2..T (detached), for logging


class SemiClipStep(nn.Module):
    """Semi-supervised step: only frame 1's masks are given."""

    def __init__(self, model: STM, loss: SegmentationLoss):
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, batch: ClipBatch, step: int) -> StepOutput:
        masks = batch.masks()
        keys, values = self.model.encode_memory(batch.frames[:, 0], masks[:, 0], valid=batch.valid)
        losses, predictions = [], []
        frames = batch.frames.shape[1]
        for t in range(1, frames):
            query = self.model.encode_query(batch.frames[:, t])
            seg = self.model.segment(query, keys, values, batch.valid)
            losses.append(self.loss(seg.logits, batch.labels[:, t], step))
            probs = seg.probs
            predictions.append(probs.detach())
            if t < frames - 1:
                key, value = self.model.encode_memory(
                    batch.frames[:, t], probs[:, 1:].to(batch.frames.dtype), valid=batch.valid
                )
                keys, values = torch.cat([keys, key], dim=2), torch.cat([values, value], dim=2)
        return StepOutput(torch.stack(losses).mean(), torch.stack(predictions, dim=1))


StepFactory = Callable[[STM, SegmentationLoss, Config], nn.Module]
CLIP_STEPS: dict[str, StepFactory] = {"semi": lambda model, loss, config: SemiClipStep(model, loss)}


def register_step(name: str, factory: StepFactory) -> None:
    """Adds a clip step under `name` (train.step in the config)."""
    CLIP_STEPS[name] = factory
