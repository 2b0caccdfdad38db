"""Padding to a multiple of 16, split as the official STM code splits it.

The frame is padded in raw [0, 1] space with zeros (normalisation happens inside the encoder), the
smaller half of the padding on the left/top and the extra pixel on the right/bottom.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

STRIDE = 16

Pad = tuple[int, int, int, int]  # left, right, top, bottom


def padding_for(height: int, width: int, multiple: int = STRIDE) -> Pad:
    extra_h = -height % multiple
    extra_w = -width % multiple
    return (extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2)


def pad(x: Tensor, amounts: Pad) -> Tensor:
    return F.pad(x, amounts) if any(amounts) else x


def unpad(x: Tensor, amounts: Pad) -> Tensor:
    left, right, top, bottom = amounts
    height, width = x.shape[-2:]
    return x[..., top : height - bottom, left : width - right]
