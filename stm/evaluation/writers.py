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

from stm.data.io import DAVIS_PALETTE, atomic_write, commit, partial_path, write_mask

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
    """An mp4 (OpenCV, mp4v) streamed into a temporary file and committed onto `path` by close(),
    as stm.data.io.atomic_write commits (fsync, rename)."""

    def __init__(self, path: str | os.PathLike, fps: float = 24.0, palette: np.ndarray | None = None):
        self.path = Path(path)
        self.fps = fps
        self.palette = palette
        self._temporary: Path | None = None
        self._writer: cv2.VideoWriter | None = None

    def add(self, frame: np.ndarray, labels: np.ndarray) -> None:
        if self._writer is None:
            self._temporary = partial_path(self.path)
            height, width = frame.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(str(self._temporary), fourcc, self.fps, (width, height))
            if not self._writer.isOpened():
                self._temporary.unlink(missing_ok=True)
                raise OSError(f"{self.path}: OpenCV cannot write mp4 here")
        self._writer.write(cv2.cvtColor(overlay(frame, labels, palette=self.palette), cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            commit(self._temporary, self.path)
            self._writer = None


def zip_submission(annotations: str | os.PathLike, path: str | os.PathLike) -> None:
    """Zips the folder `annotations` (OUT/Annotations) so that `Annotations/` is the archive's top."""
    annotations = Path(annotations)
    files = sorted(p for p in annotations.rglob("*.png") if not p.name.startswith("."))

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for file in files:
                archive.write(file, Path("Annotations") / file.relative_to(annotations))

    atomic_write(Path(path), write)
