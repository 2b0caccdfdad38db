"""One process of the two-process tests, run by torchrun as train.py would be:

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/train/ddp_worker.py MODE train.py-args

It trains on `fixed_batches` (the same clips however many processes share them) and, in the fault
modes, breaks rank 1 only:

- fixed: nothing breaks; every rank writes its parameters' gradients of the last step to
  <run.dir>/grads_rank<R>.pt;
- nan-grad: at step 2 rank 1's loss stays finite but its gradient is NaN;
- empty-batch: at step 2 every sample of rank 1's batch is unreadable.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

from stm.cli import run
from stm.config import Config, load_config
from stm.data.clips import BadSample, collate_clips
from stm.train import trainer as trainer_module
from stm.train.datasets import build_sources
from stm.train.steps import CLIP_STEPS, SemiClipStep, StepOutput


def fixed_batches(config: Config, rank: int, start: int, stop: int | None = None, workers: int | None = None,
                  world: int | None = None) -> list:
    """The batches of steps start..stop-1: step s has world * train.batch_size clips, the same ones for
    any world size; rank r takes the r-th contiguous part (a drop-in for stm.train.datasets.build_loader)."""
    world = world or int(os.environ.get("WORLD_SIZE", "1"))
    source = build_sources(config)[0][0]
    size = config.train.batch_size
    batches = []
    for step in range(start, config.train.steps if stop is None else stop):
        clips = [source.clip(i % len(source), np.random.default_rng([step, i]), 2) for i in range(world * size)]
        batches.append(collate_clips(clips[rank * size : (rank + 1) * size]))
    return batches


class Poison(torch.autograd.Function):
    """Identity forward, NaN gradient backward: a finite loss with a non-finite gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float("nan"))


class NanGradStep(SemiClipStep):
    """The semi step; at step index 1 (the second step) of rank `rank` its gradient is NaN."""

    def __init__(self, model, loss, rank: int):
        super().__init__(model, loss)
        self.rank = rank

    def forward(self, batch, step):
        output = super().forward(batch, step)
        if step == 1 and self.rank == 1:
            return StepOutput(Poison.apply(output.loss), output.probs)
        return output


def main(argv: list[str] | None = None) -> int:
    mode, *overrides = argv if argv is not None else sys.argv[1:]
    rank = int(os.environ.get("RANK", "0"))
    loader = fixed_batches
    if mode == "nan-grad":
        CLIP_STEPS["nan-grad"] = lambda model, loss, config: NanGradStep(model, loss, rank)
        overrides.append("train.step=nan-grad")
    if mode == "empty-batch":

        def loader(config, rank, start, stop=None, workers=None):
            batches = fixed_batches(config, rank, start, stop)
            if rank == 1 and start <= 1 < start + len(batches):
                batches[1 - start] = collate_clips([BadSample("clip.jpg: unreadable image")])
            return batches

    trainer_module.build_loader = loader
    config = load_config(None, overrides)
    trainer = trainer_module.Trainer(config, config.run.dir)
    trainer.fit()
    if mode == "fixed":
        grads = {name: p.grad for name, p in trainer.model.named_parameters() if p.grad is not None}
        torch.save(grads, os.path.join(config.run.dir, f"grads_rank{trainer.dist.rank}.pt"))
    return 0


if __name__ == "__main__":
    run(main)
