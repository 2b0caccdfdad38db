"""Working size: the short side of the frames the network runs at, whatever the video's size.

A network trained on 64x112 frames fails on the same scenes at 240x432 (its receptive field and its
memory read see objects four times larger than it learned), so every entry point runs a checkpoint
at the size it was trained at: checkpoints record it (`stm.model.checkpoint.recorded_size`), and a
requested size is one of

- an int: the short side in pixels (the long side keeps the aspect ratio, to a multiple of 16);
- "native": each video at its own size (the official weights, the fidelity checks);
- None: the checkpoint's recorded size, else native.

`resize` is the one resize of inference: frames go to the working size, probabilities come back to
the video's size (before any argmax), masks travel as one-hot probabilities. Bilinear, antialiased
when shrinking, so no thin object or stroke is skipped between samples.
"""

from __future__ import annotations

import argparse

import torch.nn.functional as F
from torch import Tensor

from stm.errors import StmError
from stm.model.padding import STRIDE  # inputs are padded to a multiple of it

NATIVE = "native"
MIN_SIZE = STRIDE  # one feature cell


def check_size(size: int | str | None, what: str = "size") -> int | str | None:
    """A requested size as given (int, "native" or None); StmError naming `what` otherwise."""
    if size is None or size == NATIVE:
        return size
    if isinstance(size, bool) or not isinstance(size, int) or size < MIN_SIZE:
        raise StmError(f"{what} {size!r}: must be a short side in pixels (>= {MIN_SIZE}) or {NATIVE!r}")
    return size


def parse_size(text: str) -> int | str:
    """argparse type of --size: N (pixels, >= 16) or "native"."""
    if text == NATIVE:
        return NATIVE
    try:
        return check_size(int(text))
    except (ValueError, StmError):
        raise argparse.ArgumentTypeError(f"{text!r}: give a short side in pixels (>= {MIN_SIZE}) or {NATIVE}") from None


def resolve_size(requested: int | str | None, recorded: int | None) -> int | None:
    """The short side to run at (None = native): `requested`, or the recorded size when it is None."""
    requested = check_size(requested)
    if requested is None:
        return recorded
    return None if requested == NATIVE else requested


def describe_size(size: int | None) -> str:
    return NATIVE if size is None else f"short side {size}"


def working_shape(shape: tuple[int, int], size: int | None) -> tuple[int, int]:
    """(height, width) with the short side `size` and the long side scaled alike, then rounded to a
    multiple of 16 (the network's stride), so no padding band is added along it: the demo model, trained
    on unpadded 64x112 frames, scored J 0.34 instead of 0.55 on generated videos given at 64x115 (padded
    to 64x128 with black; docs/results.md). The aspect ratio moves by at most 8 pixels over the long side.
    `shape` when None."""
    height, width = int(shape[0]), int(shape[1])
    if size is None:
        return height, width
    scale = size / min(height, width)
    if height <= width:
        return size, STRIDE * max(1, round(width * scale / STRIDE))
    return STRIDE * max(1, round(height * scale / STRIDE)), size


def resize(x: Tensor, shape: tuple[int, int]) -> Tensor:
    """[N, C, H, W] float (frames, probabilities, stroke maps) to `shape`; `x` itself when it has it."""
    shape = (int(shape[0]), int(shape[1]))
    if tuple(x.shape[-2:]) == shape:
        return x
    shrink = shape[0] < x.shape[-2] or shape[1] < x.shape[-1]
    return F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=shrink)
