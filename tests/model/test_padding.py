import pytest
import torch

from stm.model.padding import pad, padding_for, unpad


@pytest.mark.parametrize(
    "size,expected",
    [
        ((480, 854), (5, 5, 0, 0)),  # DAVIS 480p: 854 -> 864, split 5 / 5
        ((481, 855), (4, 5, 7, 8)),  # odd padding: the extra pixel goes right / bottom
        ((64, 64), (0, 0, 0, 0)),
        ((1, 17), (7, 8, 7, 8)),
    ],
)
def test_padding_is_split_like_the_official_code(size, expected):
    assert padding_for(*size) == expected


@pytest.mark.parametrize("size", [(37, 53), (480, 854), (16, 32)])
def test_pad_then_unpad_round_trips(size):
    x = torch.rand(1, 3, *size)
    amounts = padding_for(*size)
    padded = pad(x, amounts)
    assert padded.shape[-2] % 16 == 0 and padded.shape[-1] % 16 == 0
    assert torch.equal(unpad(padded, amounts), x)
    # zeros in raw [0, 1] space, before normalisation
    if any(amounts):
        assert padded[..., :, : amounts[0]].abs().sum() == 0 if amounts[0] else True
        assert padded[..., padded.shape[-2] - amounts[3] :, :].abs().sum() == 0 if amounts[3] else True
