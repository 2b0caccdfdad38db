import numpy as np
import pytest

from stm.app.strokes import Stroke, paint, stroke_pixels
from stm.errors import StmError


def _stroke(tool="brush", path=((0.5, 0.5),), width=5.0, object_id=1):
    return Stroke(tool, 0, object_id, tuple(path), width)


def test_a_click_is_a_disk_of_the_brush_width_centred_on_the_pixel():
    # the centre of pixel (row 20, column 30) of a 40x60 frame is (30.5 / 60, 20.5 / 40)
    covered = stroke_pixels(_stroke(path=[(30.5 / 60, 20.5 / 40)], width=9), 40, 60)
    rows, cols = np.nonzero(covered)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (16, 24, 26, 34)
    assert covered[20, 30] and not covered[16, 26]  # round, not square
    around = covered[15:26, 25:36]  # centred on the pixel
    assert np.array_equal(around, around[::-1, ::-1]) and np.array_equal(around, around.T)
    assert 55 <= covered.sum() <= 70  # pi * 4.5^2 = 64


def test_a_line_covers_its_whole_length_with_round_ends():
    covered = stroke_pixels(_stroke(path=[(0.1, 0.5), (0.9, 0.5)], width=3), 20, 100)
    assert covered[10, 10:90].all()
    assert not covered[:8].any() and not covered[13:].any()


def test_coordinates_are_resolution_independent():
    path = [(0.2, 0.3), (0.7, 0.4), (0.5, 0.9)]
    small = stroke_pixels(_stroke("polygon", path), 50, 80)
    large = stroke_pixels(_stroke("polygon", path), 100, 160)
    downsampled = large.reshape(50, 2, 80, 2).mean(axis=(1, 3)) > 0.5
    assert (small != downsampled).mean() < 0.02


def test_polygon_fills_its_inside():
    square = [(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)]
    covered = stroke_pixels(_stroke("polygon", square), 40, 40)
    assert covered[10:30, 10:30].all() and covered.sum() == 400


def test_brush_overwrites_eraser_clears_only_its_object():
    labels = np.zeros((10, 10), np.uint8)
    labels[:, :5] = 2
    labels[:, 5:] = 1
    everywhere = [(0, 0), (1, 0), (1, 1), (0, 1)]
    erased = paint(labels, _stroke("eraser", [(0, 0.5), (1, 0.5)], width=30, object_id=1))
    assert (erased[:, :5] == 2).all() and (erased[:, 5:] == 0).all()
    painted = paint(labels, _stroke("polygon", everywhere, object_id=3))
    assert (painted == 3).all()
    assert (labels[:, 5:] == 1).all()  # the input is not modified


@pytest.mark.parametrize(
    "data, problem",
    [
        ({"tool": "spray", "frame": 0, "object": 1, "path": [[0, 0]]}, "unknown tool"),
        ({"tool": "brush", "frame": 0, "object": 1, "path": []}, "at least one point"),
        ({"tool": "polygon", "frame": 0, "object": 1, "path": [[0, 0], [1, 1]]}, "three points"),
        ({"tool": "brush", "frame": 0, "object": 0, "path": [[0, 0]]}, "1..255"),
        ({"tool": "brush", "frame": 0, "object": 1, "path": [[0, "nan"]]}, "finite"),
        ({"tool": "brush", "frame": 0, "object": 1, "path": [[0, 0]], "width": 0}, "width"),
        ({"tool": "brush", "frame": "x", "object": 1, "path": [[0, 0]]}, "malformed"),
        ({"tool": "brush", "object": 1, "path": [[0, 0]]}, "malformed"),
    ],
)
def test_malformed_strokes_are_refused(data, problem):
    with pytest.raises(StmError, match=problem):
        Stroke.from_dict(data)


def test_a_stroke_survives_its_log_line():
    stroke = Stroke.from_dict({"tool": "brush", "frame": 3, "object": 2, "path": [[0.123456789, 0.5]], "width": 7})
    again = Stroke.from_dict(stroke.to_dict())
    assert again == Stroke("brush", 3, 2, ((0.12346, 0.5),), 7.0, stroke.time)
