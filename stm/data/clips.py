"""Training clips: what a clip is, how sources are mixed, and how a batch is formed.

Every random choice of a clip comes from a seed carried by its request, and the requests of step s
are drawn from (seed, rank, s) alone. A run resumed at step s therefore sees exactly the batches it
would have seen, whatever the number of data workers, and the skip curriculum is a function of s.

A sample that cannot be read (a corrupt image) is replaced by another item of the same source (drawn
from the request's seed, so still reproducible); the batch carries the skipped files' names and the
trainer warns, counts and aborts when there are too many. After REPLACEMENTS failed tries in a row
the request comes back as a BadSample and the batch is formed from the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from stm.data.io import VOID, without_void
from stm.errors import StmError

log = logging.getLogger("stm")

REPLACEMENTS = 5  # tries per request before it comes back as a BadSample


@dataclass
class Clip:
    """T frames and their object ids 0..N (0 = background, 255 = void), the objects renumbered 1..N."""

    frames: Tensor  # float [T, 3, H, W] in [0, 1]
    labels: Tensor  # uint8 [T, H, W]
    objects: int
    name: str = ""
    skipped: list[str] = field(default_factory=list)  # unreadable samples tried (and replaced) before this one


@dataclass
class BadSample:
    """A sample that could not be made; `reason` names the file."""

    reason: str


@dataclass(frozen=True)
class ClipRequest:
    """Which clip to make: source and item, the largest skip allowed now, and the seed of its randomness."""

    source: int
    index: int
    max_skip: int
    seed: int


class ClipSource(Protocol):
    """Anything that makes clips: static images (stm.data.static) or videos (stm.data.video)."""

    name: str

    def __len__(self) -> int: ...

    def clip(self, index: int, rng: np.random.Generator, max_skip: int) -> Clip: ...


class ClipDataset(torch.utils.data.Dataset):
    """Sources indexed by ClipRequest (used with ClipSampler as the DataLoader's batch_sampler)."""

    def __init__(self, sources: Sequence[ClipSource]):
        self.sources = list(sources)

    def __len__(self) -> int:
        return sum(len(source) for source in self.sources)

    def __getitem__(self, request: ClipRequest) -> Clip | BadSample:
        source = self.sources[request.source]
        rng = np.random.default_rng(request.seed)
        index, skipped = request.index, []
        for _attempt in range(REPLACEMENTS):
            try:
                clip = source.clip(index, rng, request.max_skip)
            except StmError as exc:
                skipped.append(f"{source.name}: {exc}")
                index = int(rng.integers(len(source)))
                continue
            clip.skipped = skipped
            return clip
        return BadSample("; ".join(skipped))


class ClipSampler:
    """Batches of ClipRequests for steps start..stop-1: sources picked by weight, items uniformly."""

    def __init__(
        self,
        sizes: Sequence[int],
        weights: Sequence[float],
        batch_size: int,
        max_skip: Callable[[int], int],
        seed: int = 0,
        rank: int = 0,
        start: int = 0,
        stop: int = 1,
    ):
        if not sizes or min(sizes) < 1:
            raise ValueError("every source needs at least one item")
        self.sizes, self.batch_size, self.max_skip = list(sizes), batch_size, max_skip
        self.weights = np.asarray(weights, dtype=np.float64) / np.sum(weights)
        self.seed, self.rank, self.start, self.stop = seed, rank, start, stop

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def batch(self, step: int) -> list[ClipRequest]:
        rng = np.random.default_rng([self.seed, self.rank, step])
        sources = rng.choice(len(self.sizes), size=self.batch_size, p=self.weights)
        seeds = rng.integers(0, 2**63, size=self.batch_size)
        skip = self.max_skip(step)
        return [
            ClipRequest(int(s), int(rng.integers(self.sizes[s])), skip, int(seed))
            for s, seed in zip(sources, seeds, strict=True)
        ]

    def __iter__(self) -> Iterator[list[ClipRequest]]:
        for step in range(self.start, self.stop):
            yield self.batch(step)


@dataclass
class ClipBatch:
    frames: Tensor  # float [B, T, 3, H, W]
    labels: Tensor  # long [B, T, H, W], ids 0..N, 255 = void (no loss)
    valid: Tensor  # bool [B, N]: which object slots are real (clips have different counts)
    bad: list[str] = field(default_factory=list)  # reasons of the samples dropped from this batch
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return self.frames.shape[0]

    @property
    def objects(self) -> int:
        return self.valid.shape[1]

    def masks(self) -> Tensor:
        """One-hot object masks float [B, T, N, H, W] (background excluded)."""
        ids = torch.arange(1, self.objects + 1, device=self.labels.device)
        return (self.labels.unsqueeze(2) == ids[:, None, None]).float()

    def to(self, device: torch.device | str) -> ClipBatch:
        return ClipBatch(
            self.frames.to(device, non_blocking=True),
            self.labels.to(device, non_blocking=True),
            self.valid.to(device),
            self.bad,
            self.names,
        )


def collate_clips(samples: list[Clip | BadSample]) -> ClipBatch:
    """Stacks the good clips; object slots are padded to the largest count (at least 1)."""
    clips = [s for s in samples if isinstance(s, Clip)]
    bad = [reason for clip in clips for reason in clip.skipped]
    bad += [s.reason for s in samples if isinstance(s, BadSample)]
    if not clips:
        empty = torch.zeros(0)
        return ClipBatch(empty, empty.long(), torch.zeros(0, 1, dtype=torch.bool), bad)
    objects = max(1, max(clip.objects for clip in clips))
    valid = torch.tensor([[k < clip.objects for k in range(objects)] for clip in clips])
    frames = torch.stack([clip.frames for clip in clips])
    labels = torch.stack([clip.labels for clip in clips]).long()
    return ClipBatch(frames, labels, valid, bad, [clip.name for clip in clips])


def pick_objects(rng: np.random.Generator, labels: np.ndarray, max_objects: int, min_pixels: int) -> list[int]:
    """Up to max_objects random ids among those covering at least min_pixels of `labels` (void is none)."""
    ids, counts = np.unique(without_void(labels), return_counts=True)
    present = [int(i) for i, c in zip(ids, counts, strict=True) if i != 0 and c >= min_pixels]
    rng.shuffle(present)
    return sorted(present[:max_objects])


def renumber(labels: np.ndarray, chosen: list[int]) -> np.ndarray:
    """Ids `chosen` become 1..len(chosen); void stays void (the loss ignores it); every other id
    becomes background."""
    lookup = np.zeros(256, dtype=np.uint8)
    lookup[VOID] = VOID
    for new, old in enumerate(chosen, start=1):
        lookup[old] = new
    return lookup[labels]

