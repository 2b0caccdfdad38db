"""Scribbles: synthesised from a region (training, first interactions), read from and written as DAVIS JSON.

A user draws a stroke along the middle of the part they want to fix. For the first interaction we imitate
that: thin the region to its skeleton with Guo-Hall thinning (`skimage.morphology.thin`), then walk
randomly along the skeleton from a random point, in both directions, for a random length: one stroke
inside each object and one on the background, on the frame where every object is best visible (as DAVIS
ships its first scribbles). Later corrections come from the DAVIS robot itself
(`stm.evaluation.davis_robot.robot_scribbles`). Every map is a binary [H, W] image; per object, positive
and negative maps are stacked as [N, 2, H, W] (what the memory encoder takes).

DAVIS scribble JSON (what davisinteractive's robot returns and `Scribbles/<seq>/NNN.json` holds):
{"sequence": name, "scribbles": [per frame: [{"path": [[x / W, y / H], ...], "object_id": k,
"start_time": t0, "end_time": t1}, ...]]}, object_id 0 being the background. For object k a
scribble with object_id k is positive; any other id (background or another object) is negative.
"""

from __future__ import annotations

import time
import zlib

import cv2
import numpy as np
from scipy import ndimage
from skimage.morphology import thin

from stm.data.io import without_void

# 8-neighbourhood offsets, in (dy, dx).
_NEIGHBOURS = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)])


def largest_component(region: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a binary map (empty stays empty)."""
    labels, count = ndimage.label(region, structure=np.ones((3, 3)))
    if count <= 1:
        return labels > 0
    sizes = np.bincount(labels.ravel())[1:]
    return labels == 1 + int(sizes.argmax())


def _walk(skeleton: np.ndarray, start: tuple[int, int], steps: int, rng: np.random.Generator, seen: set) -> list:
    """Random walk on skeleton pixels from `start`, never revisiting a pixel, for at most `steps` moves."""
    height, width = skeleton.shape
    path = [start]
    seen.add(start)
    y, x = start
    for _ in range(steps):
        options = [
            (y + dy, x + dx)
            for dy, dx in _NEIGHBOURS
            if 0 <= y + dy < height
            and 0 <= x + dx < width
            and skeleton[y + dy, x + dx]
            and (y + dy, x + dx) not in seen
        ]
        if not options:
            break
        y, x = options[int(rng.integers(len(options)))]
        seen.add((y, x))
        path.append((y, x))
    return path


def scribble_path(
    region: np.ndarray, rng: np.random.Generator, min_area: int = 16, length: tuple[float, float] = (0.5, 1.0)
) -> np.ndarray:
    """An ordered scribble path [(y, x), ...] on the skeleton of the region's largest component.

    The walk goes both ways from a random skeleton pixel; each direction may take up to a random
    fraction (`length`) of the skeleton's pixel count, so strokes vary from short to the whole
    skeleton. Returns an empty [0, 2] array when the component is smaller than `min_area` pixels."""
    component = largest_component(np.asarray(region, dtype=bool))
    if component.sum() < max(min_area, 1):
        return np.zeros((0, 2), dtype=np.int64)
    skeleton = thin(component)
    points = np.argwhere(skeleton)
    start = tuple(int(v) for v in points[int(rng.integers(len(points)))])
    steps = max(1, int(rng.uniform(*length) * len(points)))
    seen: set = set()
    forward = _walk(skeleton, start, steps, rng, seen)
    backward = _walk(skeleton, start, steps, rng, seen)
    return np.array(backward[::-1] + forward[1:], dtype=np.int64)


def rasterise(paths: list[np.ndarray], height: int, width: int, thickness: int = 1) -> np.ndarray:
    """Draws paths of (y, x) pixel coordinates as connected polylines into a bool [H, W] map."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    for path in paths:
        if len(path) == 0:
            continue
        points = np.ascontiguousarray(np.asarray(path)[:, ::-1], dtype=np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [points], isClosed=False, color=1, thickness=thickness, lineType=cv2.LINE_8)
    return canvas.astype(bool)


def scribble_map(region: np.ndarray, rng: np.random.Generator, thickness: int = 1, min_area: int = 16) -> np.ndarray:
    """A scribble on `region` as a bool [H, W] map; thick strokes are clipped to the region."""
    region = np.asarray(region, dtype=bool)
    drawn = rasterise([scribble_path(region, rng, min_area)], *region.shape, thickness=thickness)
    return drawn & region


def first_round_maps(
    truth: np.ndarray, num_objects: int, rng: np.random.Generator, thickness: int = 1, min_area: int = 16
) -> np.ndarray:
    """The first interaction, as in DAVIS: one stroke inside each object and one on the background.
    For object k the other objects' strokes and the background stroke are negative. bool [N, 2, H, W]."""
    strokes = [scribble_map(truth == k, rng, thickness, min_area) for k in range(num_objects + 1)]
    return per_object_maps(strokes, num_objects)


def per_object_maps(strokes: list[np.ndarray], num_objects: int) -> np.ndarray:
    """strokes[k]: bool [H, W] drawn with object id k (0 = background) -> bool [N, 2, H, W]."""
    height, width = strokes[0].shape if strokes else (0, 0)
    maps = np.zeros((num_objects, 2, height, width), dtype=bool)
    for k in range(1, num_objects + 1):
        maps[k - 1, 0] = strokes[k] if k < len(strokes) else False
        for other, stroke in enumerate(strokes):
            if other != k:
                maps[k - 1, 1] |= stroke
    return maps


def davis_json_maps(
    scribbles: dict, frame: int, num_objects: int, height: int, width: int, thickness: int = 1
) -> np.ndarray:
    """Rasterises the DAVIS scribble JSON of one frame at [H, W] (any size: paths are normalised).
    Returns bool [N, 2, H, W]: for object k, object_id k strokes are positive, all others negative."""
    strokes = [np.zeros((height, width), dtype=bool) for _ in range(num_objects + 1)]
    scale = np.array([width, height], dtype=np.float64)
    for stroke in scribbles["scribbles"][frame]:
        object_id = int(stroke["object_id"])
        if object_id > num_objects:
            continue  # an id the caller does not track (e.g. 255 void) has no object to steer
        xy = np.asarray(stroke["path"], dtype=np.float64).reshape(-1, 2) * scale
        xy = np.clip(np.floor(xy + 0.5), 0, scale - 1).astype(np.int64)
        strokes[object_id] |= rasterise([xy[:, ::-1]], height, width, thickness)
    return per_object_maps(strokes, num_objects)


def scribbled_frames(scribbles: dict) -> list[int]:
    """Indices of the frames that hold at least one stroke in DAVIS scribble JSON."""
    return [index for index, strokes in enumerate(scribbles["scribbles"]) if strokes]


def to_davis_json(
    sequence: str, num_frames: int, frame: int, paths: dict[int, np.ndarray], height: int, width: int
) -> dict:
    """DAVIS scribble JSON with `paths[object_id]` ((y, x) pixel paths) drawn on `frame`, normalised as
    the DAVIS robot normalises them (x / W, y / H)."""
    now = time.time()
    strokes = [
        {
            "path": (np.asarray(path, dtype=np.float64)[:, ::-1] / [width, height]).tolist(),
            "object_id": int(object_id),
            "start_time": now,
            "end_time": now,
        }
        for object_id, path in sorted(paths.items())
        if len(path)
    ]
    frames: list[list] = [[] for _ in range(num_frames)]
    frames[frame] = strokes
    return {"scribbles": frames, "sequence": sequence}


def scribble_frame(labels: np.ndarray, num_objects: int) -> int:
    """The frame whose smallest object is largest: every object is visible there if anywhere."""
    areas = np.stack([(labels == k).reshape(len(labels), -1).sum(1) for k in range(1, num_objects + 1)], axis=1)
    return int(areas.min(axis=1).argmax())


def first_scribbles(name: str, labels: np.ndarray, seed: int = 0) -> dict:
    """The first interaction of a video as DAVIS ships it (DAVIS scribble JSON): one synthesised stroke
    per object and one on the background, on `scribble_frame`. labels: object ids [T, H, W]. The strokes
    depend only on (seed, name), so a robot-ready folder and a validation that synthesises them agree."""
    labels = without_void(labels)
    objects = int(labels.max())
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    frame = scribble_frame(labels, objects)
    paths = {k: scribble_path(labels[frame] == k, rng) for k in range(objects + 1)}
    height, width = labels.shape[1:]
    return to_davis_json(name, len(labels), frame, paths, height, width)
