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


def test_every_writer_flushes_its_file_to_disk_before_renaming_it_into_place(tmp_path, monkeypatch):
    """One atomic writer (stm.data.io.atomic_write) for outputs, checkpoints and run folders: the data is
    fsync'ed before the rename, so a power loss leaves the old file or the new one, never an empty one."""
    import os

    import torch

    from stm.evaluation.metrics import ObjectResult, write_results
    from stm.evaluation.writers import OverlayVideo, write_prediction, write_scores, zip_submission
    from stm.model.checkpoint import save_checkpoint
    from stm.train.run_folder import RunFolder

    synced, renamed = set(), []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        synced.add(os.fstat(fd).st_ino)
        real_fsync(fd)

    def replace(source, target):
        renamed.append((os.stat(source).st_ino, os.path.basename(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    ids = np.zeros((16, 24), dtype=np.uint8)
    ids[4:10, 4:12] = 1
    write_mask(tmp_path / "mask.png", ids)
    write_frame(tmp_path / "frame.jpg", np.zeros((16, 24, 3), dtype=np.uint8))
    write_prediction(tmp_path / "Annotations" / "v" / "prediction.png", ids)
    write_scores(tmp_path / "scores.npz", np.ones((2, 16, 24)) / 2)
    video = OverlayVideo(tmp_path / "overlay.mp4")
    video.add(np.zeros((16, 24, 3), dtype=np.uint8), ids)
    video.close()
    zip_submission(tmp_path / "Annotations", tmp_path / "submission.zip")
    write_results(tmp_path, "val", [ObjectResult("v", 1, np.ones(3), np.ones(3))])
    save_checkpoint(tmp_path / "model.pth", torch.nn.Linear(2, 2))
    run = RunFolder(tmp_path / "run")
    run.write_config({"a": 1})
    run.save({"step": 1}, 1)
    run.write_curve([{"step": 1, "J&F": 0.5}])
    names = {name for _, name in renamed}
    assert names >= {
        "mask.png", "frame.jpg", "prediction.png", "scores.npz", "overlay.mp4", "submission.zip", "model.pth",
        "global_results-val.csv", "per-sequence_results-val.csv", "config.yaml", "latest.pth", "curve.csv",
        "curve.json",
    }
    unsynced = sorted(name for inode, name in renamed if inode not in synced)
    assert not unsynced
    assert not [p.name for p in tmp_path.rglob(".*")]  # no temporary file left behind
