"""InteractiveSession: interactive segmentation of one video from user (or robot) scribbles.

Each interaction names a frame and brings new scribbles on it. That frame becomes (or is refreshed
as) a memory frame: the memory encoder sees its RGB, its current mask (the last prediction, empty
before the first interaction) and every scribble drawn on it so far. Then every frame of the video
is segmented from the memory of all interacted frames, in batches of frames.

Memory stays bounded on long videos. Frames do not change between rounds, so their query encodings
could be computed once, but they are large (at 480p with ResNet-50, about 37 MB per frame in fp32:
the decoder-ready 1/4 and 1/8 skip features dominate). They are kept for the first batches that fit in
`cache_bytes`; the others are encoded again in every round. Frames may be given lazily (any sequence
of [3, H, W] tensors), so the video itself need not be in memory either. A memory frame is
re-encoded only when it receives new scribbles.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from stm.inference.working_size import resize
from stm.model.aggregation import channel_argmax
from stm.model.stm import QueryFeatures

# Query encodings kept across rounds: every frame of a 64x112 demo video, about 14 frames at 480p.
CACHE_BYTES = 512 * 2**20


def feature_bytes(query: QueryFeatures) -> int:
    return sum(t.numel() * t.element_size() for t in (query.key, query.value, query.skip_8, query.skip_4))


class InteractiveSession:
    """frames: the video at the working size, RGB in [0, 1]: a [T, 3, H, W] tensor, or any sequence of
    [3, H, W] tensors (len() and frames[t]; a lazy reader is read again in each round for the frames
    whose encodings are not kept). num_objects: N (ids 1..N). output_size: (H, W) of the returned label
    maps (probabilities are resized bilinearly before the argmax), default the working size. batch:
    frames segmented per network call. cache_bytes: query encodings kept across rounds (0: none)."""

    def __init__(
        self,
        model: nn.Module,
        frames: Tensor | Sequence[Tensor],
        num_objects: int,
        output_size: tuple[int, int] | None = None,
        batch: int = 8,
        cache_bytes: int = CACHE_BYTES,
    ):
        if getattr(model, "mode", "interactive") != "interactive":
            raise ValueError(f"InteractiveSession needs an interactive model, not {model.mode!r}")
        if len(frames) == 0:
            raise ValueError("the video has no frames")
        self.model = model
        self.device = next(model.parameters()).device
        self.frames = frames
        self.num_objects = num_objects
        self.size = tuple(frames[0].shape[-2:])
        self.output_size = tuple(output_size or self.size)
        self.batch = batch
        self.cache_bytes = cache_bytes
        self.labels = torch.zeros((len(frames), *self.size), dtype=torch.uint8)  # working-size prediction
        self.scribbles: dict[int, Tensor] = {}  # frame -> bool [N, 2, H, W], all strokes so far
        self.memory: dict[int, tuple[Tensor, Tensor]] = {}  # frame -> (key, value) [1, N, hw, C]
        self._queries: dict[int, QueryFeatures] = {}  # first frame of a batch -> its kept query encodings

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def cached_bytes(self) -> int:
        """Bytes of query encodings kept across rounds (at most cache_bytes)."""
        return sum(feature_bytes(query) for query in self._queries.values())

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

    def _read(self, start: int, stop: int) -> Tensor:
        """Frames start..stop-1 as [n, 3, H, W] on the model's device."""
        if isinstance(self.frames, Tensor):
            return self.frames[start:stop].to(self.device)
        frames = [torch.as_tensor(self.frames[t]) for t in range(start, stop)]
        for t, frame in enumerate(frames, start):
            if tuple(frame.shape) != (3, *self.size):
                raise ValueError(f"frame {t} has shape {tuple(frame.shape)}, expected {(3, *self.size)} as frame 0")
        return torch.stack(frames).to(self.device)

    def _encode_memory(self, frame: int) -> tuple[Tensor, Tensor]:
        ids = torch.arange(1, self.num_objects + 1).view(-1, 1, 1)
        masks = (self.labels[frame].unsqueeze(0) == ids).float().unsqueeze(0)
        scribbles = self.scribbles[frame].float().unsqueeze(0)
        return self.model.encode_memory(self._read(frame, frame + 1), masks.to(self.device), scribbles.to(self.device))

    def _query(self, start: int) -> QueryFeatures:
        """Query encodings of the batch starting at `start`: kept ones, or encoded now (and kept while
        the cache has room; later batches are then encoded again in every round)."""
        query = self._queries.get(start)
        if query is None:
            query = self.model.encode_query(self._read(start, min(start + self.batch, len(self))))
            if self.cached_bytes + feature_bytes(query) <= self.cache_bytes:
                self._queries[start] = query
        return query

    def _segment_all(self) -> Tensor:
        keys = torch.cat([key for key, _ in self.memory.values()], dim=2)
        values = torch.cat([value for _, value in self.memory.values()], dim=2)
        output = torch.zeros((len(self), *self.output_size), dtype=torch.uint8)
        for start in range(0, len(self), self.batch):
            query = self._query(start)
            count = query.value.shape[0]
            probs = self.model.segment(query, keys.expand(count, -1, -1, -1), values.expand(count, -1, -1, -1)).probs
            self.labels[start : start + count] = channel_argmax(probs, dim=1).to(torch.uint8).cpu()
            if self.output_size != self.size:
                probs = resize(probs, self.output_size)
            output[start : start + count] = channel_argmax(probs, dim=1).to(torch.uint8).cpu()
        return output
