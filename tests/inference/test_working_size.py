"""Working size: parsing and resolving --size, the shape it gives, the one resize."""

import argparse

import pytest
import torch

from stm.errors import StmError
from stm.inference.working_size import NATIVE, parse_size, resize, resolve_size, working_shape


def test_parse_and_resolve():
    assert parse_size("native") == NATIVE and parse_size("480") == 480
    for bad in ("8", "abc", "-1", "480.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)
    assert resolve_size(None, 64) == 64  # the checkpoint's recorded size by default
    assert resolve_size(None, None) is None  # nothing recorded (official weights): native
    assert resolve_size(NATIVE, 64) is None and resolve_size(32, 64) == 32
    with pytest.raises(StmError, match="size 8"):
        resolve_size(8, None)


def test_the_short_side_becomes_the_size_and_the_long_side_needs_no_padding():
    assert working_shape((480, 854), 240) == (240, 432)  # 427 -> 432: a multiple of 16, no padding band
    assert working_shape((854, 480), 64) == (112, 64)  # 113.9 -> 112
    assert working_shape((240, 432), 64) == (64, 112)  # 115.2 -> 112, not 115 padded to 128
    assert working_shape((64, 112), 128) == (128, 224)  # small videos are enlarged to what the model knows
    assert working_shape((480, 854), None) == (480, 854)  # native: as it is (the official fidelity)


def test_resize_keeps_thin_strokes_and_probabilities():
    line = torch.zeros(1, 1, 480, 854)
    line[0, 0, 200, 100:700] = 1  # one pixel wide
    small = resize(line, (60, 107))[0, 0]
    assert int((small > 0).any(0).sum()) >= 70  # plain bilinear samples rows 195.5 and 203.5: it would vanish
    probs = torch.rand(1, 3, 48, 80).softmax(1)
    for shape in ((24, 40), (96, 160)):
        torch.testing.assert_close(resize(probs, shape).sum(1), torch.ones(1, *shape))
    assert resize(probs, (48, 80)) is probs  # same size: untouched
