"""Query and memory encoders (ResNet trunks) and the key/value projection heads."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from stm.model.backbone import ResNetTrunk
from stm.model.object_chunks import in_object_chunks, real_objects, with_padding

KEY_CHANNELS = 128
VALUE_CHANNELS = 512

# Extra maps the memory encoder sees besides RGB, per object, in each mode.
MEMORY_INPUTS: dict[str, tuple[str, ...]] = {
    "semi": ("mask", "other objects"),
    "interactive": ("mask", "positive scribbles", "negative scribbles"),
}


class KeyValue(nn.Module):
    """3x3 convolutions from the 1/16 feature to a key (for matching) and a value (for decoding)."""

    def __init__(self, in_channels: int, key_channels: int = KEY_CHANNELS, value_channels: int = VALUE_CHANNELS):
        super().__init__()
        self.key = nn.Conv2d(in_channels, key_channels, kernel_size=3, padding=1)
        self.value = nn.Conv2d(in_channels, value_channels, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.key(x), self.value(x)


class MemoryEncoder(nn.Module):
    """Encodes a frame together with each object's maps (see MEMORY_INPUTS) into 1/16 features."""

    def __init__(self, mode: str = "semi", backbone: str = "resnet50"):
        super().__init__()
        if mode not in MEMORY_INPUTS:
            raise ValueError(f"unknown mode {mode!r}; choose one of {sorted(MEMORY_INPUTS)}")
        self.mode = mode
        self.trunk = ResNetTrunk(backbone, extra_channels=len(MEMORY_INPUTS[mode]))

    def forward(
        self,
        image: Tensor,
        masks: Tensor,
        scribbles: Tensor | None = None,
        objects_per_pass: int = 0,
        valid: Tensor | None = None,
    ) -> Tensor:
        """image: [B, 3, H, W]; masks: [B, N, H, W] soft masks; scribbles: [B, N, 2, H, W] positive and
        negative scribble maps (interactive mode only). Returns [B * N, C4, H/16, W/16].
        objects_per_pass > 0 runs the trunk on that many objects at a time (same result): on a CPU,
        batching objects buys no speed and multiplies the peak memory of the full-resolution layers.
        valid: optional [B, N] bool of real objects; padding objects are not encoded (zero features)."""
        if self.mode == "semi":
            others = (masks.sum(dim=1, keepdim=True) - masks).clamp(0, 1)
            maps = torch.stack([masks, others], dim=2)
        else:
            if scribbles is None:
                raise ValueError("the interactive memory encoder needs scribble maps [B, N, 2, H, W]")
            maps = torch.cat([masks.unsqueeze(2), scribbles], dim=2)
        maps, rows = maps.to(image.dtype), None
        if valid is not None and not bool(valid.all()):
            maps, rows = real_objects(maps, valid)
            image = image[rows]
        rgb = self.trunk.rgb_stem(image)  # once, whatever the number of passes over the objects
        features = in_object_chunks(lambda part: self.trunk(image, part, rgb)[0], maps, objects_per_pass)
        return features if rows is None else with_padding(features, valid)
