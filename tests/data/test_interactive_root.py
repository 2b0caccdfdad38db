"""make_interactive_root: palette annotations, first scribbles inside each object and the background."""

import json

import numpy as np
import pytest
from PIL import Image

from stm.data.interactive_root import make_interactive_root
from stm.data.io import read_mask, write_frame
from stm.data.scribbles import davis_json_maps, scribble_frame
from stm.errors import StmError


def davis16_like(root, frames=4):
    """One sequence with DAVIS 2016 style masks: 0/255 greyscale, one saved with an alpha channel."""
    for t in range(frames):
        write_frame(root / "JPEGImages" / "480p" / "seq" / f"{t:05d}.jpg", np.full((40, 60, 3), 90, np.uint8))
        mask = np.zeros((40, 60), dtype=np.uint8)
        mask[10 : 20 + 3 * t, 10:40] = 255
        image = Image.fromarray(mask, mode="L")
        (root / "Annotations" / "480p" / "seq").mkdir(parents=True, exist_ok=True)
        (image.convert("LA") if t == 1 else image).save(root / "Annotations" / "480p" / "seq" / f"{t:05d}.png")


def test_root_gets_palette_masks_and_first_scribbles(tmp_path):
    davis16_like(tmp_path / "src")
    assert make_interactive_root(tmp_path / "src", tmp_path / "dst") == ["seq"]
    annotation = tmp_path / "dst" / "Annotations" / "480p" / "seq" / "00001.png"
    with Image.open(annotation) as image:
        assert image.mode == "P" and set(np.unique(np.asarray(image))) == {0, 1}
    data = json.loads((tmp_path / "dst" / "Scribbles" / "seq" / "001.json").read_text())
    assert data["sequence"] == "seq" and len(data["scribbles"]) == 4
    frame = 3  # the object is largest in the last frame
    assert [i for i, s in enumerate(data["scribbles"]) if s] == [frame]
    truth = read_mask(tmp_path / "dst" / "Annotations" / "480p" / "seq" / f"{frame:05d}.png")
    maps = davis_json_maps(data, frame, 1, 40, 60)
    assert maps[0, 0].any() and not (maps[0, 0] & (truth != 1)).any()
    assert maps[0, 1].any() and not (maps[0, 1] & (truth == 1)).any()
    assert (tmp_path / "dst" / "ImageSets" / "2017" / "val.txt").read_text() == "seq\n"


def test_scaled_root_and_refusals(tmp_path):
    davis16_like(tmp_path / "src")
    make_interactive_root(tmp_path / "src", tmp_path / "half", scale=0.5)
    assert read_mask(tmp_path / "half" / "Annotations" / "480p" / "seq" / "00000.png").shape == (20, 30)
    with pytest.raises(StmError, match="new folder"):
        make_interactive_root(tmp_path / "src", tmp_path / "src")
    (tmp_path / "src" / "Annotations" / "480p" / "seq" / "00002.png").unlink()
    with pytest.raises(StmError, match="00002"):
        make_interactive_root(tmp_path / "src", tmp_path / "other")


def test_scribble_frame_prefers_every_object_visible():
    labels = np.zeros((3, 10, 10), dtype=np.uint8)
    labels[0, :5] = 1  # object 2 missing
    labels[1, :2], labels[1, 5:7] = 1, 2
    labels[2, :4], labels[2, 5:9] = 1, 2
    assert scribble_frame(labels, 2) == 2
