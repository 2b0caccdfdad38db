"""Validation during training on held-out videos of a DAVIS-layout folder.

The videos are read once (resized to val.size when set, masks with nearest neighbour). Then:

- semi-supervised: the first frame's masks are propagated through every video with the same inference
  loop as eval_semi.py (stm.inference.semi.propagate) and scored with the DAVIS definitions
  (stm.evaluation.metrics: first and last frame dropped, J&F = mean of J and F over objects);
- interactive: the DAVIS robot's protocol plays `interactive.rounds` interactions on every video with
  the same session and scribble rasterising as eval_interactive.py (stm.evaluation.davis_robot.
  play_protocol: the first scribbles of Scribbles/<seq>/001.json, or synthesised as
  scripts/make_interactive_root.py writes them, then the robot's corrections). Scored as the robot's
  evaluation service scores them (every frame, mean over objects): J&F after each interaction
  (J&F@1, J&F@2, ...) and the AUC of J&F over interactions (`interaction_auc`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from stm.config import Config, InteractiveConfig, ValConfig
from stm.data.io import davis_sequence, davis_sequence_names, read_frame, read_mask, without_void
from stm.data.scribbles import first_scribbles
from stm.errors import StmError
from stm.evaluation.davis_robot import interaction_auc, play_protocol
from stm.evaluation.interactive_eval import answer_scribbles
from stm.evaluation.metrics import ObjectResult, sequence_scores, summarise
from stm.inference.interactive import InteractiveSession
from stm.inference.semi import propagate
from stm.model.stm import STM
from stm.progress import progress as progress_bar

log = logging.getLogger("stm")


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


def first_interaction(root: str | os.PathLike, name: str, labels: np.ndarray) -> dict:
    """The robot's first scribbles of a held-out video: Scribbles/<name>/001.json when the folder is
    robot-ready, else synthesised from its annotations as scripts/make_interactive_root.py writes them."""
    path = Path(root) / "Scribbles" / name / "001.json"
    if not path.is_file():
        return first_scribbles(name, labels)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StmError(f"{path}: unreadable scribble JSON ({exc})") from None


def robot_rounds(
    model: STM, name: str, frames: list[np.ndarray], labels: list[np.ndarray], first: dict, rounds: int,
    thickness: int = InteractiveConfig.scribble_thickness, batch: int = 8,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The DAVIS robot's protocol on one video (frames uint8 [H, W, 3], labels object ids), answered by an
    InteractiveSession as eval_interactive.py answers it. Returns (J, F) [T frames, N objects] per round."""
    truth = without_void(np.stack(labels))
    video = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255)
    session = InteractiveSession(model, video, int(truth.max()), batch=batch)
    answer = np.zeros_like(truth)

    def predict(scribbles: dict) -> np.ndarray:
        nonlocal answer
        answer = answer_scribbles(session, scribbles, thickness, answer)
        return answer

    return play_protocol(predict, truth, first, rounds, name)


def evaluate_interactive(
    model: STM, videos: list, firsts: list[dict], rounds: int, thickness: int, progress: bool = True
) -> dict[str, float]:
    """J&F after each of `rounds` robot interactions (J&F@1, ...), their AUC, and J&F, J, F after the last,
    over the objects of (name, frames, labels) videos whose first scribbles are `firsts`."""
    per_round: list[list[tuple[float, float]]] = [[] for _ in range(rounds)]
    for (name, frames, labels), first in progress_bar(
        list(zip(videos, firsts, strict=True)), desc="validate", unit="video", leave=False, disable=not progress
    ):
        for index, (j, f) in enumerate(robot_rounds(model, name, frames, labels, first, rounds, thickness)):
            per_round[index] += list(zip(j.mean(0), f.mean(0), strict=True))
    scores = {f"J&F@{r + 1}": float(np.mean([(j + f) / 2 for j, f in pairs])) for r, pairs in enumerate(per_round)}
    j_last, f_last = (float(np.mean(values)) for values in zip(*per_round[-1], strict=True))
    auc = interaction_auc([scores[f"J&F@{r + 1}"] for r in range(rounds)])
    return {"J&F": (j_last + f_last) / 2, "J": j_last, "F": f_last, **scores, "AUC": auc}


def make_validator(config: Config) -> Callable[[STM, int], dict[str, float]] | None:
    """validate(model, step) for the trainer, or None when val.root is not set. Videos load lazily."""
    if config.val.root is None:
        return None
    cache: list = []
    firsts: list[dict] = []

    def validate(model: STM, step: int) -> dict[str, float]:
        if not cache:
            cache.extend(load_videos(config.val))
        if config.model.mode == "semi":
            return evaluate_videos(model, cache, config.val.mem_every)
        if not firsts:
            firsts.extend(first_interaction(config.val.root, name, np.stack(labels)) for name, _, labels in cache)
        protocol = config.interactive
        scores = evaluate_interactive(model, cache, firsts, protocol.rounds, protocol.scribble_thickness)
        rounds = ", ".join(f"{key} {value:.3f}" for key, value in scores.items() if key.startswith("J&F@"))
        log.info("step %d: robot rounds %s; AUC %.3f", step, rounds, scores["AUC"])
        return scores

    return validate
