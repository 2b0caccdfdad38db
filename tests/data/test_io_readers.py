import json

import numpy as np
import pytest

from stm.data.io import check_mask_size, davis_sequence_names, write_frame, write_mask
from stm.data.youtube import youtube_video, youtube_video_names
from stm.errors import StmError


def _frames(folder, names):
    for name in names:
        write_frame(folder / f"{name}.jpg", np.zeros((8, 12, 3), np.uint8))


def test_davis2016_listing_of_frame_paths(tmp_path):
    for name in ("bear", "cows", "dog"):
        _frames(tmp_path / "JPEGImages" / "480p" / name, ["00000"])
    listing = tmp_path / "ImageSets" / "480p" / "val.txt"
    listing.parent.mkdir(parents=True)
    listing.write_text(
        "/JPEGImages/480p/dog/00000.jpg /Annotations/480p/dog/00000.png\n"
        "/JPEGImages/480p/dog/00001.jpg /Annotations/480p/dog/00001.png\n"
        "/JPEGImages/480p/bear/00000.jpg /Annotations/480p/bear/00000.png\n"
    )
    assert davis_sequence_names(tmp_path, 2016, "val") == ["dog", "bear"]
    (tmp_path / "ImageSets" / "2016").mkdir()
    (tmp_path / "ImageSets" / "2016" / "val.txt").write_text("cows\n")
    assert davis_sequence_names(tmp_path, 2016, "val") == ["cows"]


def test_youtube_layout_with_meta_and_dense_frames(tmp_path):
    scored = ["00000", "00005", "00010"]
    _frames(tmp_path / "valid" / "JPEGImages" / "v2", scored)
    _frames(tmp_path / "valid" / "JPEGImages" / "v1", scored)
    _frames(tmp_path / "valid_all_frames" / "JPEGImages" / "v1", [f"{i:05d}" for i in range(11)])
    write_mask(tmp_path / "valid" / "Annotations" / "v1" / "00000.png", np.ones((8, 12), np.uint8))
    write_mask(tmp_path / "valid" / "Annotations" / "v1" / "00005.png", np.full((8, 12), 4, np.uint8))
    assert youtube_video_names(tmp_path) == ["v1", "v2"]
    (tmp_path / "valid" / "meta.json").write_text(json.dumps({"videos": {"v1": {"objects": {}}}}))
    assert youtube_video_names(tmp_path) == ["v1"]
    sparse = youtube_video(tmp_path, "valid", "v1")
    assert [p.stem for p in sparse.frames] == scored and sorted(sparse.masks) == [0, 1]
    dense = youtube_video(tmp_path, "valid", "v1", all_frames=True)
    assert len(dense.frames) == 11 and sorted(dense.masks) == [0, 5] and dense.outputs == scored
    with pytest.raises(StmError, match="no frames for --all-frames"):
        youtube_video(tmp_path, "valid", "v2", all_frames=True)
    (tmp_path / "valid" / "meta.json").write_text("{")
    with pytest.raises(StmError, match=r"meta\.json: not a YouTube-VOS meta\.json"):
        youtube_video_names(tmp_path)
    with pytest.raises(StmError, match="not a YouTube-VOS folder"):
        youtube_video_names(tmp_path / "valid")


def test_mask_size_check_names_the_mask(tmp_path):
    check_mask_size(tmp_path / "m.png", np.zeros((4, 5)), tmp_path / "f.jpg", np.zeros((4, 5, 3)))
    with pytest.raises(StmError, match=r"m\.png: mask is 5x4 but its frame f\.jpg is 6x4"):
        check_mask_size(tmp_path / "m.png", np.zeros((4, 5)), tmp_path / "f.jpg", np.zeros((4, 6, 3)))
