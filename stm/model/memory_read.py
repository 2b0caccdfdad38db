"""The space-time memory read: every query pixel attends over every memory pixel.

Memory is kept as tokens: keys [B, N, L, Ck] and values [B, N, L, Cv] for N objects and
L = T * h * w memory pixels. The query key [B, hw, Ck] is shared by all objects.

Two kernels compute the same thing:
- "bmm": the explicit affinity matrix, softmax over memory pixels, weighted sum (the paper's form,
  with the official code's 1/sqrt(Ck) scale);
- "sdpa": torch's scaled_dot_product_attention where torch has a fused kernel for it (CUDA's flash /
  memory-efficient kernels, which never materialise the [hw, L] affinity). On the CPU, torch's fused
  kernel needs equal key and value widths (ours are 128 and 512), and its fallback computes in float32
  whatever the input type (bf16 ran at a quarter of the matrix units' rate), so the CPU takes the
  explicit form instead.

Without gradients on the CPU the explicit form runs a chunk of query pixels at a time, as many as
keep one chunk's affinity within CPU_AFFINITY_BYTES (at least CPU_QUERY_CHUNK): the whole affinity at
480p with 7 memory frames and 2 objects is 147 MB in float32; a chunk is 12 MB (128 query pixels in
float32, 256 in bf16), and the time stays within a few percent of two plain matrix products of the
same shapes (smaller chunks slow the bf16 products down).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

READ_KERNELS = ("sdpa", "bmm")
CPU_QUERY_CHUNK = 128  # the fewest query pixels per chunk
CPU_AFFINITY_BYTES = 12 * 2**20  # the most memory one chunk's affinity may take


def memory_read(query_key: Tensor, memory_key: Tensor, memory_value: Tensor, kernel: str = "sdpa") -> Tensor:
    """Returns the read-out [B, N, hw, Cv]: per object, the memory values weighted by affinity."""
    if kernel not in READ_KERNELS:
        raise ValueError(f"unknown read kernel {kernel!r}; choose one of {READ_KERNELS}")
    objects = memory_key.shape[1]
    query = query_key.unsqueeze(1).expand(-1, objects, -1, -1)
    scale = 1.0 / math.sqrt(query_key.shape[-1])
    if kernel == "sdpa" and query.device.type != "cpu":
        return F.scaled_dot_product_attention(query, memory_key, memory_value, scale=scale)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (query_key, memory_key, memory_value))
    if query.device.type != "cpu" or needs_grad or query.shape[2] <= _chunk_size(memory_key, memory_value):
        affinity = torch.matmul(query, memory_key.transpose(-1, -2)) * scale  # [B, N, hw, L]
        return torch.matmul(affinity.softmax(dim=-1), memory_value)
    return _chunked_read(query_key, memory_key, memory_value, scale)


def _chunk_size(memory_key: Tensor, memory_value: Tensor) -> int:
    """Query pixels per chunk: the affinity of B * N objects over L memory pixels in CPU_AFFINITY_BYTES."""
    batch, objects, length = memory_key.shape[:3]
    itemsize = torch.promote_types(memory_key.dtype, memory_value.dtype).itemsize
    fits = CPU_AFFINITY_BYTES // max(1, batch * objects * length * itemsize)
    return max(CPU_QUERY_CHUNK, fits // 32 * 32)


def _chunked_read(query_key: Tensor, memory_key: Tensor, memory_value: Tensor, scale: float) -> Tensor:
    """The explicit read, one chunk of query pixels at a time, written into one output buffer.

    Under autocast the three inputs are already in the autocast type (the encoders produced them),
    and the products run in that type as autocast would run them; the softmax of a bf16 affinity
    accumulates in float32 inside torch's kernel."""
    dtype = torch.promote_types(torch.promote_types(query_key.dtype, memory_key.dtype), memory_value.dtype)
    batch, objects, length = memory_key.shape[:3]
    pixels = query_key.shape[1]
    key_t = memory_key.to(dtype).flatten(0, 1).transpose(1, 2)  # [B * N, Ck, L]
    value = memory_value.to(dtype).flatten(0, 1)  # [B * N, L, Cv]
    query = query_key.to(dtype)
    out = value.new_empty(batch, objects, pixels, value.shape[-1])
    zero = value.new_zeros(())
    chunk = _chunk_size(memory_key, memory_value)
    with torch.autocast(query_key.device.type, enabled=False):
        for start in range(0, pixels, chunk):
            part = query[:, start : start + chunk]  # [B, c, Ck]
            part = part.unsqueeze(1).expand(-1, objects, -1, -1).flatten(0, 1)  # [B * N, c, Ck]
            affinity = torch.baddbmm(zero, part, key_t, beta=0, alpha=scale)  # [B * N, c, L]
            weights = affinity.softmax(dim=-1)
            del affinity
            torch.bmm(weights, value, out=out[:, :, start : start + chunk].flatten(0, 1))
    return out
