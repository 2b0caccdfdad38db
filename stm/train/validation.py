"""Validation during training: semi-supervised J&F on held-out videos of a DAVIS-layout folder.

The videos are read once (resized to val.size when set, masks with nearest neighbour), then each
validation propagates the first frame's masks through every video with the same inference loop as
eval_semi.py (stm.inference.semi.propagate) and scores it with the DAVIS definitions
(stm.evaluation.metrics: first and last frame dropped, J&F = mean of J and F over objects).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from stm.config import Config, ValConfig
from stm.data.io import davis_sequence, davis_sequence_names, read_frame, read_mask, without_void
from stm.errors import StmError
from stm.evaluation.metrics import ObjectResult, sequence_scores, summarise
from stm.inference.semi import propagate
from stm.model.stm import STM
from stm.progress import progress as progress_bar


def load_videos(config: ValConfig) -> list[tuple[str, list[np.ndarray], list[np.ndarray]]]:
    """(name, frames, id maps) of the validation videos, every frame annotated; void (255) is background."""
    names = davis_sequence_names(config.root, config.year, config.split)
    if config.max_videos > 0:
        names = names[: config.max_videos]
    videos = []
    for name in names:
        sequence = davis_sequence(config.root, name)
        if len(sequence.masks) != len(sequence.frames):
            raise StmError(f"{config.root}/Annotations/480p/{name}: validation needs a mask for every frame")
        frames = [read_frame(path) for path in sequence.frames]
        labels = [without_void(read_mask(sequence.masks[index])) for index in range(len(sequence.frames))]
        if config.size is not None:
            height, width = config.size
            frames = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames]
            labels = [cv2.resize(m, (width, height), interpolation=cv2.INTER_NEAREST) for m in labels]
        videos.append((name, frames, labels))
    return videos


def evaluate_videos(model: STM, videos: list, mem_every: int = 5, progress: bool = True) -> dict[str, float]:
    """J&F, J and F (DAVIS definitions, in [0, 1]) of `model` on (name, frames, labels) videos."""
    results = []
    for name, frames, labels in progress_bar(videos, desc="validate", unit="video", leave=False, disable=not progress):
        labels = [without_void(mask) for mask in labels]  # as the official evaluation scores them
        predictions = list(propagate(model, frames, labels[0], mem_every=mem_every))
        ids = [int(k) for k in np.unique(labels[0]) if k != 0]
        j, f = sequence_scores(np.stack(labels), np.stack(predictions), ids)
        results += [ObjectResult(name, k, j[i], f[i]) for i, k in enumerate(ids)]
    summary = summarise(results)
    return {"J&F": summary["J&F-Mean"], "J": summary["J-Mean"], "F": summary["F-Mean"]}


def make_validator(config: Config) -> Callable[[STM, int], dict[str, float]] | None:
    """validate(model, step) for the trainer, or None when val.root is not set. Videos load lazily."""
    if config.val.root is None:
        return None
    if config.model.mode == "interactive":  # simulated interaction rounds instead of propagation
        from stm.train.interactive_step import make_interactive_validator

        protocol = config.interactive
        return make_interactive_validator(
            lambda: load_videos(config.val), protocol.rounds, protocol.scribble_thickness
        )
    cache: list = []

    def validate(model: STM, step: int) -> dict[str, float]:
        if not cache:
            cache.extend(load_videos(config.val))
        return evaluate_videos(model, cache, config.val.mem_every)

    return validate
