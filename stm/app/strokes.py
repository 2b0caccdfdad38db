"""A hand stroke and the pixels it covers: the one rasteriser for the page, the server and the replay.

The page sends each stroke as a path in normalised coordinates (x / W, y / H, where pixel i covers
[i, i + 1)) with a width in pixels of the video; the server draws it here at the video's size, so a
replayed log paints exactly the pixels the person painted. Brush, eraser and scribbles are round-capped
lines (a click is a disk); a polygon is filled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from skimage.draw import polygon

from stm.errors import StmError

PAINT_TOOLS = ("brush", "eraser", "polygon")  # edit the mask of one frame by hand
SCRIBBLE_TOOLS = ("positive", "negative")  # steer an interactive model
TOOLS = PAINT_TOOLS + SCRIBBLE_TOOLS
MAX_WIDTH = 400  # px; wider is a mistake, not a brush


@dataclass(frozen=True)
class Stroke:
    """One stroke: tool, frame, object, path [(x, y), ...] normalised to [0, 1], width in video pixels."""

    tool: str
    frame: int
    object_id: int
    path: tuple[tuple[float, float], ...]
    width: float = 1.0
    time: float = field(default_factory=time.time)

    @classmethod
    def from_dict(cls, data: dict) -> Stroke:
        """A stroke from the page's JSON or a log line; StmError on anything malformed."""
        try:
            tool = str(data["tool"])
            frame, object_id = int(data["frame"]), int(data["object"])
            path = tuple((float(x), float(y)) for x, y in data["path"])
            width = float(data.get("width", 1.0))
            stamp = float(data.get("time", time.time()))
        except (KeyError, TypeError, ValueError) as exc:
            raise StmError(f"malformed stroke ({exc!r})") from None
        if tool not in TOOLS:
            raise StmError(f"unknown tool {tool!r}; one of {', '.join(TOOLS)}")
        if not path:
            raise StmError("a stroke needs at least one point")
        if tool == "polygon" and len(path) < 3:
            raise StmError("a polygon needs at least three points")
        if not all(np.isfinite(v) for point in path for v in point) or not 0 < width <= MAX_WIDTH:
            raise StmError(f"a stroke needs finite points and a width in (0, {MAX_WIDTH}]")
        if not 0 < object_id < 256:
            raise StmError(f"object id {object_id} must be in 1..255")
        return cls(tool, frame, object_id, path, width, stamp)

    def to_dict(self) -> dict:
        """The log line's fields (coordinates rounded to 1e-5, finer than a pixel of an 8K frame)."""
        return {
            "action": "stroke",
            "tool": self.tool,
            "frame": self.frame,
            "object": self.object_id,
            "path": [[round(x, 5), round(y, 5)] for x, y in self.path],
            "width": self.width,
            "time": self.time,
        }


def stroke_pixels(stroke: Stroke, height: int, width: int) -> np.ndarray:
    """bool [H, W]: the pixels whose centre the stroke covers on a frame of that size. A line covers
    the centres within width / 2 of its path (a browser canvas's round-capped line); a polygon, the
    centres inside it."""
    xy = np.asarray(stroke.path, dtype=np.float64) * [width, height]  # continuous pixel coordinates
    if stroke.tool == "polygon":
        covered = np.zeros((height, width), dtype=bool)
        rows, cols = polygon(xy[:, 1] - 0.5, xy[:, 0] - 0.5, shape=(height, width))
        covered[rows, cols] = True
        return covered
    return _thick_line(xy, stroke.width / 2, height, width)


def _thick_line(xy: np.ndarray, radius: float, height: int, width: int) -> np.ndarray:
    covered = np.zeros((height, width), dtype=bool)
    ends = np.stack([xy, np.roll(xy, -1, axis=0)], axis=1)[:-1] if len(xy) > 1 else np.stack([xy, xy], axis=1)
    for (ax, ay), (bx, by) in ends:
        x0, x1 = max(int(np.floor(min(ax, bx) - radius)), 0), min(int(np.ceil(max(ax, bx) + radius)), width)
        y0, y1 = max(int(np.floor(min(ay, by) - radius)), 0), min(int(np.ceil(max(ay, by) + radius)), height)
        if x0 >= x1 or y0 >= y1:
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1] + 0.5  # pixel centres
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / length2, 0, 1) if length2 > 0 else 0.0
        distance2 = (xs - ax - t * dx) ** 2 + (ys - ay - t * dy) ** 2
        covered[y0:y1, x0:x1] |= distance2 <= radius * radius
    return covered


def paint(labels: np.ndarray, stroke: Stroke) -> np.ndarray:
    """The frame's ids after a paint stroke: brush and polygon set the object, the eraser clears
    only that object (its neighbours stay)."""
    if stroke.tool not in PAINT_TOOLS:
        raise ValueError(f"{stroke.tool} strokes do not paint masks")
    covered = stroke_pixels(stroke, *labels.shape)
    result = labels.copy()
    if stroke.tool == "eraser":
        result[covered & (labels == stroke.object_id)] = 0
    else:
        result[covered] = stroke.object_id
    return result
