import torch

from stm.model.aggregation import aggregate, channel_argmax


def official_soft_aggregation(object_probs: torch.Tensor) -> torch.Tensor:
    """The paper's soft aggregation with the official clamp: p_bg = prod(1 - p_i), logit = log(p / (1 - p))."""
    bg = torch.prod(1 - object_probs, dim=1, keepdim=True)
    probs = torch.cat([bg, object_probs], dim=1).clamp(1e-7, 1 - 1e-7)
    return torch.log(probs / (1 - probs))


def test_matches_the_official_soft_aggregation():
    torch.manual_seed(0)
    fg_logits = torch.randn(2, 3, 20, 20) * 8
    expected = official_soft_aggregation(torch.sigmoid(fg_logits)).softmax(1)
    got = aggregate(fg_logits).softmax(1)
    assert torch.allclose(got, expected, atol=1e-6)


def test_probabilities_sum_to_one_even_when_saturated():
    fg_logits = torch.tensor([[-80.0, 80.0, 0.0, 30.0]]).view(1, 4, 1, 1).repeat(1, 1, 2, 2)
    probs = aggregate(fg_logits).softmax(1)
    assert torch.allclose(probs.sum(1), torch.ones(1, 2, 2))


def test_two_certain_objects_split_like_the_official_clamp():
    # Both objects certain beyond the clamp: the official code gives each the same logit.
    fg_logits = torch.tensor([40.0, 25.0]).view(1, 2, 1, 1)
    probs = aggregate(fg_logits).softmax(1)[0, :, 0, 0]
    assert torch.allclose(probs, torch.tensor([0.0, 0.5, 0.5]), atol=1e-6)


def test_gradient_survives_saturation():
    # The clamped formula has zero gradient here; training from scratch needs it.
    fg_logits = torch.full((1, 2, 4, 4), 40.0, requires_grad=True)
    target = torch.zeros(1, 4, 4, dtype=torch.long)  # all background: both objects are wrong
    torch.nn.functional.cross_entropy(aggregate(fg_logits), target).backward()
    assert fg_logits.grad is not None and (fg_logits.grad > 0).all()


def test_padding_objects_get_no_probability_and_do_not_change_the_others():
    torch.manual_seed(0)
    fg_logits = torch.randn(2, 3, 5, 5) * 4
    valid = torch.tensor([[True, True, False], [True, False, False]])
    probs = aggregate(fg_logits, valid).softmax(1)
    assert probs[0, 3].max() == 0 and probs[1, 2:].max() == 0
    assert torch.allclose(probs[1, :2], aggregate(fg_logits[1:2, :1]).softmax(1)[0], atol=1e-6)
    assert torch.allclose(probs.sum(1), torch.ones(2, 5, 5), atol=1e-6)


def test_channel_argmax_is_torch_argmax_ties_included():
    torch.manual_seed(1)
    probs = torch.rand(2, 3, 17, 23).round(decimals=1)  # many exact ties
    for dim in (0, 1):
        assert torch.equal(channel_argmax(probs, dim), probs.argmax(dim))
