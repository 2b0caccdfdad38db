"""What a semi-supervised session remembers: memory keys and values in preallocated token slots.

Every memorised frame is one slot of h*w tokens per object, written once into a buffer
[1, N, slots * hw, C]; the read sees the occupied slots as one view, so nothing is concatenated
per frame. The slots are: the kept frames (the first frame, every N-th frame, frames where objects
are given) followed by the previous frame, which is overwritten each frame unless it is kept.

Attention is a softmax over all memory tokens, so their order is irrelevant: with a cap
(`max_frames`), a new kept frame simply overwrites the slot of the oldest unprotected kept frame.
Objects that join later (YouTube-VOS) have no tokens in slots written before they joined; each
slot records how many objects (channels, in join order) it holds, and a read groups objects by the
slots they may see.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class _Slot:
    frame: int  # index of the frame in the session
    objects: int  # channels 0..objects-1 hold tokens in this slot
    protected: bool  # never evicted (frames whose masks were given)


@dataclass
class MemoryGroup:
    """Objects [start, stop) and the memory they read: keys [1, n, L, Ck], values [1, n, L, Cv]."""

    start: int
    stop: int
    key: Tensor
    value: Tensor


class MemoryBank:
    """max_frames: at most this many frames are read at once (kept frames plus the previous one);
    None grows without bound. Frames with given masks are never dropped."""

    def __init__(self, max_frames: int | None = None):
        if max_frames is not None and max_frames < 2:
            raise ValueError("max_frames must be at least 2 (the first frame and the previous one)")
        self.max_frames = max_frames
        self.kept: list[_Slot] = []
        self.previous: _Slot | None = None
        self._key: Tensor | None = None  # [1, N, capacity * hw, Ck]
        self._value: Tensor | None = None
        self._tokens = 0  # hw: tokens per frame per object

    @property
    def objects(self) -> int:
        return 0 if self._key is None else self._key.shape[1]

    @property
    def slots(self) -> int:
        return len(self.kept) + (self.previous is not None)

    def frames(self) -> list[int]:
        """Frame indices in memory, kept frames first (in slot order), then the previous frame."""
        return [slot.frame for slot in self.kept] + ([self.previous.frame] if self.previous else [])

    def add(self, frame: int, key: Tensor, value: Tensor, keep: bool, protected: bool = False) -> None:
        """Memorises `frame` as the previous frame: key [1, n, hw, Ck], value [1, n, hw, Cv] for the
        first n objects (n never shrinks). keep: it stays once the next frame arrives."""
        objects, tokens = key.shape[1], key.shape[2]
        if self._key is None:
            self._tokens = tokens
            self._allocate(objects, self._initial_capacity(), key, value)
        elif tokens != self._tokens:
            raise ValueError(f"memory frames must have the same size ({tokens} tokens, expected {self._tokens})")
        elif objects > self.objects:
            self._allocate(objects, self._capacity(), key, value)
        elif objects < self.objects:
            raise ValueError(f"a memory frame holds {objects} objects, the bank already has {self.objects}")
        if len(self.kept) >= self._capacity():  # the previous frame goes into slot len(kept)
            self._allocate(self.objects, 2 * self._capacity(), key, value)
        index = len(self.kept)
        self._write(index, key, value)
        self.previous = _Slot(frame, objects, protected)
        if keep:
            self._keep_previous()

    def groups(self) -> list[MemoryGroup]:
        """The memory each group of objects reads, as views when the slots are all shared."""
        slots = self.kept + ([self.previous] if self.previous else [])
        counts = sorted({slot.objects for slot in slots})
        groups, start = [], 0
        for count in counts:
            visible = [i for i, slot in enumerate(slots) if slot.objects >= count]
            if len(visible) == len(slots):
                key, value = self._view(len(slots))
            else:
                index = torch.tensor(visible, device=self._key.device)
                tokens = (index[:, None] * self._tokens + torch.arange(self._tokens, device=index.device)).flatten()
                key = self._key[:, :, : len(slots) * self._tokens].index_select(2, tokens)
                value = self._value[:, :, : len(slots) * self._tokens].index_select(2, tokens)
            groups.append(MemoryGroup(start, count, key[:, start:count], value[:, start:count]))
            start = count
        return groups

    def _keep_previous(self) -> None:
        slot, self.previous = self.previous, None
        limit = None if self.max_frames is None else self.max_frames - 1  # room for the next previous frame
        if limit is not None and len(self.kept) >= limit:
            candidates = [i for i, kept in enumerate(self.kept) if not kept.protected]
            if candidates:
                oldest = min(candidates, key=lambda i: self.kept[i].frame)
                self._copy_slot(len(self.kept), oldest)
                self.kept[oldest] = slot
                return
        self.kept.append(slot)

    def _initial_capacity(self) -> int:
        return self.max_frames if self.max_frames is not None else 8

    def _capacity(self) -> int:
        return self._key.shape[2] // self._tokens

    def _allocate(self, objects: int, capacity: int, key: Tensor, value: Tensor) -> None:
        """(Re)allocates the buffers for `objects` channels and `capacity` slots, keeping the contents."""
        shape = (1, objects, capacity * self._tokens)
        new_key = key.new_zeros(*shape, key.shape[-1])
        new_value = value.new_zeros(*shape, value.shape[-1])
        if self._key is not None:
            used = self.slots * self._tokens
            new_key[:, : self.objects, :used] = self._key[:, :, :used]
            new_value[:, : self.objects, :used] = self._value[:, :, :used]
        self._key, self._value = new_key, new_value

    def _write(self, index: int, key: Tensor, value: Tensor) -> None:
        span = slice(index * self._tokens, (index + 1) * self._tokens)
        objects = key.shape[1]
        self._key[:, :objects, span] = key
        self._value[:, :objects, span] = value

    def _copy_slot(self, source: int, target: int) -> None:
        src = slice(source * self._tokens, (source + 1) * self._tokens)
        dst = slice(target * self._tokens, (target + 1) * self._tokens)
        self._key[:, :, dst] = self._key[:, :, src]
        self._value[:, :, dst] = self._value[:, :, src]

    def _view(self, slots: int) -> tuple[Tensor, Tensor]:
        used = slots * self._tokens
        return self._key[:, :, :used], self._value[:, :, :used]
