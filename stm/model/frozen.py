"""A trained model frozen for inference: BatchNorm folded into the convolutions, weights cast once.

In eval mode a BatchNorm is a per-channel affine map, so conv -> bn equals one convolution with
scaled weights and a bias (torch.nn.utils.fusion computes them). Both ResNet trunks have 53
BatchNorms; folding them removes a read and a write of every trunk activation per layer. The memory
encoder's stem sums conv1(RGB) and the extra-map stem before bn1: bn1's scale goes into both, its
shift into conv1's new bias.

Under autocast every convolution casts its float32 weights to the low precision on each call (and
autocast keeps those copies until it exits, once per frame). With `weights_dtype`, the parameters
(after folding, only convolution weights and biases) are cast once instead: the same numbers, as
autocast rounds them the same way, without the casts or the second copy. The buffers (the ImageNet
mean and std) stay float32. Such a model runs only under autocast of that type.

Freezing changes the model in place and refuses a model in training mode.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from stm.model.backbone import ResNetTrunk


def freeze_for_inference(
    model: nn.Module,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    weights_dtype: torch.dtype | None = None,
) -> nn.Module:
    """fold_batchnorm, then the model on `device` (channels-last if asked), its parameters in
    `weights_dtype` when given (the autocast type it will run under)."""
    model = fold_batchnorm(model).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if weights_dtype is not None:
        for parameter in model.parameters():
            parameter.data = parameter.data.to(weights_dtype)
    return model


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Folds every BatchNorm of every ResNetTrunk in `model` (in eval mode) into its convolution."""
    if model.training:
        raise ValueError("freezing is for inference: call model.eval() first")
    for trunk in [m for m in model.modules() if isinstance(m, ResNetTrunk)]:
        _fold_stem(trunk)
        for layer in (trunk.layer1, trunk.layer2, trunk.layer3):
            for block in layer:
                for index in (1, 2, 3):
                    conv, bn = getattr(block, f"conv{index}", None), getattr(block, f"bn{index}", None)
                    if isinstance(bn, nn.BatchNorm2d):
                        setattr(block, f"conv{index}", fuse_conv_bn_eval(conv, bn))
                        setattr(block, f"bn{index}", nn.Identity())
                if block.downsample is not None and isinstance(block.downsample[1], nn.BatchNorm2d):
                    block.downsample = nn.Sequential(fuse_conv_bn_eval(block.downsample[0], block.downsample[1]))
    return model


def _fold_stem(trunk: ResNetTrunk) -> None:
    if not isinstance(trunk.bn1, nn.BatchNorm2d):
        return
    bn = trunk.bn1
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    trunk.conv1 = fuse_conv_bn_eval(trunk.conv1, bn)
    if trunk.extra_stem is not None:
        with torch.no_grad():
            trunk.extra_stem.weight.mul_(scale.view(-1, 1, 1, 1))
    trunk.bn1 = nn.Identity()
