"""Which autocast precision to run in: one rule for inference (`--amp`), training (`train.amp`) and
the benchmarks.

- False / "fp32": no autocast;
- True: autocast in the device's half type: bfloat16 on the CPU, float16 on CUDA (float16 measured
  faster than bfloat16 for inference on an H200, docs/results.md; training pairs it with a gradient
  scaler);
- "auto" (train.amp's default): that half type where it pays, on CUDA; fp32 on the CPU, where bf16
  autocast is slower than fp32 on CPUs without native bf16 instructions;
- "bf16" / "fp16": that type (fp16 needs CUDA).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from stm.errors import StmError

NAMES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(device: torch.device, amp: bool | str) -> torch.dtype | None:
    """The autocast dtype for `amp` on `device` (None: full precision); see the module docstring."""
    if amp is False or amp == "fp32":
        return None
    if amp == "auto" and device.type != "cuda":
        return None
    if amp is True or amp == "auto":
        return torch.float16 if device.type == "cuda" else torch.bfloat16
    if amp not in NAMES:
        raise StmError(f"unknown precision {amp!r}: choose fp32, bf16, fp16 or auto")
    if amp == "fp16" and device.type != "cuda":
        raise StmError("fp16 needs CUDA; use bf16 on the CPU")
    return NAMES[amp]


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    """torch.autocast in `dtype` on `device`, or nothing when dtype is None."""
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)
