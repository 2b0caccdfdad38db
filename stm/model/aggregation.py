"""Soft aggregation of independent per-object foreground probabilities into one softmax.

STM merges the objects' probabilities p_i = sigmoid(d_i), d_i = (fg - bg) decoder logit of object i,
as p_bg = prod(1 - p_i), clamps every probability to [1e-7, 1 - 1e-7], and takes
logit = log(p / (1 - p)). Its forward values are reproduced here exactly, float32 rounding of p near
1 included: that rounding and the clamp decide the pixels where two objects are both near-certain,
and matching the official outputs there needs the same arithmetic.

Its gradient is useless for training, though: it is zero wherever a probability saturates, and a
model trained from scratch stalls within a few steps (every pixel saturated, gradient exactly 0). So
the gradient is taken from the same logits written in log space, which never saturate:

    object logit_i = d_i,   log p_bg = sum_i logsigmoid(-d_i),   background = log p_bg - log(1 - p_bg)

The result carries the official value forward and the log-space gradient backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_EPS = 1e-7
_ABSENT = -1e4  # logit of a padding object: contributes nothing to p_bg and gets probability 0


def _official_logits(d: Tensor) -> Tensor:
    p = torch.sigmoid(d)
    probs = torch.cat([torch.prod(1 - p, dim=1, keepdim=True), p], dim=1).clamp(_EPS, 1 - _EPS)
    return torch.log(probs / (1 - probs))


def _log_space_logits(d: Tensor) -> Tensor:
    log_bg = F.logsigmoid(-d).sum(dim=1, keepdim=True)
    bg_logit = log_bg - torch.log(torch.clamp(-torch.expm1(log_bg), min=_EPS))
    return torch.cat([bg_logit, d], dim=1)


def aggregate(fg_logits: Tensor, valid: Tensor | None = None) -> Tensor:
    """fg_logits: [B, N, H, W] (fg minus bg logit per object); valid: optional [B, N] bool marking
    real objects (training batches pad clips to a common object count).
    Returns logits [B, 1 + N, H, W] over {background, objects}, in float32 (or float64)."""
    d = fg_logits.to(torch.promote_types(fg_logits.dtype, torch.float32))
    if valid is not None:
        d = d.masked_fill(~valid[:, :, None, None], _ABSENT)
    logits = _log_space_logits(d) if torch.is_grad_enabled() and d.requires_grad else None
    with torch.no_grad():
        official = _official_logits(d)
    if logits is not None:
        logits = logits + (official - logits).detach()
    else:
        logits = official
    if valid is not None:  # padding objects stay impossible (the clamp lifted them to -16.1)
        present = torch.cat([valid.new_ones(valid.shape[0], 1), valid], dim=1)
        logits = logits.masked_fill(~present[:, :, None, None], _ABSENT)
    return logits


def channel_argmax(probs: Tensor, dim: int) -> Tensor:
    """probs.argmax(dim), first maximum on ties as torch's: the channels moved last first, because
    torch's CPU argmax over an outer dimension of a few channels is slow (35 ms for 3 x 480 x 854,
    3 ms this way)."""
    return probs.movedim(dim, -1).contiguous().argmax(dim=-1)
