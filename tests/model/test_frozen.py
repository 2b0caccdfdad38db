import copy

import numpy as np
import pytest
import torch
from torch import nn

from stm.inference.semi import SemiSupervisedSession
from stm.model import STM
from stm.model.frozen import fold_batchnorm, freeze_for_inference


@pytest.fixture(scope="module")
def model_with_statistics():
    """A small model whose BatchNorms hold non-trivial statistics and affine parameters (fresh ones
    are the identity, and folding them would prove nothing)."""
    torch.manual_seed(0)
    model = STM("semi", "resnet18").eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                channels = module.num_features
                module.running_mean.copy_(torch.randn(channels, generator=generator) * 0.2)
                module.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(channels, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(channels, generator=generator) * 0.1)
    return model


def test_folded_model_gives_the_same_outputs(model_with_statistics):
    folded = fold_batchnorm(copy.deepcopy(model_with_statistics))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    torch.manual_seed(2)
    frames, masks = torch.rand(1, 3, 48, 72), torch.rand(1, 2, 48, 72)
    results = []
    for model in (model_with_statistics, folded):
        with torch.no_grad():
            key, value = model.encode_memory(frames, masks, objects_per_pass=1)
            query = model.encode_query(frames)
            results.append((key, value, model.segment(query, key, value).probs))
    for original, fused in zip(*results, strict=True):
        torch.testing.assert_close(fused, original, rtol=1e-4, atol=1e-4)


def test_interactive_stem_scale_reaches_the_scribble_maps():
    torch.manual_seed(3)
    model = STM("interactive", "resnet18").eval()
    with torch.no_grad():
        model.memory_encoder.trunk.bn1.weight.mul_(3.0)  # a non-unit scale, shared by all stems
    folded = fold_batchnorm(copy.deepcopy(model))
    frames, masks, scribbles = torch.rand(1, 3, 32, 48), torch.rand(1, 1, 32, 48), torch.rand(1, 1, 2, 32, 48)
    with torch.no_grad():
        expected = model.encode_memory(frames, masks, scribbles)
        got = folded.encode_memory(frames, masks, scribbles)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_folding_refuses_a_model_in_training_mode():
    with pytest.raises(ValueError, match="eval"):
        fold_batchnorm(STM("semi", "resnet18"))


def test_weights_cast_once_give_what_autocast_gives(model_with_statistics):
    # Autocast rounds each float32 weight to bf16 on every call; casting once gives the same numbers.
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8) for _ in range(4)]
    labels = np.zeros((40, 56), dtype=np.uint8)
    labels[5:20, 5:25], labels[22:38, 30:50] = 1, 2
    folded = fold_batchnorm(copy.deepcopy(model_with_statistics))
    cast = freeze_for_inference(copy.deepcopy(model_with_statistics), weights_dtype=torch.bfloat16)
    assert {p.dtype for p in cast.parameters()} == {torch.bfloat16}
    assert cast.query_encoder.mean.dtype == torch.float32  # the normalisation stays exact
    sessions = [SemiSupervisedSession(m, mem_every=2, amp="bf16") for m in (folded, cast)]
    for t, frame in enumerate(frames):
        a, b = (s.step(frame, labels if t == 0 else None) for s in sessions)
        torch.testing.assert_close(b.probs, a.probs, rtol=0, atol=0)
