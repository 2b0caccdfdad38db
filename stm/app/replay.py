"""Replaying a workspace's interactions.jsonl against any checkpoint, and scoring it as the DAVIS
interactive benchmark scores a robot: J&F after each interaction, and the area under J&F over time.

Replaying goes through the Annotator, the same code the person's clicks went through: strokes paint
the same pixels, undo restores the same frames, and each propagation runs again with the replay's
predictor over as many frames as the person let it run. Each `open` line (the person started the
tool again) begins a new session: undo history and predictor state start afresh, as they did.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stm.app.annotator import Annotator
from stm.app.strokes import SCRIBBLE_TOOLS, Stroke
from stm.data.io import read_mask
from stm.errors import StmError
from stm.evaluation.metrics import frame_scores

MASK_ACTIONS = ("stroke", "undo", "redo", "delete_object", "propagate")


def apply(annotator: Annotator, entry: dict) -> list[int]:
    """Applies one logged interaction; returns the frames whose masks it changed."""
    action = entry["action"]
    try:
        if action in ("open", "export"):
            return []
        if action == "add_object":
            info = annotator.add_object(entry.get("colour"), entry.get("name"))
            if info.id != int(entry["object"]):
                raise StmError(f"the log adds object {entry['object']} where the replay has {info.id}")
            return []
        if action == "recolour":
            annotator.recolour(int(entry["object"]), entry["colour"])
            return []
        if action == "rename":
            annotator.rename(int(entry["object"]), entry["name"])
            return []
        if action == "delete_object":
            return annotator.delete_object(int(entry["object"]))
        if action == "stroke":
            stroke = Stroke.from_dict(entry)
            if stroke.tool in SCRIBBLE_TOOLS:
                return list(annotator.scribble(stroke))
            annotator.stroke(stroke)
            return [stroke.frame]
        if action in ("undo", "redo"):
            return [getattr(annotator, action)()]
        if action == "propagate":
            frames = annotator.propagate(int(entry["frame"]), bool(entry["reverse"]))
            try:
                return list(itertools.islice(frames, int(entry["frames"])))
            finally:
                frames.close()
    except (KeyError, TypeError, ValueError) as exc:
        raise StmError(f"a {action} line lacks or mangles a field ({exc!r})") from None
    raise StmError(f"unknown action {action!r}")


@dataclass
class Step:
    """One replayed interaction: its line, the seconds since the session began, frames changed."""

    entry: dict
    seconds: float
    changed: list[int]


def replay(entries: list[dict], new_session) -> Iterator[Step]:
    """Applies the entries in order. new_session() returns a fresh Annotator (on the replay's
    workspace) and is called at the start and at each later `open`. Time counts the person's time
    within sessions (the gap before an `open` counts zero)."""
    annotator = new_session()
    seconds, previous, opened = 0.0, None, False
    for entry in entries:
        stamp = float(entry.get("time", previous or 0.0))
        if entry["action"] == "open":
            if opened:
                annotator = new_session()
            opened = True
        elif previous is not None:
            seconds += max(0.0, stamp - previous)
        previous = stamp
        yield Step(entry, seconds, apply(annotator, entry))


class Scores:
    """J&F of the workspace's masks against ground truth over every frame, updated frame by frame."""

    def __init__(self, truth: list[np.ndarray]):
        self.truth = truth
        self.ids = sorted({int(i) for labels in truth for i in np.unique(labels) if i not in (0, 255)})
        if not self.ids:
            raise StmError("the ground truth holds no object")
        self.j = np.zeros((len(truth), len(self.ids)))
        self.f = np.zeros_like(self.j)
        for index in range(len(truth)):
            self.update(index, np.zeros_like(truth[index]))

    def update(self, index: int, labels: np.ndarray) -> None:
        self.j[index], self.f[index] = frame_scores(self.truth[index], labels, self.ids)

    @property
    def jf(self) -> float:
        """Mean over objects of (J-Mean + F-Mean) / 2, every frame counted (the interactive protocol)."""
        return float((self.j.mean() + self.f.mean()) / 2)


def read_ground_truth(folder: str | os.PathLike, num_frames: int, size: tuple[int, int]) -> list[np.ndarray]:
    """One mask per frame from a folder of PNGs in name order (e.g. DAVIS Annotations/480p/<seq>)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StmError(f"{folder}: no such ground-truth folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))
    if len(files) != num_frames:
        raise StmError(f"{folder}: {len(files)} masks for a video of {num_frames} frames")
    masks = [read_mask(p) for p in files]
    for path, mask in zip(files, masks, strict=True):
        if mask.shape != tuple(size):
            raise StmError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, the video {size[1]}x{size[0]}")
    return masks


def area_under_curve(seconds: list[float], values: list[float]) -> float:
    """Trapezoid area under J&F over time divided by the time span (J&F held at its mean); with no
    time elapsed, the last value."""
    if len(seconds) < 2 or seconds[-1] <= seconds[0]:
        return float(values[-1])
    t, v = np.asarray(seconds, dtype=np.float64), np.asarray(values, dtype=np.float64)
    area = float(np.sum((v[1:] + v[:-1]) / 2 * np.diff(t)))
    return area / float(t[-1] - t[0])
