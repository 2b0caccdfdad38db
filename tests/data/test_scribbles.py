"""Scribble synthesis lands on the region's skeleton; DAVIS JSON round-trips to the same maps."""

import numpy as np
from skimage.morphology import thin

from stm.data.scribbles import (
    davis_json_maps,
    first_round_maps,
    largest_component,
    rasterise,
    scribble_map,
    scribble_path,
    scribbled_frames,
    to_davis_json,
)


def blob(height=64, width=96):
    yy, xx = np.mgrid[0:height, 0:width]
    return ((yy - 30) / 18) ** 2 + ((xx - 45) / 30) ** 2 < 1


def test_scribble_inside_region_and_on_its_skeleton():
    region = blob()
    skeleton = thin(region)
    for seed in range(10):
        scribble = scribble_map(region, np.random.default_rng(seed))
        assert scribble.sum() >= 2
        assert not (scribble & ~region).any()
        assert not (scribble & ~skeleton).any()


def test_path_is_connected_and_never_repeats():
    path = scribble_path(blob(), np.random.default_rng(3))
    steps = np.abs(np.diff(path, axis=0)).max(axis=1)
    assert (steps == 1).all()
    assert len({tuple(p) for p in path}) == len(path)


def test_scribble_goes_on_the_largest_component_and_skips_tiny_regions():
    region = np.zeros((40, 60), dtype=bool)
    region[5:10, 5:10] = True
    region[15:35, 20:55] = True
    scribble = scribble_map(region, np.random.default_rng(0))
    assert scribble.any() and not scribble[:12, :12].any()
    assert largest_component(region)[20, 30] and not largest_component(region)[7, 7]
    tiny = np.zeros((40, 60), dtype=bool)
    tiny[3:5, 3:5] = True
    assert not scribble_map(tiny, np.random.default_rng(0)).any()


def test_thick_scribbles_stay_inside_the_region():
    region = blob()
    scribble = scribble_map(region, np.random.default_rng(1), thickness=5)
    assert scribble.sum() > scribble_map(region, np.random.default_rng(1)).sum()
    assert not (scribble & ~region).any()


def test_first_round_marks_each_object_and_the_background():
    truth = np.zeros((64, 96), dtype=np.uint8)
    truth[10:50, 10:40] = 1
    truth[10:50, 60:90] = 2
    maps = first_round_maps(truth, 2, np.random.default_rng(0))
    assert maps[0, 0].any() and not (maps[0, 0] & (truth != 1)).any()
    assert maps[0, 1][truth == 2].any() and maps[0, 1][truth == 0].any()
    assert not (maps[0, 1] & (truth == 1)).any()


def test_davis_json_round_trip():
    truth = np.zeros((64, 96), dtype=np.uint8)
    truth[10:50, 10:40] = 1
    truth[10:50, 60:90] = 2
    rng = np.random.default_rng(0)
    paths = {k: scribble_path(truth == k, rng) for k in range(3)}
    data = to_davis_json("seq", num_frames=5, frame=3, paths=paths, height=64, width=96)
    assert scribbled_frames(data) == [3]
    assert {stroke["object_id"] for stroke in data["scribbles"][3]} == {0, 1, 2}
    maps = davis_json_maps(data, 3, 2, 64, 96)
    strokes = [rasterise([paths[k]], 64, 96) for k in range(3)]
    np.testing.assert_array_equal(maps[0, 0], strokes[1])
    np.testing.assert_array_equal(maps[0, 1], strokes[0] | strokes[2])
    np.testing.assert_array_equal(maps[1, 0], strokes[2])
    assert not davis_json_maps(data, 0, 2, 64, 96).any()
    half = davis_json_maps(data, 3, 2, 32, 48)  # normalised paths rasterise at any size
    assert half.shape == (2, 2, 32, 48) and half[0, 0][truth[::2, ::2] == 1].any()
