"""What changes with the step: the learning rate and the max-skip curriculum. Both are pure functions
of the step, so restoring the step restores them."""

from __future__ import annotations

import math

from stm.config import SkipCurriculumConfig, TrainConfig


def lr_factor(config: TrainConfig, step: int) -> float:
    """Multiplier of train.lr at `step`: linear warm-up, then the configured decay."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = min(step / config.steps, 1.0)
    if config.lr_schedule == "step":
        return config.lr_gamma ** sum(step >= milestone for milestone in config.lr_milestones)
    if config.lr_schedule == "poly":
        return (1 - progress) ** 0.9
    if config.lr_schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


def max_skip(config: SkipCurriculumConfig, step: int) -> int:
    """The curriculum's max skip at `step`: linear from start to end over ramp_steps."""
    if config.ramp_steps <= 0 or step >= config.ramp_steps:
        return config.end
    return int(round(config.start + (config.end - config.start) * step / config.ramp_steps))
