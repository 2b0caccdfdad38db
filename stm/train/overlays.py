"""Tensorboard pictures of what the model predicts: frames with the ground truth (top row) and the
predicted objects (bottom row) painted over them in the DAVIS palette."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from stm.data.clips import ClipBatch
from stm.data.io import DAVIS_PALETTE

_COLOURS = torch.from_numpy(np.frombuffer(DAVIS_PALETTE, dtype=np.uint8).reshape(256, 3).copy()).float() / 255


def paint(frame: Tensor, ids: Tensor, alpha: float = 0.5) -> Tensor:
    """frame [3, H, W] in [0, 1], ids long [H, W] -> the frame with objects tinted by their colour."""
    colours = _COLOURS[ids.clamp(0, 255)].permute(2, 0, 1)
    tinted = frame * (1 - alpha) + colours * alpha
    return torch.where(ids.unsqueeze(0) > 0, tinted, frame)


def overlay_grid(batch: ClipBatch, probs: Tensor, clips: int = 2) -> Tensor:
    """[3, H', W'] picture of the first `clips` clips: each a row of ground truth over all frames and a
    row of predictions (frame 1 shows its given masks in both). probs: [B, T - 1, 1 + N, H, W]."""
    rows = []
    for b in range(min(clips, len(batch))):
        frames, labels = batch.frames[b].float().cpu(), batch.labels[b].cpu()
        predicted = [labels[0]] + [p.argmax(0) for p in probs[b]]
        rows.append(torch.cat([paint(f, lab) for f, lab in zip(frames, labels, strict=True)], dim=2))
        rows.append(torch.cat([paint(f, lab) for f, lab in zip(frames, predicted, strict=True)], dim=2))
    return torch.cat(rows, dim=1).clamp(0, 1)
