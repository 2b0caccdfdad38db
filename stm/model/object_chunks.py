"""Per-object layers: a few objects at a time (the same result with a lower peak memory), and only
the real objects of a padded training batch (the same result without computing the padding)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def in_object_chunks(run: Callable[[Tensor], Tensor], items: Tensor, per_pass: int) -> Tensor:
    """items [B, N, ...] -> run's output for all B * N items, [B * N, ...] in (batch, object) order,
    calling run on [B * n, ...] with n = per_pass objects at a time (all at once when per_pass <= 0)."""
    batch, objects = items.shape[:2]
    if per_pass <= 0 or per_pass >= objects:
        return run(items.flatten(0, 1))
    parts = [run(part.flatten(0, 1)).unflatten(0, (batch, -1)) for part in items.split(per_pass, dim=1)]
    return torch.cat(parts, dim=1).flatten(0, 1)


def real_objects(items: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """items [B, N, ...], valid [B, N] bool -> (the M real objects as [M, 1, ...], i.e. M frames of one
    object each, and rows [M]: the batch index of each, to pick the per-frame inputs they share)."""
    rows, objects = valid.nonzero(as_tuple=True)
    return items[rows, objects].unsqueeze(1), rows


def with_padding(outputs: Tensor, valid: Tensor) -> Tensor:
    """[M, ...] outputs of the real objects -> [B * N, ...] in (batch, object) order, zeros for padding."""
    full = outputs.new_zeros((valid.numel(), *outputs.shape[1:]))
    full[valid.flatten()] = outputs
    return full
