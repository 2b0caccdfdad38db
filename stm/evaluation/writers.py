"""Submission files: palette masks, float16 score files, overlay videos, the YouTube-VOS zip.

Every file is written atomically (a temporary file renamed into place), so an interrupted run
leaves only complete files, and a sequence whose files all exist is complete.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import cv2
import numpy as np

from stm.data.io import DAVIS_PALETTE, atomic_write, write_mask
from stm.data.video_file import DEFAULT_FPS, VideoWriter

_COLOURS = np.frombuffer(DAVIS_PALETTE, dtype=np.uint8).reshape(256, 3)


def write_prediction(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Object ids [H, W] as a DAVIS-palette PNG."""
    if labels.max(initial=0) > 255:
        raise ValueError(f"{path}: object id {labels.max()} does not fit a palette PNG")
    write_mask(path, labels.astype(np.uint8))


def write_scores(path: str | os.PathLike, probs: np.ndarray) -> None:
    """Soft probabilities [1 + K, H, W] (background first, objects in id order) as float16 `probs`."""
    array = np.asarray(probs, dtype=np.float16)
    atomic_write(Path(path), lambda tmp: _save_npz(tmp, array))


def _save_npz(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as stream:  # an open file keeps numpy from appending ".npz" to the name
        np.savez(stream, probs=array)


def overlay(frame: np.ndarray, labels: np.ndarray, alpha: float = 0.5, palette: np.ndarray | None = None) -> np.ndarray:
    """Masks blended on an RGB frame in their colours (palette: uint8 [256, 3] by id, default DAVIS's),
    with a solid outline."""
    colours = (_COLOURS if palette is None else palette)[labels % 256]
    inside = (labels > 0)[..., None]
    blended = np.where(inside, (1 - alpha) * frame + alpha * colours, frame).astype(np.uint8)
    edges = cv2.morphologyEx(labels.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    blended[edges] = colours[edges]
    return blended


class OverlayVideo:
    """Masks blended on their frames (`overlay`) as an H.264 mp4 that browsers play inline, through the
    one mp4 writer (stm.data.video_file.VideoWriter: atomic, yuv420p, even size). fps: the video's
    rate (`frames.fps`). close() commits the file; a `with` block that raises leaves no file."""

    def __init__(self, path: str | os.PathLike, fps: float = DEFAULT_FPS, palette: np.ndarray | None = None):
        self.path = Path(path)
        self.palette = palette
        self._writer = VideoWriter(path, fps, for_browsers=True)

    def add(self, frame: np.ndarray, labels: np.ndarray) -> None:
        self._writer.add(overlay(frame, labels, palette=self.palette))

    def close(self) -> int:
        return self._writer.close()

    def abort(self) -> None:
        self._writer.abort()

    def __enter__(self) -> OverlayVideo:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self._writer.__exit__(kind, value, traceback)


def zip_submission(annotations: str | os.PathLike, path: str | os.PathLike) -> None:
    """Zips the folder `annotations` (OUT/Annotations) so that `Annotations/` is the archive's top."""
    annotations = Path(annotations)
    files = sorted(p for p in annotations.rglob("*.png") if not p.name.startswith("."))

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for file in files:
                archive.write(file, Path("Annotations") / file.relative_to(annotations))

    atomic_write(Path(path), write)
