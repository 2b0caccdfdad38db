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


@pytest.mark.parametrize("size", [(37, 53), (481, 855), (1, 17)])
def test_pad_then_unpad_round_trips_with_zeros_on_all_four_borders(size):
    x = torch.rand(1, 3, *size) + 0.5  # never zero: the padding is the only zero
    left, right, top, bottom = amounts = padding_for(*size)
    assert min(amounts) > 0  # every border is padded in these sizes
    padded = pad(x, amounts)
    height, width = padded.shape[-2:]
    assert (height, width) == (size[0] + top + bottom, size[1] + left + right)
    assert height % 16 == 0 and width % 16 == 0
    border = torch.ones(height, width, dtype=torch.bool)
    border[top : height - bottom, left : width - right] = False
    assert torch.equal((padded == 0).all(dim=1)[0], border)  # zeros in raw [0, 1] space, exactly the borders
    assert torch.equal(padded[..., top : height - bottom, left : width - right], x)
    assert torch.equal(unpad(padded, amounts), x)


def test_no_padding_at_a_multiple_of_16():
    x = torch.rand(1, 3, 16, 32)
    assert padding_for(16, 32) == (0, 0, 0, 0) and torch.equal(unpad(pad(x, (0, 0, 0, 0)), (0, 0, 0, 0)), x)
