"""Interactive training: simulated rounds of scribbles on a clip (train.step: interactive).

Each clip of T frames plays min(T, rounds) rounds (3 by default, as validation plays) of the interactive
protocol, as the DAVIS robot plays them:

- round 1: scribbles from the ground truth on an empty mask, on a random frame (one stroke inside
  each object, one on the background);
- round r > 1: scribbles on the errors of the model's own prediction of round r - 1 (positive on
  missed foreground, negative on false positives), on the worst frame not scribbled yet;
- the memory holds the frames that received scribbles, each with the mask it had when scribbled
  (empty in round 1, the previous prediction later) and its scribble maps;
- every round segments every frame (the scribbled ones included) from that memory; the loss is the
  mean over rounds and frames. Query encodings are computed once per clip and shared by the rounds.

Clips longer than the rounds keep frames that are never scribbled, so the network also learns to carry
corrections to frames outside its memory, as it must on a whole video; with T = rounds every frame is
in memory by the last round.

The predictions that steer the next round's scribbles are detached: the network learns to correct
a given mistake, not to make mistakes that are easy to scribble on.

`make_interactive_validator` scores the same protocol on held-out videos with the DAVIS J&F over all
frames, per round (`simulate_session`), so a run shows whether later rounds improve on round 1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from stm.config import InteractiveConfig
from stm.data.clips import ClipBatch
from stm.data.interactive_root import scribble_frame
from stm.data.io import without_void
from stm.data.scribbles import correction_maps, first_round_maps
from stm.evaluation.metrics import frame_scores, mean_jaccard
from stm.inference.interactive import InteractiveSession
from stm.model.stm import STM
from stm.train.losses import SegmentationLoss
from stm.train.steps import StepOutput, register_step

log = logging.getLogger("stm")


class InteractiveClipStep(nn.Module):
    """min(T, rounds) simulated rounds per clip of T frames (see the module docstring)."""

    def __init__(
        self,
        model: STM,
        loss: SegmentationLoss,
        thickness: int = InteractiveConfig.scribble_thickness,
        rounds: int = InteractiveConfig.rounds,
    ):
        super().__init__()
        if model.mode != "interactive":
            raise ValueError("train.step interactive needs model.mode: interactive")
        self.model, self.loss, self.thickness, self.rounds = model, loss, thickness, rounds
        self.round_iou: list[float] = []  # mean IoU of each round's prediction, last step (for logs and tests)

    def forward(self, batch: ClipBatch, step: int) -> StepOutput:
        batch_size, length = batch.frames.shape[:2]
        objects = batch.objects
        device = batch.frames.device
        rng = np.random.default_rng([step, int(batch.labels.sum().item()) % 2**31])
        labels = batch.labels.cpu().numpy()
        query = self.model.encode_query(batch.frames.flatten(0, 1))
        every = torch.arange(batch_size, device=device).repeat_interleave(length)
        valid = batch.valid[every]
        targets = batch.labels.flatten(0, 1)
        prediction = np.zeros_like(labels, dtype=np.uint8)
        scribbled = np.zeros((batch_size, length), dtype=bool)
        keys, values, losses, self.round_iou = [], [], [], []
        for round_index in range(min(self.rounds, length)):
            chosen = self._pick_frames(round_index, batch.labels, prediction, scribbled, objects, rng)
            maps = np.stack([
                first_round_maps(labels[b, f], objects, rng, self.thickness) if round_index == 0
                else correction_maps(prediction[b, f], labels[b, f], objects, rng, self.thickness)
                for b, f in enumerate(chosen)
            ])
            scribbled[np.arange(batch_size), chosen] = True
            ids = np.arange(1, objects + 1).reshape(1, -1, 1, 1)
            masks = prediction[np.arange(batch_size), chosen][:, None] == ids
            images = batch.frames[torch.arange(batch_size, device=device), torch.as_tensor(chosen, device=device)]
            key, value = self.model.encode_memory(
                images,
                torch.from_numpy(masks).to(device, images.dtype),
                torch.from_numpy(maps).to(device, images.dtype),
                valid=batch.valid,
            )
            keys.append(key)
            values.append(value)
            seg = self.model.segment(query, torch.cat(keys, 2)[every], torch.cat(values, 2)[every], valid)
            losses.append(self.loss(seg.logits, targets, step))
            probs = seg.probs.detach().unflatten(0, (batch_size, length))
            predicted = probs.argmax(2)
            prediction = predicted.to(torch.uint8).cpu().numpy()
            self.round_iou.append(float(mean_jaccard(prediction, labels, objects).mean()))
        return StepOutput(torch.stack(losses).mean(), probs[:, 1:])

    @staticmethod
    def _pick_frames(round_index, labels, prediction, scribbled, objects, rng) -> list[int]:
        """Round 1: a random frame per clip; later: the worst (lowest IoU) frame not scribbled yet."""
        batch_size, length = scribbled.shape
        if round_index == 0:
            return [int(rng.integers(length)) for _ in range(batch_size)]
        iou = np.where(scribbled, np.inf, mean_jaccard(prediction, labels.cpu().numpy(), objects))
        return [int(row.argmin()) for row in iou]


register_step(
    "interactive",
    lambda model, loss, config: InteractiveClipStep(
        model, loss, config.interactive.scribble_thickness, config.interactive.rounds
    ),
)


def simulate_session(
    model: STM, frames: list[np.ndarray], labels: list[np.ndarray], rounds: int, rng: np.random.Generator,
    thickness: int = InteractiveConfig.scribble_thickness,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Plays `rounds` interactions on one video as the DAVIS robot would, with synthesised scribbles:
    round 1 on the frame where every object is best visible, later rounds on the worst frame (J&F)
    not scribbled yet. Returns per round (J, F), each [K objects, T frames], over all frames."""
    truth = without_void(np.stack(labels))
    objects = int(truth.max())
    ids = list(range(1, objects + 1))
    device = next(model.parameters()).device
    video = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255).to(device)
    session = InteractiveSession(model, video, objects)
    prediction = np.zeros_like(truth)
    used: set[int] = set()
    results = []
    for round_index in range(rounds):
        if round_index == 0:
            frame = scribble_frame(truth, objects)
            maps = first_round_maps(truth[frame], objects, rng, thickness)
        else:
            j, f = results[-1]
            worst = ((j + f) / 2).mean(0)
            worst[list(used)] = np.inf
            frame = int(worst.argmin())
            maps = correction_maps(prediction[frame], truth[frame], objects, rng, thickness)
        used.add(frame)
        prediction = session.interact(frame, torch.from_numpy(maps)).numpy()
        j, f = zip(*(frame_scores(truth[t], prediction[t], ids) for t in range(len(truth))), strict=True)
        results.append((np.stack(j, axis=1), np.stack(f, axis=1)))
    return results


def make_interactive_validator(
    videos_loader: Callable[[], list],
    rounds: int = InteractiveConfig.rounds,
    thickness: int = InteractiveConfig.scribble_thickness,
) -> Callable[[STM, int], dict]:
    """validate(model, step) for the trainer: J&F after the last round (keys J&F, J, F), and J&F after
    every round (J&F@1, J&F@2, ...) averaged over the objects of the held-out videos; strokes of
    `thickness` pixels, as the step trains with."""
    cache: list = []

    def validate(model: STM, step: int) -> dict[str, float]:
        if not cache:
            cache.extend(videos_loader())
        per_round: list[list[tuple[float, float]]] = [[] for _ in range(rounds)]
        for index, (_name, frames, labels) in enumerate(cache):
            results = simulate_session(model, frames, labels, rounds, np.random.default_rng(index), thickness)
            for r, (j, f) in enumerate(results):
                per_round[r] += list(zip(j.mean(1), f.mean(1), strict=True))
        scores = {f"J&F@{r + 1}": float(np.mean([(j + f) / 2 for j, f in pairs])) for r, pairs in enumerate(per_round)}
        last = per_round[-1]
        j_mean, f_mean = float(np.mean([j for j, _ in last])), float(np.mean([f for _, f in last]))
        log.info("step %d: interactive J&F per round %s", step, ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
        return {"J&F": (j_mean + f_mean) / 2, "J": j_mean, "F": f_mean, **scores}

    return validate

