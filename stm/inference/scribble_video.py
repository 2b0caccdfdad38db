"""The interactive side of a predictor's video: scribbles on any frame, every frame re-segmented.

Built on InteractiveSession (the seed paper's interactive mode: memory = the interacted frames with
their current mask and their scribbles). The session reads the video lazily at the working size (its
cache keeps the query encodings it can afford) and has a fixed number of objects; the interactions are
kept (as working-size stroke maps), so a new object or a removed one rebuilds the session and replays
them in order.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stm.data.frames import Frames
from stm.inference.interactive import InteractiveSession
from stm.inference.semi import frame_tensor
from stm.inference.working_size import resize, working_shape


class ScribbleVideo:
    """predictor: the VideoPredictor (model, size, thickness, amp); labels: the video's label store,
    rewritten for every frame after each interaction."""

    def __init__(self, predictor, frames: Frames, labels):
        self.predictor = predictor
        self.frames = frames
        self.store = labels
        self.shape = working_shape(frames.size, predictor.size)
        self.interactions: list[tuple[int, int, np.ndarray, np.ndarray]] = []  # frame, id, positive, negative
        self.ids: list[int] = []  # object ids; channel c holds ids[c - 1]
        self._session: InteractiveSession | None = None

    def frames_interacted(self) -> list[int]:
        return sorted({frame for frame, *_ in self.interactions})

    def add(self, frame: int, object_id: int, positive: np.ndarray, negative: np.ndarray) -> None:
        """Strokes at the video's size (bool [H, W]) for one object on one frame; re-segments."""
        interaction = (frame, object_id, self._to_working(positive), self._to_working(negative))
        self.interactions.append(interaction)
        if object_id not in self.ids or self._session is None:
            self.ids = sorted({*self.ids, object_id})
            self._replay()
        else:
            self._interact(interaction)

    def remove(self, object_id: int) -> None:
        self.interactions = [i for i in self.interactions if i[1] != object_id]
        self.ids = [i for i in self.ids if i != object_id]
        self._replay()

    def _replay(self) -> None:
        """A fresh session for the current objects, fed every interaction again in order."""
        self._session = None
        if not self.ids:
            for index in range(len(self.frames)):
                self.store.clear(index)
            return
        self._session = InteractiveSession(
            self.predictor.model, WorkingFrames(self.frames, self.shape), len(self.ids),
            output_size=tuple(self.frames.size),
        )
        for interaction in self.interactions:
            self._interact(interaction)

    def _interact(self, interaction: tuple[int, int, np.ndarray, np.ndarray]) -> None:
        frame, object_id, positive, negative = interaction
        maps = torch.zeros(len(self.ids), 2, *self.shape, dtype=torch.bool)
        channel = self.ids.index(object_id)
        maps[channel, 0] = torch.from_numpy(positive)
        maps[channel, 1] = torch.from_numpy(negative)
        others = [c for c in range(len(self.ids)) if c != channel]
        maps[others, 1] |= torch.from_numpy(positive)  # "this is object k" says "not the others"
        with self.predictor.autocast():
            channels = self._session.interact(frame, maps)
        lookup = np.array([0, *self.ids], dtype=np.uint8)
        for index in range(channels.shape[0]):
            self.store.set(index, lookup[channels[index].numpy()])

    def _to_working(self, stroke: np.ndarray) -> np.ndarray:
        """A stroke map at the working size: every pixel a stroke touches, widened to the width the
        model trained with (a 1-pixel line becomes `thickness` pixels)."""
        x = resize(torch.from_numpy(stroke.astype(np.float32))[None, None], self.shape) > 0
        width = 2 * (self.predictor.thickness // 2) + 1
        if width > 1:
            x = F.max_pool2d(x.float(), width, stride=1, padding=width // 2) > 0
        return x[0, 0].numpy()


class WorkingFrames:
    """The video's frames as [3, h, w] RGB in [0, 1] at the working size, read when asked for."""

    def __init__(self, frames: Frames, shape: tuple[int, int]):
        self.frames, self.shape = frames, shape

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> torch.Tensor:
        return resize(frame_tensor(self.frames[index], torch.device("cpu")), self.shape)[0]
