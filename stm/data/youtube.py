"""The YouTube-VOS layout: ROOT/<split>/{JPEGImages,Annotations}/<video>/, ROOT/<split>/meta.json.

Validation videos give each object's mask only on the frame where it first appears, and the
benchmark scores only the frames in <split>/JPEGImages (every 5th frame of the video). The optional
ROOT/<split>_all_frames/JPEGImages/<video>/ holds every frame: propagating through all of them is
more accurate, and only the benchmark's frames are written.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from stm.data.io import FRAME_SUFFIXES, VideoSequence, _sorted_files
from stm.errors import StmError


@dataclass
class YouTubeVideo(VideoSequence):
    """A VideoSequence whose `outputs` are the frame names the benchmark scores."""

    outputs: list[str] | None = None  # frame stems to write; None = every frame


def youtube_video_names(root: str | os.PathLike, split: str = "valid", names: list[str] | None = None) -> list[str]:
    """`names` if given, else the videos of <split>/meta.json, else every folder of <split>/JPEGImages."""
    split_root = Path(root) / split
    frames_root = split_root / "JPEGImages"
    if not frames_root.is_dir():
        raise StmError(f"{root}: not a YouTube-VOS folder (no {split}/JPEGImages)")
    meta = split_root / "meta.json"
    if names:
        chosen = list(names)
    elif meta.is_file():
        try:
            chosen = sorted(json.loads(meta.read_text())["videos"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StmError(f"{meta}: not a YouTube-VOS meta.json ({type(exc).__name__}: {exc})") from None
    else:
        chosen = sorted(p.name for p in frames_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not chosen:
        raise StmError(f"{frames_root}: no videos found")
    absent = [name for name in chosen if not (frames_root / name).is_dir()]
    if absent:
        raise StmError(f"{frames_root / absent[0]}: video listed but its folder does not exist")
    return chosen


def youtube_video(root: str | os.PathLike, split: str, name: str, all_frames: bool = False) -> YouTubeVideo:
    """One video: the frames to propagate through, its first-appearance masks, the frames to write."""
    root = Path(root)
    frame_dir = root / split / "JPEGImages" / name
    scored = _sorted_files(frame_dir, FRAME_SUFFIXES) if frame_dir.is_dir() else []
    if not scored:
        raise StmError(f"{frame_dir}: no frames (.jpg/.png) in the video folder")
    frames = scored
    if all_frames:
        dense_dir = root / f"{split}_all_frames" / "JPEGImages" / name
        frames = _sorted_files(dense_dir, FRAME_SUFFIXES) if dense_dir.is_dir() else []
        if not frames:
            raise StmError(f"{dense_dir}: no frames for --all-frames")
        missing = {p.stem for p in scored} - {p.stem for p in frames}
        if missing:
            raise StmError(f"{dense_dir}: lacks frame {sorted(missing)[0]} of {frame_dir}")
    stems = {frame.stem: index for index, frame in enumerate(frames)}
    mask_dir = root / split / "Annotations" / name
    masks = {}
    if mask_dir.is_dir():
        for path in _sorted_files(mask_dir, (".png",)):
            if path.stem not in stems:
                raise StmError(f"{path}: annotation for a frame that {frame_dir} does not have")
            masks[stems[path.stem]] = path
    return YouTubeVideo(name, frames, masks, outputs=[p.stem for p in scored])
