"""Builds the training clip sources, dataset and loader that a config describes."""

from __future__ import annotations

import logging

import torch

from stm.config import Config
from stm.data.clips import ClipDataset, ClipSampler, collate_clips
from stm.data.static import StaticSource
from stm.data.synthetic import SyntheticSpec, ensure_synthetic_davis
from stm.data.video import VideoSource
from stm.errors import StmError
from stm.train.schedules import max_skip

log = logging.getLogger("stm")


def ensure_generated_data(config: Config) -> None:
    """Generates data.synthetic's videos on first use (a complete copy is kept)."""
    syn = config.data.synthetic
    if syn is None:
        return
    spec = SyntheticSpec(syn.height, syn.width, syn.min_frames, syn.max_frames, 1, syn.max_objects)
    log.info("synthetic videos in %s (generated on first use)", syn.root)
    ensure_synthetic_davis(syn.root, spec, train=syn.train, val=syn.val, seed=syn.seed)


def build_sources(config: Config) -> tuple[list, list[float]]:
    data = config.data
    size = (data.size[0], data.size[1])
    sources: list = [StaticSource(s, size, data.frames, data.max_objects, data.static_augment) for s in data.static]
    sources += [VideoSource(v, size, data.frames, data.max_objects, data.video_augment) for v in data.video]
    if not sources:
        raise StmError("data: no training source (set data.static or data.video)")
    weights = [s.weight for s in data.static] + [v.weight for v in data.video]
    return sources, weights


def build_loader(
    config: Config, rank: int, start: int, stop: int | None = None, workers: int | None = None
) -> torch.utils.data.DataLoader:
    """Batches for steps start..stop-1 (default train.steps-1) of this process."""
    sources, weights = build_sources(config)
    sampler = ClipSampler(
        [len(s) for s in sources],
        weights,
        config.train.batch_size,
        lambda step: max_skip(config.data.skip, step),
        seed=config.train.seed,
        rank=rank,
        start=start,
        stop=config.train.steps if stop is None else stop,
    )
    workers = config.data.workers if workers is None else workers
    return torch.utils.data.DataLoader(
        ClipDataset(sources),
        batch_sampler=sampler,
        collate_fn=collate_clips,
        num_workers=workers,
        persistent_workers=False,
        prefetch_factor=2 if workers else None,
    )
