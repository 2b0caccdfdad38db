import numpy as np
import pytest
from PIL import Image

from stm.data.io import (
    DAVIS_PALETTE,
    davis_sequence,
    davis_sequence_names,
    read_frame,
    read_mask,
    without_void,
    write_frame,
    write_mask,
)
from stm.errors import StmError


def test_davis_palette_is_the_pascal_colour_map():
    colours = np.frombuffer(DAVIS_PALETTE, dtype=np.uint8).reshape(256, 3)
    assert colours[0].tolist() == [0, 0, 0]
    assert colours[1].tolist() == [128, 0, 0]
    assert colours[2].tolist() == [0, 128, 0]
    assert colours[3].tolist() == [128, 128, 0]
    assert colours[255].tolist() == [224, 224, 192]


def test_palette_masks_round_trip(tmp_path):
    ids = np.random.default_rng(0).integers(0, 12, size=(31, 47)).astype(np.uint8)
    path = tmp_path / "00000.png"
    write_mask(path, ids)
    with Image.open(path) as image:
        assert image.mode == "P"
        assert image.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
    assert np.array_equal(read_mask(path), ids)


def test_davis2016_binary_masks_read_as_one_object(tmp_path):
    ids = np.zeros((20, 30), dtype=np.uint8)
    ids[5:10, 5:20] = 255
    Image.fromarray(ids, mode="L").save(tmp_path / "m.png")
    assert set(np.unique(read_mask(tmp_path / "m.png")).tolist()) == {0, 1}


def test_void_reads_as_255_and_without_void_makes_it_background(tmp_path):
    ids = np.zeros((6, 8), dtype=np.uint8)
    ids[1:3, 1:3], ids[4:, 4:], ids[0, :] = 1, 2, 255  # 255: DAVIS void
    write_mask(tmp_path / "m.png", ids)
    read = read_mask(tmp_path / "m.png")
    assert read[0].tolist() == [255] * 8  # read as it is on disk
    cleaned = without_void(read)
    assert cleaned.dtype == np.uint8 and set(np.unique(cleaned).tolist()) == {0, 1, 2}
    assert np.array_equal(cleaned[1:], ids[1:]) and not cleaned[0].any()


def test_colour_masks_are_refused(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(StmError, match=r"rgb\.png: mask must be"):
        read_mask(tmp_path / "rgb.png")


def test_truncated_and_missing_frames_name_the_file(tmp_path):
    path = tmp_path / "00003.jpg"
    write_frame(path, np.full((64, 64, 3), 120, dtype=np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StmError, match=r"00003\.jpg: unreadable image"):
        read_frame(path)
    with pytest.raises(StmError, match=r"absent\.jpg: unreadable image"):
        read_frame(tmp_path / "absent.jpg")


def test_davis_layout_listing(tmp_path):
    for name in ("b", "a"):
        for t in range(3):
            write_frame(tmp_path / "JPEGImages" / "480p" / name / f"{t:05d}.jpg", np.zeros((8, 8, 3), np.uint8))
        write_mask(tmp_path / "Annotations" / "480p" / name / "00000.png", np.ones((8, 8), np.uint8))
    assert davis_sequence_names(tmp_path) == ["a", "b"]
    (tmp_path / "ImageSets" / "2017").mkdir(parents=True)
    (tmp_path / "ImageSets" / "2017" / "val.txt").write_text("b\n")
    assert davis_sequence_names(tmp_path, 2017, "val") == ["b"]
    assert davis_sequence_names(tmp_path, names=["a"]) == ["a"]
    sequence = davis_sequence(tmp_path, "a")
    assert len(sequence) == 3 and list(sequence.masks) == [0]
    with pytest.raises(StmError, match="sequence listed but its folder does not exist"):
        davis_sequence_names(tmp_path, names=["zzz"])
    with pytest.raises(StmError, match="not a DAVIS-layout folder"):
        davis_sequence_names(tmp_path / "JPEGImages")
