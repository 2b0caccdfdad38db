"""Segmentation losses over the soft-aggregated logits: cross-entropy and bootstrapped cross-entropy.

Bootstrapped CE (STCN's recipe) averages the loss over the hardest fraction p of the pixels only.
Plain CE is used until `start_step`; p then falls linearly from 1 to `top_p` by `end_step`, so the
network first learns the easy bulk of the image and then concentrates on boundaries and mistakes.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from stm.config import LossConfig


def hard_fraction(config: LossConfig, step: int) -> float:
    """The fraction of pixels that count at `step` (1.0 for plain CE)."""
    if config.kind == "ce" or step < config.start_step:
        return 1.0
    if step >= config.end_step:
        return config.top_p
    progress = (step - config.start_step) / max(config.end_step - config.start_step, 1)
    return 1.0 - progress * (1.0 - config.top_p)


def bootstrapped_ce(logits: Tensor, labels: Tensor, fraction: float) -> Tensor:
    """Mean CE over the `fraction` of pixels with the largest loss, per image. logits [B, C, H, W],
    labels long [B, H, W]."""
    pixels = F.cross_entropy(logits, labels, reduction="none").flatten(1)
    if fraction >= 1.0:
        return pixels.mean()
    count = max(1, int(pixels.shape[1] * fraction))
    return pixels.topk(count, dim=1, sorted=False).values.mean()


class SegmentationLoss(nn.Module):
    """CE or bootstrapped CE as the config says; call with the current step."""

    def __init__(self, config: LossConfig):
        super().__init__()
        self.config = config

    def forward(self, logits: Tensor, labels: Tensor, step: int) -> Tensor:
        return bootstrapped_ce(logits.float(), labels, hard_fraction(self.config, step))
