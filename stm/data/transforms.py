"""Geometric and photometric transforms shared by the static and the video clip makers.

Geometry is composed as 3x3 matrices (crop, flip, per-frame affine) and applied once per frame with
the same matrix to the image (bilinear) and to the object ids (nearest), so masks stay aligned with
their frames. Outside the source image both are 0 (black, background). The thin-plate-spline warp
also maps image and ids through one shared sampling grid.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from stm.config import AugmentConfig


def crop_matrix(
    rng: np.random.Generator, in_size: tuple[int, int], out_size: tuple[int, int], area: tuple[float, float]
) -> np.ndarray:
    """A random crop of the image scaled to cover `out_size`: the crop's area is a fraction in `area`
    of the largest crop with the output's aspect ratio. Returns the 3x3 source -> output matrix."""
    (in_h, in_w), (out_h, out_w) = in_size, out_size
    fraction = rng.uniform(*area)
    scale = max(out_h / in_h, out_w / in_w) / np.sqrt(max(fraction, 1e-6))
    x0 = rng.uniform(0, max(in_w - out_w / scale, 0))
    y0 = rng.uniform(0, max(in_h - out_h / scale, 0))
    return np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale], [0, 0, 1]])


def flip_matrix(width: int) -> np.ndarray:
    """Horizontal mirror of an image `width` pixels wide."""
    return np.array([[-1.0, 0, width - 1], [0, 1, 0], [0, 0, 1]])


def affine_about_centre(
    size: tuple[int, int], rotation: float = 0.0, shear: float = 0.0, scale: float = 1.0, shift: tuple[float, float] = (0, 0)
) -> np.ndarray:
    """Rotation and shear (degrees) and scale about the image centre, then a shift (dx, dy) in pixels."""
    height, width = size
    centre = np.array([[1, 0, (width - 1) / 2], [0, 1, (height - 1) / 2], [0, 0, 1]])
    angle, slant = np.deg2rad(rotation), np.deg2rad(shear)
    rotate = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    skew = np.array([[1, np.tan(slant), 0], [0, 1, 0], [0, 0, 1]])
    linear = rotate @ skew @ np.diag([scale, scale, 1.0])
    move = np.array([[1, 0, shift[0]], [0, 1, shift[1]], [0, 0, 1]])
    return move @ centre @ linear @ np.linalg.inv(centre)


def random_affine(rng: np.random.Generator, size: tuple[int, int], augment: AugmentConfig) -> np.ndarray:
    """A per-frame affine drawn from the config's ranges (about the output centre)."""
    height, width = size
    shift = rng.uniform(-augment.translate, augment.translate, size=2) * (width, height)
    return affine_about_centre(
        size,
        rotation=rng.uniform(-augment.rotation, augment.rotation),
        shear=rng.uniform(-augment.shear, augment.shear),
        scale=rng.uniform(*augment.scale),
        shift=(shift[0], shift[1]),
    )


def warp(image: np.ndarray, labels: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Applies the 3x3 source -> output matrix to an image [H, W, 3] and its ids [H, W]."""
    height, width = size
    affine = matrix[:2].astype(np.float64)
    out_image = cv2.warpAffine(image, affine, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)
    out_labels = cv2.warpAffine(labels, affine, (width, height), flags=cv2.INTER_NEAREST, borderValue=0)
    return out_image, out_labels


def tps_grid(
    rng: np.random.Generator, size: tuple[int, int], strength: float, points: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Sampling maps (map_x, map_y) of a random thin-plate-spline warp: a `points` x `points` grid of
    control points, each moved by up to `strength` of the image size; the spline interpolates the
    moves (with an affine part) everywhere else."""
    height, width = size
    axis = np.linspace(0, 1, points)
    target = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    source = target + rng.uniform(-strength, strength, size=target.shape)
    count = len(target)

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        squared = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.where(squared > 0, squared * np.log(np.maximum(squared, 1e-12)) / 2, 0.0)

    system = np.zeros((count + 3, count + 3))
    system[:count, :count] = kernel(target, target)
    system[:count, count] = 1
    system[:count, count + 1 :] = target
    system[count, :count] = 1
    system[count + 1 :, :count] = target.T
    rhs = np.zeros((count + 3, 2))
    rhs[:count] = source
    weights = np.linalg.solve(system, rhs)
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = np.stack([xx.ravel() / max(width - 1, 1), yy.ravel() / max(height - 1, 1)], -1)
    mapped = kernel(pixels, target) @ weights[:count] + weights[count] + pixels @ weights[count + 1 :]
    map_x = (mapped[:, 0] * (width - 1)).reshape(height, width).astype(np.float32)
    map_y = (mapped[:, 1] * (height - 1)).reshape(height, width).astype(np.float32)
    return map_x, map_y


def remap(image: np.ndarray, labels: np.ndarray, maps: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Samples image (bilinear) and ids (nearest) through the same maps."""
    out_image = cv2.remap(image, *maps, interpolation=cv2.INTER_LINEAR, borderValue=0)
    out_labels = cv2.remap(labels, *maps, interpolation=cv2.INTER_NEAREST, borderValue=0)
    return out_image, out_labels


def colour_jitter(rng: np.random.Generator, image: np.ndarray, amount: float) -> np.ndarray:
    """Random brightness, contrast, saturation (factors in 1 +- amount) and hue (+- amount / 5 of a turn)
    of a uint8 RGB image."""
    if amount <= 0:
        return image
    rgb = image.astype(np.float32) / 255
    rgb = rgb * rng.uniform(1 - amount, 1 + amount)
    mean = rgb.mean()
    rgb = (rgb - mean) * rng.uniform(1 - amount, 1 + amount) + mean
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    rgb = (rgb - grey[..., None]) * rng.uniform(1 - amount, 1 + amount) + grey[..., None]
    hsv = cv2.cvtColor(np.clip(rgb, 0, 1), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-amount, amount) * 72) % 360
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def clip_geometry(
    rng: np.random.Generator, in_size: tuple[int, int], out_size: tuple[int, int], augment: AugmentConfig, frames: int
) -> list[np.ndarray]:
    """One crop (and maybe a flip) shared by the clip, composed with a fresh affine per frame."""
    shared = crop_matrix(rng, in_size, out_size, tuple(augment.crop_scale))
    if rng.random() < augment.flip:
        shared = flip_matrix(out_size[1]) @ shared
    return [random_affine(rng, out_size, augment) @ shared for _ in range(frames)]


def augment_frame(
    rng: np.random.Generator,
    image: np.ndarray,
    labels: np.ndarray,
    matrix: np.ndarray,
    out_size: tuple[int, int],
    augment: AugmentConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Geometry (affine, then a thin-plate warp with probability augment.tps) and colour for one frame."""
    image, labels = warp(image, labels, matrix, out_size)
    if augment.tps > 0 and rng.random() < augment.tps:
        image, labels = remap(image, labels, tps_grid(rng, out_size, augment.tps_strength))
    return colour_jitter(rng, image, augment.colour), labels


def frames_to_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    """uint8 RGB frames [H, W, 3] -> float [T, 3, H, W] in [0, 1]."""
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255)


def labels_to_tensor(labels: list[np.ndarray]) -> torch.Tensor:
    """uint8 ids [H, W] per frame -> uint8 [T, H, W]."""
    return torch.from_numpy(np.stack(labels))
