"""Stage 2 data: clips of T annotated frames sampled from real videos (DAVIS 2017, YouTube-VOS).

Frames are taken in temporal order with random gaps: between two clip frames at most `max_skip`
frames are skipped (the trainer grows it by a curriculum). YouTube-VOS annotates every 5th frame of
its 30 fps videos, so its gaps count annotated frames and its max skip is divided by 5. A clip is
reversed in time with probability 1/2. Up to max_objects objects visible in the first clip frame are
kept. One crop (and flip) is shared by the clip; each frame gets a small affine and colour jitter.

Layouts, read by the same readers as evaluation: DAVIS <root>/JPEGImages/<res>/<seq>/ +
Annotations/<res>/<seq>/ (stm.data.io; sequences from ImageSets/<year>/<split>.txt when present);
YouTube-VOS <root>/<split>/JPEGImages/<vid>/ + <root>/<split>/Annotations/<vid>/ (stm.data.youtube;
videos from <split>/meta.json when present).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from stm.config import AugmentConfig, VideoSourceConfig
from stm.data.clips import Clip, pick_objects, renumber
from stm.data.io import davis_sequence, davis_sequence_names, read_frame, read_mask
from stm.data.transforms import augment_frame, clip_geometry, frames_to_tensor, labels_to_tensor
from stm.data.youtube import youtube_video, youtube_video_names
from stm.errors import StmError

log = logging.getLogger("stm")

SKIP_DIVISOR = {"davis": 1, "youtube": 5}
ATTEMPTS = 10  # frame and crop draws tried until an object is visible in the first clip frame


def sample_frame_indices(rng: np.random.Generator, length: int, count: int, max_skip: int) -> list[int]:
    """`count` increasing indices into range(length), consecutive ones at most max_skip + 1 apart
    (max_skip shrinks when the video is too short for it)."""
    if length < count:
        raise ValueError(f"a video of {length} frames cannot give {count}")
    skip = max(0, min(max_skip, (length - 1) // max(count - 1, 1) - 1))
    gaps = rng.integers(1, skip + 2, size=count - 1)
    start = int(rng.integers(0, length - int(gaps.sum())))
    return [start, *(start + np.cumsum(gaps)).tolist()]


class VideoSource:
    """Clips from the annotated frames of a DAVIS or YouTube-VOS folder."""

    def __init__(
        self, config: VideoSourceConfig, size: tuple[int, int], frames: int, max_objects: int, augment: AugmentConfig
    ):
        self.name = f"{config.root} ({config.kind} {config.split})"
        self.size, self.frames, self.max_objects, self.augment = tuple(size), frames, max_objects, augment
        self.skip_divisor = SKIP_DIVISOR[config.kind]
        if not Path(config.root).is_dir():
            raise StmError(f"{config.root}: no such dataset folder")
        if config.kind == "davis":
            names = davis_sequence_names(config.root, config.year, config.split, resolution=config.resolution)
            sequences = [davis_sequence(config.root, name, config.resolution) for name in names]
        else:
            names = youtube_video_names(config.root, config.split)
            sequences = [youtube_video(config.root, config.split, name) for name in names]
        # Only annotated frames are used: (frame, mask) path pairs in temporal order.
        self.videos = [
            (s.name, [(s.frames[i], s.masks[i]) for i in sorted(s.masks)]) for s in sequences if len(s.masks) >= frames
        ]
        if not self.videos:
            raise StmError(f"{config.root}: no usable video (none has {frames} or more annotated frames)")
        if len(self.videos) < len(sequences):
            log.warning("%s: %d of %d videos have too few annotated frames and are not used",
                        self.name, len(sequences) - len(self.videos), len(sequences))

    def __len__(self) -> int:
        return len(self.videos)

    def clip(self, index: int, rng: np.random.Generator, max_skip: int) -> Clip:
        name, pairs = self.videos[index]
        skip = max_skip // self.skip_divisor
        for _attempt in range(ATTEMPTS):
            chosen_frames = sample_frame_indices(rng, len(pairs), self.frames, skip)
            if rng.random() < 0.5:
                chosen_frames.reverse()
            first_image, first_labels = read_frame(pairs[chosen_frames[0]][0]), read_mask(pairs[chosen_frames[0]][1])
            matrices = clip_geometry(rng, first_labels.shape, self.size, self.augment, self.frames)
            first = augment_frame(rng, first_image, first_labels, matrices[0], self.size, self.augment)
            objects = pick_objects(rng, first[1], self.max_objects, max(16, self.size[0] * self.size[1] // 1000))
            if objects:
                break
        outputs = [first]
        for frame, matrix in zip(chosen_frames[1:], matrices[1:], strict=True):
            image, labels = read_frame(pairs[frame][0]), read_mask(pairs[frame][1])
            if labels.shape != image.shape[:2]:
                raise StmError(f"{pairs[frame][1]}: mask size differs from its frame's")
            outputs.append(augment_frame(rng, image, labels, matrix, self.size, self.augment))
        return Clip(
            frames_to_tensor([out[0] for out in outputs]),
            labels_to_tensor([renumber(out[1], objects) for out in outputs]),
            len(objects),
            f"{name}:{','.join(str(i) for i in chosen_frames)}",
        )
