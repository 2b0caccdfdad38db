import numpy as np
import pytest
from PIL import Image

from stm.config import AugmentConfig, DataConfig, StaticSourceConfig
from stm.data.io import write_mask
from stm.data.static import StaticSource, read_instance_mask, read_yolo_polygons, synthesise_clip
from stm.errors import StmError


def test_the_clip_keeps_masks_aligned_with_frames_under_every_transform():
    """Object pixels are red and background blue: after crop, affine, thin-plate warp and flip, the
    mask must still cover the red pixels of every frame."""
    labels = np.zeros((60, 80), dtype=np.uint8)
    labels[10:30, 10:35], labels[35:55, 45:75] = 1, 2
    image = np.zeros((60, 80, 3), dtype=np.uint8)
    image[..., 2] = 255
    image[labels > 0] = (255, 0, 0)
    augment = AugmentConfig(
        crop_scale=[0.6, 1.0], rotation=20, shear=10, scale=[0.9, 1.1], translate=0.1, tps=1.0, colour=0
    )
    clip = synthesise_clip(np.random.default_rng(0), image, labels, (48, 64), 3, 2, augment)
    assert clip.frames.shape == (3, 3, 48, 64) and clip.labels.shape == (3, 48, 64) and clip.objects == 2
    for frame, ids in zip(clip.frames, clip.labels, strict=True):
        red, blue, objects = frame[0] > 0.5, frame[2] > 0.5, ids.numpy() > 0
        assert (red.numpy() == objects).mean() > 0.97
        assert (blue.numpy() & objects).sum() < 0.05 * objects.sum()  # only edge pixels blend
    assert not np.array_equal(clip.labels[0], clip.labels[1])  # the frames differ


def test_max_objects_keeps_a_subset_renumbered_from_one():
    labels = np.zeros((40, 40), dtype=np.uint8)
    for k in range(4):
        labels[2 + 9 * k : 9 + 9 * k, 5:35] = k + 1
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    clip = synthesise_clip(np.random.default_rng(1), image, labels, (32, 32), 3, 2, AugmentConfig(crop_scale=[1, 1]))
    assert clip.objects == 2 and set(np.unique(clip.labels[0].numpy())) == {0, 1, 2}


def test_folder_masks_palette_and_greyscale(tmp_path):
    ids = np.zeros((20, 30), dtype=np.uint8)
    ids[2:8, 3:9], ids[10:15, 10:20], ids[0, :] = 1, 2, 255  # 255: VOC's void border
    write_mask(tmp_path / "palette.png", ids)
    assert set(np.unique(read_instance_mask(tmp_path / "palette.png"))) == {0, 1, 2, 255}  # void kept for the loss
    grey = np.zeros((20, 30), dtype=np.uint8)
    grey[5:10, 5:10] = 200  # salient-object masks are soft greyscale
    grey[5, 5] = 90
    Image.fromarray(grey).save(tmp_path / "grey.png")
    assert read_instance_mask(tmp_path / "grey.png").sum() == 24

    (tmp_path / "set" / "images").mkdir(parents=True)
    (tmp_path / "set" / "masks").mkdir()
    Image.fromarray(np.full((20, 30, 3), 90, dtype=np.uint8)).save(tmp_path / "set" / "images" / "a.jpg")
    write_mask(tmp_path / "set" / "masks" / "a.png", ids)
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(tmp_path / "set" / "images" / "no-mask.jpg")
    source = StaticSource(StaticSourceConfig(root=str(tmp_path / "set")), (16, 16), 3, 3, DataConfig().static_augment)
    assert len(source) == 1
    assert source.clip(0, np.random.default_rng(0)).frames.shape == (3, 3, 16, 16)


def test_yolo_polygons_land_where_their_coordinates_say(tmp_path):
    label = tmp_path / "x.txt"
    label.write_text("0 0.1 0.2 0.5 0.2 0.5 0.6 0.1 0.6\n3 0.6 0.6 0.9 0.6 0.9 0.9\n")
    ids = read_yolo_polygons(label, (50, 100))
    ys, xs = np.nonzero(ids == 1)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (10, 30, 10, 50)
    assert (ids == 2).sum() > 0 and ids[55 // 2, 95 * 0 + 88] == 0
    label.write_text("0 0.1 zero\n")
    with pytest.raises(StmError, match="x.txt: line 1"):
        read_yolo_polygons(label, (50, 100))


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(StmError, match="no such folder"):
        StaticSource(StaticSourceConfig(root=str(tmp_path)), (16, 16), 3, 3, AugmentConfig())


def test_coco128_seg_gives_clips(shared_data):
    config = StaticSourceConfig(root=str(shared_data / "coco128-seg"), kind="yolo")
    source = StaticSource(config, (64, 64), 3, 3, DataConfig().static_augment)
    assert len(source) > 100
    clip = source.clip(0, np.random.default_rng(0))
    assert clip.frames.shape == (3, 3, 64, 64) and 1 <= clip.objects <= 3


def test_void_border_is_kept_as_void_and_never_becomes_an_object():
    labels = np.zeros((40, 40), dtype=np.uint8)
    labels[5:20, 5:20], labels[22:35, 22:35] = 1, 2
    labels[4:21, 4], labels[:, 39] = 255, 255  # VOC-style void: a border and a whole column
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    augment = AugmentConfig(crop_scale=[1, 1], rotation=0, shear=0, scale=[1, 1], translate=0, tps=0, flip=0)
    clip = synthesise_clip(np.random.default_rng(0), image, labels, (40, 40), 3, 3, augment)
    assert clip.objects == 2
    assert set(np.unique(clip.labels.numpy()).tolist()) == {0, 1, 2, 255}
    assert (clip.labels[:, :, 39] == 255).all()
