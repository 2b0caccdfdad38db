"""ResNet trunk (conv1 .. layer3, stride 16) from torchvision, with optional extra input stems.

The memory encoder sees more than RGB: the object's mask and other maps. Like the official STM,
each extra map goes through a bias-free 7x7/stride-2 convolution whose output is summed with
conv1's output before bn1. One convolution over the stacked extra maps computes exactly that sum.
"""

from __future__ import annotations

import torch
import torchvision
from torch import Tensor, nn

# Channels of layer1, layer2, layer3 for each supported trunk.
TRUNK_CHANNELS: dict[str, tuple[int, int, int]] = {
    "resnet18": (64, 128, 256),
    "resnet34": (64, 128, 256),
    "resnet50": (256, 512, 1024),
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ResNetTrunk(nn.Module):
    """conv1..layer3 of a torchvision ResNet; returns features at strides 16, 8 and 4."""

    def __init__(self, name: str = "resnet50", extra_channels: int = 0):
        super().__init__()
        if name not in TRUNK_CHANNELS:
            raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(TRUNK_CHANNELS)}")
        resnet = getattr(torchvision.models, name)(weights=None)
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.layer1 = resnet.layer1  # 1/4
        self.layer2 = resnet.layer2  # 1/8
        self.layer3 = resnet.layer3  # 1/16
        self.extra_stem = (
            nn.Conv2d(extra_channels, 64, kernel_size=7, stride=2, padding=3, bias=False) if extra_channels else None
        )
        self.reset_constants()

    def reset_constants(self, device: torch.device | str | None = None) -> None:
        """(Re)creates the ImageNet mean and std buffers: constants, not in state dicts, so a model
        built on the meta device and loaded from a file gets them here."""
        for name, values in (("mean", IMAGENET_MEAN), ("std", IMAGENET_STD)):
            self.register_buffer(name, torch.tensor(values, device=device).view(1, 3, 1, 1), persistent=False)

    def rgb_stem(self, image: Tensor) -> Tensor:
        """conv1 of the normalised image: [B, 3, H, W] RGB in [0, 1] -> [B, 64, H/2, W/2]."""
        return self.conv1((image - self.mean) / self.std)

    def forward(
        self, image: Tensor, extra: Tensor | None = None, rgb_stem: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """image: [B, 3, H, W] RGB in [0, 1]. extra: [B * N, E, H, W] maps for N copies of each image.
        rgb_stem: self.rgb_stem(image) when the caller already has it.

        conv1 runs once per image; its output is repeated for the N extra-map sets, so N objects
        sharing one frame cost one RGB stem, not N.
        """
        x = self.rgb_stem(image) if rgb_stem is None else rgb_stem
        if self.extra_stem is not None:
            if extra is None:
                raise ValueError("this trunk has an extra stem: pass the extra input maps")
            stems = self.extra_stem(extra)
            # Summed in place through a [B, N, ...] view, then used in the stems' own layout: a tensor
            # that went through unflatten / flatten with a batch of 1 has a batch stride equal to its
            # channel count, and max pooling took a path 15x slower on it.
            stems.unflatten(0, (image.shape[0], -1)).add_(x.unsqueeze(1))
            x = stems
        x = self.maxpool(self.relu(self.bn1(x)))
        r2 = self.layer1(x)
        r3 = self.layer2(r2)
        r4 = self.layer3(r3)
        return r4, r3, r2
