"""The space-time memory read: every query pixel attends over every memory pixel.

Memory is kept as tokens: keys [B, N, L, Ck] and values [B, N, L, Cv] for N objects and
L = T * h * w memory pixels. The query key [B, hw, Ck] is shared by all objects.

Two kernels compute the same thing:
- "bmm": the explicit affinity matrix, softmax over memory pixels, weighted sum (the paper's form,
  with the official code's 1/sqrt(Ck) scale);
- "sdpa": torch's scaled_dot_product_attention, which on CUDA uses the fused flash /
  memory-efficient kernels and never materialises the [hw, L] affinity. On the CPU the fused kernel
  needs equal key and value widths (ours are 128 and 512 for ResNet-50); otherwise torch falls back
  to the explicit affinity, whose size grows with the memory (330 MB at 480p with 7 memory frames
  and 2 objects), so the CPU reads CPU_QUERY_CHUNK query pixels at a time: same result, same speed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

READ_KERNELS = ("sdpa", "bmm")
CPU_QUERY_CHUNK = 256


def memory_read(query_key: Tensor, memory_key: Tensor, memory_value: Tensor, kernel: str = "sdpa") -> Tensor:
    """Returns the read-out [B, N, hw, Cv]: per object, the memory values weighted by affinity."""
    objects = memory_key.shape[1]
    query = query_key.unsqueeze(1).expand(-1, objects, -1, -1)
    scale = 1.0 / math.sqrt(query_key.shape[-1])
    if kernel == "sdpa":
        chunked = query.device.type == "cpu" and query.shape[-1] != memory_value.shape[-1]
        if not chunked or query.shape[2] <= CPU_QUERY_CHUNK:
            return F.scaled_dot_product_attention(query, memory_key, memory_value, scale=scale)
        parts = query.split(CPU_QUERY_CHUNK, dim=2)
        return torch.cat([F.scaled_dot_product_attention(q, memory_key, memory_value, scale=scale) for q in parts], 2)
    if kernel == "bmm":
        affinity = torch.matmul(query, memory_key.transpose(-1, -2)) * scale  # [B, N, hw, L]
        return torch.matmul(affinity.softmax(dim=-1), memory_value)
    raise ValueError(f"unknown read kernel {kernel!r}; choose one of {READ_KERNELS}")
