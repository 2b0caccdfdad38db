"""STM: the Space-Time Memory Network as a set of stateless operations.

The inference and training layers compose these calls; the network keeps nothing between them:

    query = model.encode_query(frame)                      # once per frame, shared by all objects
    key, value = model.encode_memory(frame, masks)         # per memorised frame, per object
    seg = model.segment(query, memory_key, memory_value)   # read + decode + soft aggregation

Frames are RGB in [0, 1], [B, 3, H, W] of any size; the padding to a multiple of 16 happens here
and every output comes back at the input size. Memory is kept as tokens: keys [B, N, L, 128] and
values [B, N, L, 512] for N objects and L memorised pixels (frames concatenated along L).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from stm.model.aggregation import aggregate
from stm.model.backbone import TRUNK_CHANNELS, ResNetTrunk
from stm.model.decoder import Decoder
from stm.model.encoders import KeyValue, MemoryEncoder
from stm.model.memory_read import READ_KERNELS, memory_read
from stm.model.padding import Pad, pad, padding_for, unpad

MODES = ("semi", "interactive")


@dataclass
class QueryFeatures:
    """Everything the decoder needs from one query frame."""

    key: Tensor  # [B, hw, Ck] tokens
    value: Tensor  # [B, Cv, h, w]
    skip_8: Tensor  # [B, C, 2h, 2w] the 1/8 skip feature, projected for the decoder
    skip_4: Tensor  # [B, C, 4h, 4w] the 1/4 skip feature, projected for the decoder
    pad: Pad  # how the frame was padded; outputs are cropped back by it


@dataclass
class Segmentation:
    """The result for one query frame. fg_logits are per object and independent; logits merge them."""

    fg_logits: Tensor  # [B, N, H, W]: fg minus bg logit of each object on its own
    logits: Tensor  # [B, 1 + N, H, W]: soft-aggregated logits over {background, objects}, float32

    @property
    def object_probs(self) -> Tensor:
        """[B, N, H, W] each object's own foreground probability."""
        return torch.sigmoid(self.fg_logits.float())

    @property
    def probs(self) -> Tensor:
        """[B, 1 + N, H, W] the aggregated softmax; sums to 1 over dim 1."""
        return self.logits.softmax(dim=1)


def to_tokens(x: Tensor) -> Tensor:
    """[..., C, h, w] -> [..., h * w, C]."""
    return x.flatten(-2).transpose(-1, -2)


class STM(nn.Module):
    """mode: "semi" (memory sees mask + other objects) or "interactive" (mask + scribble maps).
    backbone: resnet50 (the paper's), resnet34 or resnet18. read_kernel: "sdpa" or "bmm".
    decoder_channels: width of the refinement decoder (256, the paper's); the decoder runs per object at
    1/4 resolution and dominates training cost, so CPU demos use a narrower one (e.g. 64)."""

    def __init__(
        self, mode: str = "semi", backbone: str = "resnet50", read_kernel: str = "sdpa", decoder_channels: int = 256
    ):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        if backbone not in TRUNK_CHANNELS:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {sorted(TRUNK_CHANNELS)}")
        if read_kernel not in READ_KERNELS:
            raise ValueError(f"unknown read kernel {read_kernel!r}; choose one of {READ_KERNELS}")
        self.mode = mode
        self.backbone = backbone
        self.read_kernel = read_kernel
        self.decoder_channels = decoder_channels
        c2, c3, c4 = TRUNK_CHANNELS[backbone]
        self.query_encoder = ResNetTrunk(backbone)
        self.memory_encoder = MemoryEncoder(mode, backbone)
        self.query_kv = KeyValue(c4)
        self.memory_kv = KeyValue(c4)
        self.decoder = Decoder(2 * self.query_kv.value.out_channels, c3, c2, decoder_channels)

    def encode_query(self, frame: Tensor) -> QueryFeatures:
        """frame: [B, 3, H, W] in [0, 1]."""
        amounts = padding_for(*frame.shape[-2:])
        r4, r3, r2 = self.query_encoder(pad(frame, amounts))
        key, value = self.query_kv(r4)
        return QueryFeatures(to_tokens(key), value, *self.decoder.project_skips(r3, r2), amounts)

    def encode_memory(
        self,
        frame: Tensor,
        masks: Tensor,
        scribbles: Tensor | None = None,
        objects_per_pass: int = 0,
        valid: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """frame: [B, 3, H, W]; masks: [B, N, H, W] soft masks of the N objects in this frame;
        scribbles (interactive): [B, N, 2, H, W] positive / negative scribble maps; objects_per_pass:
        see MemoryEncoder; valid: optional [B, N] bool of real (not padding) objects, the only ones encoded.
        Returns key [B, N, hw, Ck] and value [B, N, hw, Cv] tokens."""
        amounts = padding_for(*frame.shape[-2:])
        if scribbles is not None:
            scribbles = pad(scribbles, amounts)
        r4 = self.memory_encoder(pad(frame, amounts), pad(masks, amounts), scribbles, objects_per_pass, valid)
        key, value = self.memory_kv(r4)
        batch = frame.shape[0]
        return to_tokens(key).unflatten(0, (batch, -1)), to_tokens(value).unflatten(0, (batch, -1))

    def read(self, query: QueryFeatures, memory_key: Tensor, memory_value: Tensor) -> Tensor:
        """Memory read-out concatenated with the query value: [B, N, 2 * Cv, h, w]."""
        readout = memory_read(query.key, memory_key, memory_value, self.read_kernel)
        batch, objects = memory_key.shape[:2]
        height, width = query.value.shape[-2:]
        readout = readout.transpose(-1, -2).unflatten(-1, (height, width))
        shared = query.value.unsqueeze(1).expand(batch, objects, -1, -1, -1)
        return torch.cat([readout, shared], dim=2)

    def decode(
        self, query: QueryFeatures, readout: Tensor, objects_per_pass: int = 0, valid: Tensor | None = None
    ) -> Tensor:
        """readout: [B, N, C, h, w] -> fg-minus-bg logits [B, N, H, W] at the input size
        (objects_per_pass, valid: see Decoder)."""
        batch = readout.shape[0]
        logits = self.decoder(readout.flatten(0, 1), query.skip_8, query.skip_4, objects_per_pass, valid)
        fg_logits = (logits[:, 1] - logits[:, 0]).unflatten(0, (batch, -1))
        return unpad(fg_logits, query.pad)

    def segment(
        self,
        query: QueryFeatures,
        memory_key: Tensor | list[Tensor],
        memory_value: Tensor | list[Tensor],
        valid: Tensor | None = None,
        objects_per_pass: int = 0,
    ) -> Segmentation:
        """Read, decode and aggregate. memory_key / memory_value: [B, N, L, C] tokens, or one such pair
        per group of objects when the groups read memories of different lengths (objects that joined a
        video later read only the frames since); the groups' objects follow each other in order.
        valid: optional [B, N] bool of real (not padding) objects, the only ones decoded;
        objects_per_pass: see Decoder."""
        keys = memory_key if isinstance(memory_key, list) else [memory_key]
        values = memory_value if isinstance(memory_value, list) else [memory_value]
        readout = torch.cat([self.read(query, k, v) for k, v in zip(keys, values, strict=True)], dim=1)
        fg_logits = self.decode(query, readout, objects_per_pass, valid)
        return Segmentation(fg_logits, aggregate(fg_logits, valid))
