import shutil

import numpy as np
import pytest

from stm.config import AugmentConfig, VideoSourceConfig
from stm.data.io import read_mask, write_mask
from stm.data.synthetic import SyntheticSpec, ensure_synthetic_davis
from stm.data.video import VideoSource, sample_frame_indices
from stm.errors import StmError

SMALL = SyntheticSpec(height=32, width=48, min_frames=12, max_frames=14, max_objects=3)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return ensure_synthetic_davis(tmp_path_factory.mktemp("v") / "syn", SMALL, train=2, val=1, seed=2)


def test_frame_indices_are_ordered_and_respect_max_skip():
    rng = np.random.default_rng(0)
    seen_gaps = set()
    for _ in range(500):
        indices = sample_frame_indices(rng, 30, 3, 4)
        gaps = np.diff(indices)
        assert indices[0] >= 0 and indices[-1] < 30 and gaps.min() >= 1 and gaps.max() <= 5
        seen_gaps.update(gaps.tolist())
    assert seen_gaps == {1, 2, 3, 4, 5}  # every allowed gap happens
    assert np.diff(sample_frame_indices(rng, 10, 3, 0)).tolist() == [1, 1]
    assert sample_frame_indices(rng, 3, 3, 25) == [0, 1, 2]  # a short video shrinks the skip


def frame_numbers(clip) -> list[int]:
    return [int(i) for i in clip.name.split(":")[1].split(",")]


def test_clips_are_in_temporal_order_forwards_or_backwards(videos):
    source = VideoSource(VideoSourceConfig(root=str(videos)), (32, 48), 3, 2, AugmentConfig())
    directions = set()
    for seed in range(40):
        clip = source.clip(seed % len(source), np.random.default_rng(seed), max_skip=3)
        numbers = frame_numbers(clip)
        gaps = np.diff(numbers)
        assert np.all(np.abs(gaps) >= 1) and np.all(np.abs(gaps) <= 4) and len(set(np.sign(gaps))) == 1
        directions.add(int(np.sign(gaps[0])))
        assert clip.frames.shape == (3, 3, 32, 48) and 1 <= clip.objects <= 2
        assert set(np.unique(clip.labels[0].numpy())) == set(range(clip.objects + 1))
    assert directions == {-1, 1}  # random time reversal


def test_youtube_layout_divides_the_skip_by_five(videos, tmp_path):
    for part in ("JPEGImages", "Annotations"):
        shutil.copytree(videos / part / "480p", tmp_path / "train" / part)
    source = VideoSource(VideoSourceConfig(root=str(tmp_path), kind="youtube"), (32, 48), 3, 2, AugmentConfig())
    assert len(source) == 3  # every video folder of the split
    for seed in range(20):
        gaps = np.abs(np.diff(frame_numbers(source.clip(0, np.random.default_rng(seed), max_skip=9))))
        assert gaps.max() <= 2  # 9 // 5 = 1 frame skipped at most


def test_youtube_training_reads_the_layout_as_evaluation_does(videos, tmp_path):
    """One YouTube-VOS reader (stm.data.youtube): hidden files such as macOS "._00000.jpg" are not frames,
    and meta.json, when present, lists the videos."""
    for part in ("JPEGImages", "Annotations"):
        shutil.copytree(videos / part / "480p", tmp_path / "train" / part)
    (tmp_path / "train" / "JPEGImages" / "train-000" / "._00000.jpg").write_bytes(b"\0\0 not an image")
    (tmp_path / "train" / "meta.json").write_text('{"videos": {"train-000": {}, "train-001": {}}}')
    source = VideoSource(VideoSourceConfig(root=str(tmp_path), kind="youtube"), (32, 48), 3, 2, AugmentConfig())
    assert [name for name, _ in source.videos] == ["train-000", "train-001"]
    frames = [frame.name for frame, _ in source.videos[0][1]]
    assert frames == sorted(p.name for p in (videos / "JPEGImages" / "480p" / "train-000").iterdir())


def test_bad_dataset_folders_are_named(tmp_path, videos):
    with pytest.raises(StmError, match="no such dataset folder"):
        VideoSource(VideoSourceConfig(root=str(tmp_path / "absent")), (32, 48), 3, 2, AugmentConfig())
    with pytest.raises(StmError, match="not a DAVIS-layout folder"):
        VideoSource(VideoSourceConfig(root=str(tmp_path)), (32, 48), 3, 2, AugmentConfig())
    with pytest.raises(StmError, match="no usable video"):
        VideoSource(VideoSourceConfig(root=str(videos)), (32, 48), 20, 2, AugmentConfig())


def test_davis16_sample_gives_clips(shared_data):
    source = VideoSource(
        VideoSourceConfig(root=str(shared_data / "davis16-train-sample")), (64, 96), 3, 2, AugmentConfig()
    )
    clip = source.clip(0, np.random.default_rng(0), max_skip=25)
    assert clip.frames.shape == (3, 3, 64, 96) and clip.objects == 1


def test_void_is_never_picked_and_reaches_the_loss_as_void(tmp_path):
    root = ensure_synthetic_davis(tmp_path / "syn", SMALL, train=1, val=0, seed=4)
    for path in root.glob("Annotations/480p/*/*.png"):
        labels = read_mask(path)
        labels[:, :8] = 255  # a void band wider than any object
        write_mask(path, labels)
    still = AugmentConfig(crop_scale=[1, 1], rotation=0, shear=0, scale=[1, 1], translate=0, tps=0, flip=0, colour=0)
    source = VideoSource(VideoSourceConfig(root=str(root), split="train"), (32, 48), 3, 3, still)
    for seed in range(10):
        clip = source.clip(0, np.random.default_rng(seed), max_skip=2)
        assert set(np.unique(clip.labels.numpy()).tolist()) <= {*range(clip.objects + 1), 255}
        assert clip.objects <= 3 and (clip.labels[:, :, :8] == 255).all()
