import numpy as np

from stm.data.io import davis_sequence, davis_sequence_names, read_frame, read_mask
from stm.data.synthetic import SyntheticSpec, ensure_synthetic_davis, render_video, write_davis_sequence

SMALL = SyntheticSpec(height=64, width=96, min_frames=8, max_frames=10)


def test_videos_have_visible_moving_objects_in_the_first_frame():
    rng = np.random.default_rng(3)
    for _ in range(4):
        frames, labels = render_video(rng, SMALL)
        assert frames.shape[1:] == (64, 96, 3) and frames.dtype == np.uint8
        assert labels.shape == frames.shape[:3]
        count = labels.max()
        assert 1 <= count <= 3
        assert set(np.unique(labels[0]).tolist()) == set(range(count + 1))  # every object visible at t = 0
        moved = [np.count_nonzero((labels[0] == k) != (labels[-1] == k)) for k in range(1, count + 1)]
        assert min(moved) > 0


def test_generation_is_deterministic_and_happens_once(tmp_path):
    root = ensure_synthetic_davis(tmp_path / "syn", SMALL, train=2, val=1, seed=5)
    assert davis_sequence_names(root, split="train") == ["train-000", "train-001"]
    assert davis_sequence_names(root, split="val") == ["val-000"]
    sequence = davis_sequence(root, "val-000")
    assert len(sequence.masks) == len(sequence.frames)  # every frame annotated
    assert read_frame(sequence.frames[0]).shape == (64, 96, 3)
    first = read_mask(sequence.masks[3])
    stamp = (root / "synthetic.json").stat().st_mtime_ns
    ensure_synthetic_davis(root, SMALL, train=2, val=1, seed=5)
    assert (root / "synthetic.json").stat().st_mtime_ns == stamp  # not regenerated
    again = ensure_synthetic_davis(tmp_path / "other", SMALL, train=2, val=1, seed=5)
    assert np.array_equal(read_mask(davis_sequence(again, "val-000").masks[3]), first)


def test_frames_are_stored_near_losslessly(tmp_path):
    frames, labels = render_video(np.random.default_rng(7), SMALL)
    write_davis_sequence(tmp_path, "v", frames[:3], labels[:3])
    sequence = davis_sequence(tmp_path, "v")
    for t in range(3):
        error = np.abs(read_frame(sequence.frames[t]).astype(float) - frames[t]).mean()
        assert error < 1.0  # quality 95 with 4:2:0 colour is about 5 levels off on such frames
        assert np.array_equal(read_mask(sequence.masks[t]), labels[t])
