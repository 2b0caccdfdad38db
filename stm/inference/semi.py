"""Semi-supervised propagation: masks given on some frames, segmented on every frame, one at a time.

A `SemiSupervisedSession` owns everything that lives across frames (the memory bank, the object-id
map, the frame just segmented); the network stays stateless. Per frame:

1. the previous frame is memorised with its soft probabilities (encoded once; kept in memory when
   it is the first frame, every `mem_every`-th frame, or a frame whose masks were given);
2. the query frame is encoded once and read against the memory by all objects;
3. the objects' probabilities are soft-aggregated; masks given on this frame overwrite them
   (objects given for the first time join here, so ids may arrive mid-video and be non-contiguous).

This is the official STM schedule: frame t reads the kept frames before t-1 plus frame t-1.

With a working `size` the network sees every frame at that short side (stm.inference.working_size);
probabilities come back to the frame's own size before the argmax, and given masks are applied at
the frame's size, so results are always at the size of the frames passed in. `remember` adds a
frame whose masks are known from elsewhere (a hand-annotated frame the session will not visit) to
the memory, protected, without segmenting it.

    session = SemiSupervisedSession(model, mem_every=5)
    for index, frame in enumerate(frames):
        result = session.step(frame, first_labels if index == 0 else None)
        result.labels  # [H, W] original object ids
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from stm.inference.heap import release_freed_memory
from stm.inference.memory_bank import MemoryBank
from stm.inference.working_size import resize, working_shape
from stm.model.aggregation import channel_argmax
from stm.precision import autocast, autocast_dtype


@dataclass
class FrameResult:
    """One segmented frame. probs channels are [background, objects in `ids` order]."""

    index: int
    labels: np.ndarray  # [H, W] original object ids
    probs: Tensor  # [1 + K, H, W] float32, sums to 1 over dim 0
    ids: list[int]  # sorted object ids of probs[1:]


def frame_tensor(frame: np.ndarray | Tensor, device: torch.device, channels_last: bool = False) -> Tensor:
    """HxWx3 uint8 RGB (numpy) or [3, H, W] float in [0, 1] -> [1, 3, H, W] float32 on `device`."""
    if isinstance(frame, np.ndarray):
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 RGB frame, got shape {frame.shape}")
        frame = np.ascontiguousarray(frame) if frame.flags.writeable else np.array(frame)  # torch wants writable
        x = torch.from_numpy(frame).to(device).permute(2, 0, 1)[None]
        x = x.float().div_(255) if frame.dtype == np.uint8 else x.float()
    else:
        x = frame.to(device=device, dtype=torch.float32)
        x = x[None] if x.dim() == 3 else x
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=memory_format)


class SemiSupervisedSession:
    """mem_every: keep every N-th frame in memory (5 on DAVIS); max_memory_frames: read at most this
    many frames (first, given and previous frames included; None = unbounded); amp: autocast (True =
    bf16 on the CPU, fp16 on CUDA, or "bf16"/"fp16"); channels_last: feed frames in NHWC layout (use
    with a model converted by `model.to(memory_format=torch.channels_last)`); size: the short side the
    network runs at (None: each frame's own size; resolve a checkpoint's with working_size.resolve_size)."""

    def __init__(
        self,
        model: nn.Module,
        mem_every: int = 5,
        max_memory_frames: int | None = None,
        amp: bool | str = False,
        channels_last: bool = False,
        size: int | None = None,
    ):
        if mem_every < 1:
            raise ValueError("mem_every must be at least 1")
        self.model = model
        self.mem_every = mem_every
        self.device = next(model.parameters()).device
        self.amp_dtype = autocast_dtype(self.device, amp)
        # Objects one at a time on the CPU (same result, about the same speed, a lower peak memory);
        # batched on a GPU, where one object alone leaves it idle.
        self.objects_per_pass = 1 if self.device.type == "cpu" else 0
        self.channels_last = channels_last
        self.size = size
        self.bank = MemoryBank(max_memory_frames)
        self.ids: list[int] = []  # object ids in channel (join) order
        self.frame_index = 0
        self._start: int | None = None  # first frame with objects; the keep schedule counts from it
        self._pending: tuple[int, Tensor, Tensor, bool, bool] | None = None  # frame to memorise next step

    def step(
        self, frame: np.ndarray | Tensor, labels: np.ndarray | None = None, ids: list[int] | None = None
    ) -> FrameResult:
        """Segments the next frame. labels: [H, W] ids given for this frame (0 = none given), or None;
        ids: the objects those labels speak for (default: the ids in them; a listed id absent from
        `labels` is absent from this frame)."""
        with torch.inference_mode(), autocast(self.device, self.amp_dtype):
            x, size = self._network_input(frame)
            self._memorise_pending()
            probs = self._segment(x) if self.ids else None  # working size
            output = None if probs is None else resize(probs, size)
            given = labels is not None and bool(np.any(labels))
            if given:
                output = self._apply_given(output, labels, size, ids)
                probs = resize(output, x.shape[-2:])
            elif output is None:
                output = x.new_ones(1, 1, *size, dtype=torch.float32)
            index = self.frame_index
            if self.ids:
                if self._start is None:
                    self._start = index
                keep = given or (index - self._start) % self.mem_every == 0
                self._pending = (index, x, probs[:, 1:], keep, given)
            self.frame_index += 1
            result = self._result(index, output[0])
        release_freed_memory()  # this frame's temporaries, before the next frame's peak
        return result

    def remember(self, frame: np.ndarray | Tensor, labels: np.ndarray, ids: list[int] | None = None) -> None:
        """Memorises `frame` with its given masks as a protected memory frame, without segmenting it or
        counting it as a step (its slot is numbered -1). labels and ids as in `step`."""
        if not np.any(labels):
            raise ValueError("remember needs labels with at least one object")
        with torch.inference_mode(), autocast(self.device, self.amp_dtype):
            x, size = self._network_input(frame)
            masks = resize(self._apply_given(None, labels, size, ids), x.shape[-2:])[:, 1:]
            key, value = self.model.encode_memory(x, masks, objects_per_pass=self.objects_per_pass)
            # Replaces only the previous frame's slot when that one is not kept, which the next step's
            # pending frame replaces anyway.
            self.bank.add(-1, key, value, keep=True, protected=True)

    def _network_input(self, frame: np.ndarray | Tensor) -> tuple[Tensor, tuple[int, int]]:
        """The frame at the working size in the network's layout, and the frame's own (H, W)."""
        image = frame_tensor(frame, self.device)
        size = tuple(image.shape[-2:])
        x = resize(image, working_shape(size, self.size))
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=memory_format), size

    def _memorise_pending(self) -> None:
        if self._pending is None:
            return
        index, x, masks, keep, protected = self._pending
        self._pending = None
        key, value = self.model.encode_memory(x, masks, objects_per_pass=self.objects_per_pass)
        self.bank.add(index, key, value, keep=keep, protected=protected)

    def _segment(self, x: Tensor) -> Tensor:
        """[1, 1 + K, H, W] aggregated probabilities in channel order."""
        groups = self.bank.groups()
        keys, values = [g.key for g in groups], [g.value for g in groups]
        query = self.model.encode_query(x)
        return self.model.segment(query, keys, values, objects_per_pass=self.objects_per_pass).probs

    def _apply_given(
        self, probs: Tensor | None, labels: np.ndarray, size: tuple[int, int], ids: list[int] | None = None
    ) -> Tensor:
        """Masks given on this frame are ground truth for the ids they speak for; new ids join."""
        if tuple(labels.shape) != tuple(size):
            raise ValueError(f"labels of shape {labels.shape} for a frame of size {tuple(size)}")
        present = sorted(int(i) for i in np.unique(labels) if i != 0)
        self.ids.extend(i for i in present if i not in self.ids)
        given_ids = sorted(set(present) | {int(i) for i in ids or () if int(i) in self.ids})
        objects = len(self.ids)
        target = torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64)).to(self.device)
        if probs is None:
            probs = torch.zeros(1, 1 + objects, *size, device=self.device)
            probs[:, 0] = 1
        elif probs.shape[1] < 1 + objects:
            probs = torch.cat([probs, probs.new_zeros(1, 1 + objects - probs.shape[1], *size)], dim=1)
        for object_id in given_ids:  # given ids exist only where given
            probs[:, 1 + self.ids.index(object_id)] = 0
        channel = torch.zeros(int(target.max()) + 1, dtype=torch.int64, device=self.device)
        channel[torch.tensor(present, device=self.device)] = torch.tensor(
            [1 + self.ids.index(i) for i in present], device=self.device
        )
        inside = target > 0
        one_hot = torch.nn.functional.one_hot(channel[target], 1 + objects).permute(2, 0, 1).to(probs.dtype)
        probs = torch.where(inside, one_hot[None], probs)
        total = probs.sum(dim=1, keepdim=True)  # < 1 where a given id's predicted mass was removed
        background = torch.zeros_like(probs)
        background[:, 0] = 1
        return torch.where(total > 1e-12, probs / total.clamp_min(1e-12), background)

    def _result(self, index: int, probs: Tensor) -> FrameResult:
        order = sorted(range(len(self.ids)), key=lambda c: self.ids[c])
        ids = [self.ids[c] for c in order]
        lookup = np.array([0, *self.ids], dtype=np.uint8 if max(self.ids, default=0) < 256 else np.int32)
        labels = lookup[channel_argmax(probs, dim=0).cpu().numpy()]
        if order != list(range(len(order))):
            probs = probs[[0, *(1 + c for c in order)]]
        return FrameResult(index, labels, probs.float(), ids)


def propagate(
    model: nn.Module,
    frames: Iterable[np.ndarray | Tensor],
    first_labels: np.ndarray,
    mem_every: int = 5,
    max_memory_frames: int | None = None,
    amp: bool | str = False,
    channels_last: bool = False,
) -> Iterator[np.ndarray]:
    """Yields the [H, W] id map of every frame (frame 0 gives back `first_labels`' objects).
    frames: HxWx3 uint8 RGB arrays or [3, H, W] float tensors, read lazily one at a time."""
    session = SemiSupervisedSession(model, mem_every, max_memory_frames, amp, channels_last)
    for index, frame in enumerate(frames):
        yield session.step(frame, first_labels if index == 0 else None).labels
