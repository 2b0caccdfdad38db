"""The refinement decoder: read-out at 1/16 -> 1/8 -> 1/4 -> logits at full resolution.

Each Refine module adds a projection of an encoder skip feature to the upsampled coarse feature.
The skip projections depend only on the query frame, not on the object, so they are computed once
per frame and shared by all objects; this is exact and removes more than half of the decoder's
work per extra object.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from stm.model.object_chunks import in_object_chunks, real_objects, with_padding


class ResBlock(nn.Module):
    """Pre-activation residual block: x + conv(relu(conv(relu(x))))."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        # In place where nothing else holds the tensor (autograd included): at 1/4 resolution each
        # temporary is 26 MB per object in float32 at 480p, and the decoder is the peak of inference.
        out = self.conv2(F.relu(self.conv1(F.relu(x)), inplace=True))
        return out.add_(x)


class Refine(nn.Module):
    """Merges a coarse feature (upsampled x2) with a skip feature from the query encoder."""

    def __init__(self, skip_channels: int, channels: int):
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_channels, channels, kernel_size=3, padding=1)
        self.skip_res = ResBlock(channels)
        self.merge_res = ResBlock(channels)

    def project_skip(self, skip: Tensor) -> Tensor:
        return self.skip_res(self.skip_conv(skip))

    def forward(self, projected_skip: Tensor, coarse: Tensor) -> Tensor:
        """projected_skip: [B, C, 2h, 2w] (shared), coarse: [B * N, C, h, w] (per object)."""
        upsampled = F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=False)
        upsampled.unflatten(0, (projected_skip.shape[0], -1)).add_(projected_skip.unsqueeze(1))  # in place
        return self.merge_res(upsampled)  # its own layout (see ResNetTrunk.forward on unflatten / flatten)


class Decoder(nn.Module):
    """Turns the memory read-out (plus query value) into 2-class logits per object."""

    def __init__(self, in_channels: int, r3_channels: int, r2_channels: int, channels: int = 256):
        super().__init__()
        self.compress = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1)
        self.res = ResBlock(channels)
        self.refine_8 = Refine(r3_channels, channels)  # 1/16 -> 1/8
        self.refine_4 = Refine(r2_channels, channels)  # 1/8 -> 1/4
        self.predict = nn.Conv2d(channels, 2, kernel_size=3, padding=1)

    def project_skips(self, r3: Tensor, r2: Tensor) -> tuple[Tensor, Tensor]:
        """The query encoder's skip features (strides 8 and 4) as the two Refine blocks take them.
        They depend on the query frame alone: computed once per frame with its encoding, so r3 and r2
        do not live through the decoder (its 1/4-resolution layers are the peak memory of inference)."""
        return self.refine_8.project_skip(r3), self.refine_4.project_skip(r2)

    def forward(
        self,
        readout: Tensor,
        skip_8: Tensor,
        skip_4: Tensor,
        objects_per_pass: int = 0,
        valid: Tensor | None = None,
    ) -> Tensor:
        """readout: [B * N, in, h, w]; skip_8, skip_4: [B, ...] from project_skips. Returns [B * N, 2, 4h', 4w']
        logits at the input resolution (the 1/4 prediction upsampled x4, bilinear). objects_per_pass > 0
        decodes that many objects at a time (same result): the 1/4-resolution layers of all objects at
        once are the peak memory of inference on a CPU, where batching them buys no speed.
        valid: optional [B, N] bool of real objects; padding objects are not decoded (zero logits)."""
        objects, rows = readout.unflatten(0, (skip_8.shape[0], -1)), None
        if valid is not None and not bool(valid.all()):
            objects, rows = real_objects(objects, valid)
            skip_8, skip_4 = skip_8[rows], skip_4[rows]
        logits = in_object_chunks(lambda part: self._decode(part, skip_8, skip_4), objects, objects_per_pass)
        return logits if rows is None else with_padding(logits, valid)

    def _decode(self, readout: Tensor, skip_8: Tensor, skip_4: Tensor) -> Tensor:
        x = self.res(self.compress(readout))
        x = self.refine_4(skip_4, self.refine_8(skip_8, x))
        logits = self.predict(F.relu(x, inplace=True))
        return F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)
