"""Interactive training: simulated rounds of scribbles on a clip (train.step: interactive).

Each clip of T frames plays min(T, interactive.train_rounds) rounds of the interactive protocol, as the
DAVIS robot plays them:

- round 1: scribbles from the ground truth on an empty mask, on a random frame (one stroke inside
  each object, one on the background: a random walk on the region's skeleton);
- round r > 1: the DAVIS robot's own correction (`stm.evaluation.davis_robot.robot_scribbles`, the
  installed davisinteractive code) of the model's prediction of round r - 1, on the frame the DAVIS
  evaluation service would choose (worst J&F) among those not scribbled yet. Strokes carry the id
  really there: positive for that object, negative for every other one (background strokes are
  negative for all);
- the memory holds the frames that received scribbles, each with the mask it had when scribbled
  (empty in round 1, the previous prediction later) and its scribble maps;
- every round segments every frame (the scribbled ones included) from that memory; the loss is the
  mean over rounds and frames. Query encodings are computed once per clip and shared by the rounds.

Clips longer than the rounds keep frames that are never scribbled, so the network also learns to carry
corrections to frames outside its memory, as it must on a whole video. (The service may send the robot
back to the first round's frame; training never scribbles a frame twice, so every round adds one memory
frame.)

The predictions that steer the next round's scribbles are detached: the network learns to correct
a given mistake, not to make mistakes that are easy to scribble on. The robot runs on the CPU for each
clip and round after the first (docs/results.md, "Interactive training that matches the test", has its cost per step).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from stm.config import InteractiveConfig
from stm.data.clips import ClipBatch
from stm.data.scribbles import davis_json_maps, first_round_maps
from stm.evaluation.davis_robot import next_frame, protocol_scores, robot_scribbles
from stm.evaluation.metrics import mean_jaccard
from stm.model.stm import STM
from stm.train.losses import SegmentationLoss
from stm.train.steps import StepOutput, register_step


class InteractiveClipStep(nn.Module):
    """min(T, rounds) simulated rounds per clip of T frames (see the module docstring)."""

    def __init__(
        self,
        model: STM,
        loss: SegmentationLoss,
        thickness: int = InteractiveConfig.scribble_thickness,
        rounds: int = InteractiveConfig.train_rounds,
    ):
        super().__init__()
        if model.mode != "interactive":
            raise ValueError("train.step interactive needs model.mode: interactive")
        self.model, self.loss, self.thickness, self.rounds = model, loss, thickness, rounds
        self.round_iou: list[float] = []  # mean IoU of each round's prediction, last step (for logs and tests)
        self.robot_seconds = 0.0  # time spent choosing frames and drawing the robot's strokes, all steps

    def forward(self, batch: ClipBatch, step: int) -> StepOutput:
        batch_size, length = batch.frames.shape[:2]
        device = batch.frames.device
        rng = np.random.default_rng([step, int(batch.labels.sum().item()) % 2**31])
        labels = batch.labels.cpu().numpy()
        query = self.model.encode_query(batch.frames.flatten(0, 1))
        every = torch.arange(batch_size, device=device).repeat_interleave(length)
        valid = batch.valid[every]
        targets = batch.labels.flatten(0, 1)
        prediction = np.zeros_like(labels, dtype=np.uint8)
        scribbled: list[set[int]] = [set() for _ in range(batch_size)]
        keys, values, losses, self.round_iou = [], [], [], []
        for round_index in range(min(self.rounds, length)):
            chosen, maps = self._scribbles(round_index, labels, prediction, scribbled, batch.objects, rng)
            ids = np.arange(1, batch.objects + 1).reshape(1, -1, 1, 1)
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
            prediction = probs.argmax(2).to(torch.uint8).cpu().numpy()
            self.round_iou.append(float(mean_jaccard(prediction, labels, batch.objects).mean()))
        return StepOutput(torch.stack(losses).mean(), probs[:, 1:])

    def _scribbles(
        self, round_index: int, labels: np.ndarray, prediction: np.ndarray, scribbled: list[set[int]],
        objects: int, rng: np.random.Generator,
    ) -> tuple[list[int], np.ndarray]:
        """The frame each clip scribbles in this round and its maps bool [B, N, 2, H, W]: round 1 on a
        random frame from the ground truth, later rounds the robot's correction of the worst frame."""
        chosen, maps = [], []
        for clip, truth in enumerate(labels):
            if round_index == 0:
                frame = int(rng.integers(len(truth)))
                maps.append(first_round_maps(truth[frame], objects, rng, self.thickness))
            else:
                start = time.perf_counter()
                frame = next_frame(*protocol_scores(truth, prediction[clip], objects), scribbled[clip])
                correction = robot_scribbles(truth, prediction[clip], frame, objects)
                maps.append(davis_json_maps(correction, frame, objects, *truth.shape[1:], self.thickness))
                self.robot_seconds += time.perf_counter() - start
            scribbled[clip].add(frame)
            chosen.append(frame)
        return chosen, np.stack(maps)


register_step(
    "interactive",
    lambda model, loss, config: InteractiveClipStep(
        model, loss, config.interactive.scribble_thickness, config.interactive.train_rounds
    ),
)
