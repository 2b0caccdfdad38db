"""InteractiveSession: interactive segmentation of one video from user (or robot) scribbles.

Each interaction names a frame and brings new scribbles on it. That frame becomes (or is refreshed
as) a memory frame: the memory encoder sees its RGB, its current mask (the last prediction, empty
before the first interaction) and every scribble drawn on it so far. Then every frame of the video
is segmented from the memory of all interacted frames, in batches of frames.

Frames do not change between rounds, so their query encodings are computed once (on the first
interaction) and reused; a memory frame is re-encoded only when it receives new scribbles.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from stm.inference.working_size import resize
from stm.model.stm import QueryFeatures


class InteractiveSession:
    """frames: [T, 3, H, W] RGB in [0, 1] at the working size; num_objects: N (ids 1..N).
    output_size: (H, W) of the returned label maps (probabilities are resized bilinearly before the
    argmax), default the working size. batch: frames segmented per network call."""

    def __init__(
        self,
        model: nn.Module,
        frames: Tensor,
        num_objects: int,
        output_size: tuple[int, int] | None = None,
        batch: int = 8,
    ):
        if getattr(model, "mode", "interactive") != "interactive":
            raise ValueError(f"InteractiveSession needs an interactive model, not {model.mode!r}")
        self.model = model
        self.device = next(model.parameters()).device
        self.frames = frames
        self.num_objects = num_objects
        self.size = tuple(frames.shape[-2:])
        self.output_size = tuple(output_size or self.size)
        self.batch = batch
        length = frames.shape[0]
        self.labels = torch.zeros((length, *self.size), dtype=torch.uint8)  # working-size prediction
        self.scribbles: dict[int, Tensor] = {}  # frame -> bool [N, 2, H, W], all strokes so far
        self.memory: dict[int, tuple[Tensor, Tensor]] = {}  # frame -> (key, value) [1, N, hw, C]
        self._queries: list[QueryFeatures] | None = None

    def __len__(self) -> int:
        return self.frames.shape[0]

    @torch.inference_mode()
    def interact(self, frame: int, scribbles: Tensor) -> Tensor:
        """Adds scribbles (bool [N, 2, H, W] at the working size, positive / negative per object) on
        `frame`, refreshes that memory frame, re-segments the video. Returns uint8 [T, *output_size]."""
        if not 0 <= frame < len(self):
            raise IndexError(f"frame {frame} is outside the video (0..{len(self) - 1})")
        scribbles = torch.as_tensor(scribbles, dtype=torch.bool)
        expected = (self.num_objects, 2, *self.size)
        if tuple(scribbles.shape) != expected:
            raise ValueError(f"scribbles have shape {tuple(scribbles.shape)}, expected {expected}")
        previous = self.scribbles.get(frame)
        self.scribbles[frame] = scribbles if previous is None else previous | scribbles
        self.memory[frame] = self._encode_memory(frame)
        return self._segment_all()

    def _encode_memory(self, frame: int) -> tuple[Tensor, Tensor]:
        ids = torch.arange(1, self.num_objects + 1).view(-1, 1, 1)
        masks = (self.labels[frame].unsqueeze(0) == ids).float().unsqueeze(0)
        scribbles = self.scribbles[frame].float().unsqueeze(0)
        image = self.frames[frame : frame + 1].to(self.device)
        return self.model.encode_memory(image, masks.to(self.device), scribbles.to(self.device))

    def queries(self) -> list[QueryFeatures]:
        """Query encodings of all frames in batches, computed on first use and kept for the video."""
        if self._queries is None:
            self._queries = [
                self.model.encode_query(self.frames[start : start + self.batch].to(self.device))
                for start in range(0, len(self), self.batch)
            ]
        return self._queries

    def _segment_all(self) -> Tensor:
        keys = torch.cat([key for key, _ in self.memory.values()], dim=2)
        values = torch.cat([value for _, value in self.memory.values()], dim=2)
        output = torch.zeros((len(self), *self.output_size), dtype=torch.uint8)
        for index, query in enumerate(self.queries()):
            start = index * self.batch
            count = query.value.shape[0]
            seg = self.model.segment(query, keys.expand(count, -1, -1, -1), values.expand(count, -1, -1, -1))
            probs = seg.probs
            self.labels[start : start + count] = probs.argmax(dim=1).to(torch.uint8).cpu()
            if self.output_size != self.size:
                probs = resize(probs, self.output_size)
            output[start : start + count] = probs.argmax(dim=1).to(torch.uint8).cpu()
        return output
