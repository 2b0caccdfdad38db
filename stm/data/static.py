"""Stage 1 data: clips synthesised from still images with instance masks (STM's pre-training).

Each clip is T copies of one image under one random crop and a different random affine per frame
(rotation, shear, scale, translation), an optional thin-plate-spline warp and colour jitter; the
masks go through the same geometry, so they stay aligned. Up to max_objects instances visible in the
first frame are kept.

Sources:
- folder: <root>/<images>/*.jpg|png with same-stem masks <root>/<masks>/*.png. Palette masks (VOC
  style) keep their ids (255, VOC's void border, stays void: no object, no loss); greyscale masks (salient-object
  sets: ECSSD, DUTS, MSRA) are one object, thresholded at 128.
- yolo: COCO converted to YOLO segmentation labels, as in coco128-seg: <root>/images/<sub>/x.jpg and
  <root>/labels/<sub>/x.txt, one instance per line "class x1 y1 x2 y2 ..." (coordinates in [0, 1]).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from stm.config import AugmentConfig, StaticSourceConfig
from stm.data.clips import Clip, pick_objects, renumber
from stm.data.io import FRAME_SUFFIXES, read_frame
from stm.data.transforms import augment_frame, clip_geometry, frames_to_tensor, labels_to_tensor
from stm.errors import StmError

ATTEMPTS = 5  # geometry draws tried until an object is visible in the first frame


def read_instance_mask(path: str | os.PathLike) -> np.ndarray:
    """Object ids uint8 [H, W] from a palette PNG (ids; 255 = void) or a greyscale/binary mask (one object)."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode == "P":
                return np.array(image, dtype=np.uint8)
            grey = np.array(image.convert("L"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise StmError(f"{path}: unreadable mask ({exc})") from None
    return (grey >= 128).astype(np.uint8)


def read_yolo_polygons(path: str | os.PathLike, size: tuple[int, int]) -> np.ndarray:
    """Rasterises a YOLO segmentation label file into object ids (line k -> id k + 1, later lines on top)."""
    height, width = size
    labels = np.zeros((height, width), dtype=np.uint8)
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise StmError(f"{path}: unreadable label file ({exc})") from None
    for number, line in enumerate((line for line in lines if line.strip()), start=1):
        values = line.split()
        try:
            points = np.array(values[1:], dtype=np.float64).reshape(-1, 2)
        except ValueError:
            raise StmError(f"{path}: line {number} is not 'class x1 y1 x2 y2 ...'") from None
        if len(points) < 3 or number > 255:
            continue
        pixels = np.round(points * (width, height) * 16).astype(np.int32)
        cv2.fillPoly(labels, [pixels], number, lineType=cv2.LINE_8, shift=4)
    return labels


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes and not p.name.startswith("."))


class StaticSource:
    """Clips from still images; see the module docstring for the layouts."""

    def __init__(
        self,
        config: StaticSourceConfig,
        size: tuple[int, int],
        frames: int,
        max_objects: int,
        augment: AugmentConfig,
    ):
        root = Path(config.root)
        self.name, self.kind = str(root), config.kind
        self.size, self.frames, self.max_objects, self.augment = tuple(size), frames, max_objects, augment
        image_dir = root / config.images
        label_dir = root / (config.masks or ("labels" if config.kind == "yolo" else "masks"))
        for folder in (image_dir, label_dir):
            if not folder.is_dir():
                raise StmError(f"{folder}: no such folder (static source {config.kind})")
        suffix = ".txt" if config.kind == "yolo" else ".png"
        self.items: list[tuple[Path, Path]] = []
        for image in _files(image_dir, FRAME_SUFFIXES):
            label = (label_dir / image.relative_to(image_dir)).with_suffix(suffix)
            if label.is_file() and (config.kind != "yolo" or label.stat().st_size > 0):
                self.items.append((image, label))
        if not self.items:
            raise StmError(f"{root}: no image with a matching {label_dir.name}/*{suffix} file")

    def __len__(self) -> int:
        return len(self.items)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The image [H, W, 3] and its object ids [H, W]."""
        image_path, label_path = self.items[index]
        image = read_frame(image_path)
        if self.kind == "yolo":
            labels = read_yolo_polygons(label_path, image.shape[:2])
        else:
            labels = read_instance_mask(label_path)
            if labels.shape != image.shape[:2]:
                raise StmError(f"{label_path}: mask is {labels.shape[::-1]}, its image {image.shape[1::-1]}")
        return image, labels

    def clip(self, index: int, rng: np.random.Generator, max_skip: int = 0) -> Clip:
        """T transformed copies of image `index` (max_skip has no meaning for still images)."""
        image, labels = self.read(index)
        return synthesise_clip(rng, image, labels, self.size, self.frames, self.max_objects, self.augment, self.name)


def synthesise_clip(
    rng: np.random.Generator,
    image: np.ndarray,
    labels: np.ndarray,
    size: tuple[int, int],
    frames: int,
    max_objects: int,
    augment: AugmentConfig,
    name: str = "",
) -> Clip:
    """A clip of `frames` random transforms of one image; objects are those visible in frame 1."""
    min_pixels = max(16, size[0] * size[1] // 1000)
    for _attempt in range(ATTEMPTS):
        matrices = clip_geometry(rng, labels.shape, size, augment, frames)
        first = augment_frame(rng, image, labels, matrices[0], size, augment)
        chosen = pick_objects(rng, first[1], max_objects, min_pixels)
        if chosen:
            break
    outputs = [first] + [augment_frame(rng, image, labels, m, size, augment) for m in matrices[1:]]
    return Clip(
        frames_to_tensor([out[0] for out in outputs]),
        labels_to_tensor([renumber(out[1], chosen) for out in outputs]),
        len(chosen),
        name,
    )

