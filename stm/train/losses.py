"""Segmentation losses over the soft-aggregated logits: cross-entropy and bootstrapped cross-entropy.

Bootstrapped CE (STCN's recipe) averages the loss over the hardest fraction p of the pixels only.
Plain CE is used until `start_step`; p then falls linearly from 1 to `top_p` by `end_step`, so the
network first learns the easy bulk of the image and then concentrates on boundaries and mistakes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stm.config import LossConfig
from stm.data.io import VOID


def hard_fraction(config: LossConfig, step: int) -> float:
    """The fraction of pixels that count at `step` (1.0 for plain CE)."""
    if config.kind == "ce" or step < config.start_step:
        return 1.0
    if step >= config.end_step:
        return config.top_p
    progress = (step - config.start_step) / max(config.end_step - config.start_step, 1)
    return 1.0 - progress * (1.0 - config.top_p)


def bootstrapped_ce(logits: Tensor, labels: Tensor, fraction: float) -> Tensor:
    """Mean CE over the `fraction` of each image's pixels with the largest loss. logits [B, C, H, W],
    labels long [B, H, W]; void pixels (255) count for nothing, neither in the loss nor in the fraction."""
    pixels = F.cross_entropy(logits, labels, ignore_index=VOID, reduction="none").flatten(1)
    real = (labels != VOID).flatten(1)
    if fraction >= 1.0:
        return pixels.sum() / real.sum().clamp(min=1)
    counts = (real.sum(1) * fraction).long().clamp(min=1).minimum(real.sum(1))  # per image
    hardest = pixels.masked_fill(~real, -1).topk(int(counts.max().clamp(min=1)), dim=1).values
    chosen = torch.arange(hardest.shape[1], device=hardest.device) < counts[:, None]
    return (hardest * chosen).sum() / chosen.sum().clamp(min=1)


class SegmentationLoss(nn.Module):
    """CE or bootstrapped CE as the config says; call with the current step."""

    def __init__(self, config: LossConfig):
        super().__init__()
        self.config = config

    def forward(self, logits: Tensor, labels: Tensor, step: int) -> Tensor:
        return bootstrapped_ce(logits.float(), labels, hard_fraction(self.config, step))
