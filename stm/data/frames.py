"""Any video as frames read by index: a video file, a folder of frames, or a list of RGB arrays.

Every source answers len(), [index] -> HxWx3 uint8 RGB, `size` (H, W of every frame), `fps` (a video
file's own rate; folders and arrays have none, so they say DEFAULT_FPS, 24, DAVIS's rate, unless
told otherwise), `name(index)` (what an error message names) and close(). Files are read when asked
for, so a long video is never held whole; every frame must have the first frame's size.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from stm.data.io import FRAME_SUFFIXES, read_frame
from stm.data.video_file import DEFAULT_FPS, VideoFileFrames
from stm.errors import StmError


class Frames(Protocol):
    size: tuple[int, int]
    fps: float

    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> np.ndarray: ...
    def name(self, index: int) -> str: ...
    def close(self) -> None: ...


def _natural_key(path: Path) -> list:
    """frame_2.jpg before frame_10.jpg (zero-padded names sort the same either way)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


class FolderFrames:
    """The .jpg / .jpeg / .png files of a folder in natural name order (DAVIS's JPEGImages/480p/<seq>)."""

    def __init__(self, folder: str | os.PathLike, fps: float = DEFAULT_FPS):
        self.folder = Path(folder)
        self.fps = fps
        self.files = sorted(
            (p for p in self.folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".")),
            key=_natural_key,
        )
        if not self.files:
            raise StmError(f"{self.folder}: no frames (.jpg/.png) in the folder")
        self.size = read_frame(self.files[0]).shape[:2]

    def __len__(self) -> int:
        return len(self.files)

    def name(self, index: int) -> str:
        return str(self.files[index])

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} is outside the video (0..{len(self) - 1})")
        frame = read_frame(self.files[index])
        return _checked(frame, self.size, self.name(index))

    def close(self) -> None:
        pass


class ArrayFrames:
    """A list (or [T, H, W, 3] array) of HxWx3 uint8 RGB frames already in memory."""

    def __init__(self, frames: Sequence[np.ndarray] | np.ndarray, fps: float = DEFAULT_FPS):
        self.fps = fps
        if len(frames) == 0:
            raise StmError("the list of frames is empty")
        self.frames = frames
        first = np.asarray(frames[0])
        if first.ndim != 3 or first.shape[2] != 3 or first.dtype != np.uint8:
            raise StmError(f"frame 0: expected an HxWx3 uint8 RGB array, got {first.dtype} {first.shape}")
        self.size = first.shape[:2]

    def __len__(self) -> int:
        return len(self.frames)

    def name(self, index: int) -> str:
        return f"frame {index}"

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} is outside the video (0..{len(self) - 1})")
        frame = np.asarray(self.frames[index])
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise StmError(f"frame {index}: expected an HxWx3 uint8 RGB array, got {frame.dtype} {frame.shape}")
        return _checked(frame, self.size, self.name(index))

    def close(self) -> None:
        pass


def _checked(frame: np.ndarray, size: tuple[int, int], name: str) -> np.ndarray:
    if frame.shape[:2] != tuple(size):
        raise StmError(f"{name}: frame is {frame.shape[1]}x{frame.shape[0]}, the first frame is {size[1]}x{size[0]}")
    return frame


def open_frames(source: str | os.PathLike | Sequence[np.ndarray] | np.ndarray) -> Frames:
    """A video file (PyAV), a folder of frames, or a list / array of HxWx3 uint8 RGB frames."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            return FolderFrames(path)
        if not path.exists():
            raise StmError(f"{path}: no such video file or folder of frames")
        return VideoFileFrames(path)
    if isinstance(source, (list, tuple, np.ndarray)):
        return ArrayFrames(source)
    raise TypeError(f"cannot read frames from a {type(source).__name__}: give a path or a list of arrays")
