"""The training loop: clip steps under AMP, DDP across processes, resumable checkpoints, logs.

A run lives in one folder (RunFolder). Starting a run whose folder holds latest.pth resumes it:
model, optimizer, scheduler, gradient scaler, step, counters and RNG states come back, and the data
order continues where it stopped (ClipSampler draws step s's batch from the step alone). Training
stops at train.steps, after train.max_minutes, or on SIGTERM/SIGINT, and always saves first.

Bad input does not lose work: an unreadable sample is skipped with a warning (abort past
train.max_bad_samples), a non-finite loss or gradient skips its step (abort after train.max_nan_steps
in a row), and every abort saves the last good state first. Under torchrun each of these decisions
is taken from flags summed over the processes, so all of them skip, save or stop at the same step:
one process alone would leave the others waiting in a collective, or be killed before saving.
"""

from __future__ import annotations

import importlib
import logging
import random
import signal
import time
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter

from stm.config import Config, TrainConfig, to_dict
from stm.data.clips import ClipBatch
from stm.errors import StmError
from stm.model.checkpoint import (
    FORMAT_VERSION,
    load_imagenet_weights,
    load_initial_weights,
    load_weights,
    training_size,
)
from stm.model.stm import STM
from stm.precision import autocast, autocast_dtype
from stm.progress import progress
from stm.train.datasets import build_loader
from stm.train.distributed import Distributed, init_distributed
from stm.train.losses import SegmentationLoss, hard_fraction
from stm.train.overlays import overlay_grid
from stm.train.run_folder import RunFolder
from stm.train.schedules import lr_factor, max_skip
from stm.train.steps import CLIP_STEPS

log = logging.getLogger("stm")

Validator = Callable[[STM, int], dict[str, float]]


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise StmError("train.device: cuda was asked for but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def clip_step(name: str, model: STM, loss: SegmentationLoss, config: Config) -> nn.Module:
    """The registered clip step `name`; stm.train.<name>_step is imported first if it exists."""
    if name not in CLIP_STEPS:
        try:
            importlib.import_module(f"stm.train.{name}_step")
        except ModuleNotFoundError:
            pass
    if name not in CLIP_STEPS:
        raise StmError(f"train.step: {name!r} is not one of {', '.join(sorted(CLIP_STEPS))}")
    return CLIP_STEPS[name](model, loss, config)


def parameter_groups(model: nn.Module, train: TrainConfig) -> list[dict[str, Any]]:
    """The trainable parameters in groups of equal learning rate: train.lr times the factor of the longest
    train.lr_factors prefix a parameter's name starts with (1 without one). A prefix matching nothing is
    an error, so a typo cannot silently train at the plain rate."""
    groups: dict[float, list[nn.Parameter]] = {}
    used = set()
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        prefix = max((p for p in train.lr_factors if name.startswith(p)), key=len, default=None)
        used.add(prefix)
        groups.setdefault(train.lr_factors.get(prefix, 1.0), []).append(parameter)
    unused = sorted(set(train.lr_factors) - used)
    if unused:
        raise StmError(f"train.lr_factors: no trainable parameter is named {unused[0]}...")
    return [{"params": params, "lr": train.lr * factor} for factor, params in groups.items()]


def freeze_batchnorm(model: nn.Module) -> None:
    """BatchNorm in eval mode with fixed affine parameters (the paper's setting on pretrained trunks)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
            for parameter in module.parameters():
                parameter.requires_grad_(False)


def rng_state() -> dict[str, Any]:
    state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [state[0], torch.from_numpy(state[1].astype(np.int64)), *state[2:]],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


class StopSignal:
    """Turns SIGTERM / SIGINT into a flag the loop checks after each step (then it saves and stops)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
        for number in (signal.SIGTERM, signal.SIGINT):
            self.previous[number] = signal.signal(number, self.handle)
        return self

    def handle(self, number: int, _frame: Any) -> None:
        self.received = number

    def __exit__(self, *_exc: Any) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)


class Trainer:
    def __init__(self, config: Config, run_dir: str | Path):
        self.config = config
        train = config.train
        if train.threads > 0:
            torch.set_num_threads(train.threads)
        self.device = pick_device(train.device)
        self.dist: Distributed = init_distributed(self.device)
        if self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        try:
            self.amp = autocast_dtype(self.device, train.amp)
        except StmError as exc:
            raise StmError(f"train.amp: {exc}") from None
        self.folder = RunFolder(run_dir, config.run.keep_last)
        self.seed_everything(train.seed + self.dist.rank)

        model = config.model
        self.model = STM(model.mode, model.backbone, model.read_kernel, model.decoder_channels)
        self.pretrained = bool(config.model.imagenet_weights or config.model.init_weights)
        self.freeze_bn = self.pretrained if train.freeze_bn is None else train.freeze_bn
        self.step_module = clip_step(train.step, self.model, SegmentationLoss(train.loss), config)
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == torch.float16)
        self.step = 0
        self.train_seconds = 0.0  # training time over all sessions of this run (validation excluded)
        self.bad_samples = 0
        self.curve: list[dict[str, float]] = []
        self.writer: SummaryWriter | None = None
        self.session_start = time.monotonic()

    @staticmethod
    def seed_everything(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    # ----- state -----

    def setup(self) -> None:
        """Resumes from the run folder, or initialises weights (ImageNet trunks, init_weights)."""
        self.model.to(self.device)
        if self.config.train.channels_last:
            self.model.to(memory_format=torch.channels_last)
        resume = self.folder.has_checkpoint()
        checkpoint = self.folder.load_latest() if resume else None
        if checkpoint is not None:
            load_weights(self.model, self.folder.latest)
        else:
            if self.config.model.init_weights:
                load_initial_weights(self.model, self.config.model.init_weights)
            else:
                load_imagenet_weights(self.model, self.config.model.imagenet_weights)
        self.set_train_mode()
        train = self.config.train
        groups = parameter_groups(self.model, train)
        self.optimizer = torch.optim.Adam(groups, lr=train.lr, weight_decay=train.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(train, s))
        if checkpoint is not None:
            self.restore(checkpoint)
            if self.dist.is_main:
                print(f"resumed from step {self.step}", flush=True)
        if self.dist.enabled:
            self.step_module = DistributedDataParallel(
                self.step_module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self.config.train.find_unused_parameters,
            )

    def restore(self, checkpoint: dict[str, Any]) -> None:
        try:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.scheduler.load_state_dict(checkpoint["scheduler"])
        except (KeyError, ValueError, TypeError) as exc:
            raise StmError(f"{self.folder.latest}: cannot restore the optimizer ({exc}); other settings?") from None
        if checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.step = int(checkpoint["step"])
        self.train_seconds = float(checkpoint.get("train_seconds", 0.0))
        self.bad_samples = int(checkpoint.get("bad_samples", 0))
        self.curve = list(checkpoint.get("curve", []))
        states = checkpoint.get("rng") or []
        if self.dist.rank < len(states):
            set_rng_state(states[self.dist.rank])

    def gather_rng(self) -> list[dict[str, Any]]:
        """Every process's RNG state (rank order), so each resumes its own."""
        state = rng_state()
        if not self.dist.enabled:
            return [state]
        states: list[Any] = [None] * self.dist.world_size
        torch.distributed.all_gather_object(states, state)
        return states

    def save(self) -> None:
        """Collective (every rank calls it); rank 0 writes latest.pth and step_<N>.pth."""
        states = self.gather_rng()
        if not self.dist.is_main:
            return
        config = to_dict(self.config)
        checkpoint = {
            "format_version": FORMAT_VERSION,
            "model": self.model.state_dict(),
            "mode": self.model.mode,
            "backbone": self.model.backbone,
            "size": training_size(config),  # the short side inference runs at by default
            "step": self.step,
            "config": config,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "max_skip": max_skip(self.config.data.skip, self.step),
            "train_seconds": self.train_seconds,
            "bad_samples": self.bad_samples,
            "curve": self.curve,
            "rng": states,
        }
        self.folder.save(checkpoint, self.step)

    def set_train_mode(self) -> None:
        self.model.train()
        if self.freeze_bn:
            freeze_batchnorm(self.model)

    # ----- the loop -----

    def autocast(self) -> AbstractContextManager:
        return autocast(self.device, self.amp)

    def train_step(self, batch: ClipBatch) -> tuple[float, torch.Tensor | None, bool]:
        """One optimizer step, applied only when the loss and the gradient are finite on every process.
        Returns (mean loss over processes, predictions, whether it was applied)."""
        batch = batch.to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            output = self.step_module(batch, self.step)
        self.scaler.scale(output.loss).backward()
        parameters = [p for p in self.model.parameters() if p.grad is not None]
        if self.config.train.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            norm = nn.utils.clip_grad_norm_(parameters, self.config.train.grad_clip)
        else:
            norm = nn.utils.get_total_norm([p.grad for p in parameters])
        # With fp16's gradient scaler an overflow is routine: the scaler skips that step and lowers its scale.
        bad_gradient = torch.zeros(()) if self.scaler.is_enabled() else (~torch.isfinite(norm)).float()
        step_loss = output.loss.detach().float()
        flags = torch.stack([step_loss, torch.ones_like(step_loss), bad_gradient.to(step_loss.device)])
        total = self.dist.all_reduce_sum(flags)
        loss = float(total[0] / total[1])
        finite = bool(np.isfinite(loss)) and float(total[2]) == 0
        if finite:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        elif self.config.train.grad_clip > 0:
            self.scaler.update()  # ends the unscaled step (the scaler lowers its scale if it saw an overflow)
        with warnings.catch_warnings():  # a skipped step still counts: the schedule follows the step number
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step")
            self.scheduler.step()
        return loss, output.probs, finite

    def agree(self, *flags: bool) -> list[bool]:
        """Each flag true if it is true on any process, so that all of them act at the same step
        (saving and validating are collective; signals and clocks differ between processes)."""
        values = self.dist.all_reduce_sum(torch.tensor([float(f) for f in flags], device=self.device))
        return [bool(v > 0) for v in values.tolist()]

    def fit(self, validate: Validator | None = None) -> dict[str, float] | None:
        """Trains until train.steps, train.max_minutes (wall clock of this session) or a signal, saves,
        then validates (val.final). `validate(model, step) -> {"J&F", "J", "F"}` runs on rank 0."""
        config, run = self.config, self.config.run
        self.setup()
        if self.dist.is_main:
            self.folder.root.mkdir(parents=True, exist_ok=True)
            self.folder.remove_partial_files()
            self.folder.write_config(to_dict(config))
            self.writer = SummaryWriter(str(self.folder.logs))
        loader = build_loader(config, self.dist.rank, self.step)
        self.session_start = started = time.monotonic()
        deadline = started + 60 * config.train.max_minutes if config.train.max_minutes > 0 else None
        last_save = last_val = started
        nan_streak, window_loss, window_count, window_start = 0, 0.0, 0, started
        bar = progress(
            total=config.train.steps, initial=self.step, desc="train", unit="step", disable=not self.dist.is_main,
            dynamic_ncols=True,
        )
        previous_seconds, validation_seconds = self.train_seconds, 0.0
        interrupted = False
        with StopSignal() as signals:
            for batch in loader:
                self.check_batch(batch)
                loss, probs, applied = self.train_step(batch)
                self.step += 1
                now = time.monotonic()
                self.train_seconds = previous_seconds + now - started - validation_seconds
                if applied:
                    nan_streak = 0
                    window_loss, window_count = window_loss + loss, window_count + 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", skip=max_skip(config.data.skip, self.step - 1))
                else:
                    nan_streak += 1
                    log.warning("step %d: non-finite loss or gradient, skipped (%d in a row)", self.step, nan_streak)
                    if nan_streak >= config.train.max_nan_steps:
                        self.save()  # the weights are still those of the last good step
                        raise StmError(
                            f"train: {nan_streak} non-finite losses or gradients in a row (train.max_nan_steps); "
                            f"the last good weights are saved in {self.folder.latest}; try a lower train.lr"
                        )
                if self.dist.is_main and window_count and self.step % run.log_every_steps == 0:
                    self.log_scalars(window_loss / window_count, window_count / max(now - window_start, 1e-9))
                    window_loss, window_count, window_start = 0.0, 0, now
                if self.dist.is_main and applied and run.image_every_steps and self.step % run.image_every_steps == 0:
                    self.writer.add_image("train/clip", overlay_grid(batch, probs.cpu()), self.step)
                interrupted, out_of_time, save_due, val_due = self.agree(
                    signals.received is not None,
                    deadline is not None and now >= deadline,
                    run.save_every_minutes > 0 and now - last_save >= 60 * run.save_every_minutes,
                    config.val.every_minutes > 0 and now - last_val >= 60 * config.val.every_minutes,
                )
                if interrupted or out_of_time:
                    break
                if save_due or (run.save_every_steps and self.step % run.save_every_steps == 0):
                    self.save()
                    last_save = time.monotonic()
                if validate and (val_due or (config.val.every_steps and self.step % config.val.every_steps == 0)):
                    paused = time.monotonic()
                    self.run_validation(validate)
                    last_val = time.monotonic()
                    validation_seconds += last_val - paused
        bar.close()
        self.save()
        if interrupted:  # preempted or stopped by hand: leave quickly, the next run resumes
            if self.dist.is_main:
                print(f"stopped by a signal at step {self.step}; saved {self.folder.latest}", flush=True)
        elif validate and config.val.final and (not self.curve or self.curve[-1]["step"] != self.step):
            self.run_validation(validate)
            self.save()  # the curve's last point goes into the checkpoint too
        if self.writer is not None:
            self.writer.close()
        self.dist.close()
        return self.curve[-1] if self.curve else None

    def check_batch(self, batch: ClipBatch) -> None:
        """Warns about the batch's unreadable samples and counts them over all processes; when the count
        passes train.max_bad_samples or any process has no readable sample left, every process saves
        and stops at this step."""
        for reason in batch.bad:
            log.warning("skipped an unreadable sample: %s", reason)
        counts = torch.tensor([len(batch.bad), float(len(batch) == 0)], device=self.device)
        bad, empty = self.dist.all_reduce_sum(counts).tolist()
        self.bad_samples += int(bad)
        limit = self.config.train.max_bad_samples
        if not empty and self.bad_samples <= limit:
            return
        self.save()  # the weights are those of the last step
        where = f" (on one of the {self.dist.world_size} processes)" if self.dist.enabled else ""
        if empty:
            reason = batch.bad[0] if len(batch) == 0 else "another process's samples"
            raise StmError(f"train: no readable sample in the batch of step {self.step + 1}{where}: {reason}")
        last = batch.bad[-1] if batch.bad else "another process's samples"
        raise StmError(
            f"train: {self.bad_samples} unreadable samples (more than train.max_bad_samples = {limit}){where}; "
            f"last: {last}; the last good weights are saved in {self.folder.latest}"
        )

    def log_scalars(self, loss: float, steps_per_second: float) -> None:
        self.writer.add_scalar("train/loss", loss, self.step)
        self.writer.add_scalar("train/lr", self.scheduler.get_last_lr()[0], self.step)
        self.writer.add_scalar("train/max_skip", max_skip(self.config.data.skip, self.step), self.step)
        self.writer.add_scalar("train/hard_fraction", hard_fraction(self.config.train.loss, self.step), self.step)
        self.writer.add_scalar("train/steps_per_second", steps_per_second, self.step)

    def recalibrate_batchnorm(self, batches: int) -> None:
        """Precise BatchNorm: replaces the running statistics by their plain average over `batches`
        training batches (forward only). Trained from random init with small batches, the momentum
        averages trail the weights so far that eval-mode inference lost half its J&F in our demo runs
        (0.17 against 0.52 with fresh statistics, same weights)."""
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average
        step = self.step_module.module if isinstance(self.step_module, DistributedDataParallel) else self.step_module
        loader = build_loader(self.config, self.dist.rank, self.step, stop=self.step + batches, workers=0)
        self.model.train()
        with torch.no_grad(), self.autocast():
            for batch in loader:
                if len(batch):
                    step(batch.to(self.device), self.step)
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum

    def run_validation(self, validate: Validator) -> dict[str, float] | None:
        """Rank 0 validates while the others wait; the point joins the J&F-versus-minutes curve."""
        point = None
        if self.dist.is_main:
            if not self.freeze_bn and self.config.val.bn_batches > 0:
                self.recalibrate_batchnorm(self.config.val.bn_batches)
            self.model.eval()
            with torch.inference_mode(), self.autocast():
                scores = validate(self.model, self.step)
            self.set_train_mode()
            point = {
                "step": self.step,
                "train_minutes": round(self.train_seconds / 60, 3),
                "wall_minutes": round((time.monotonic() - self.session_start) / 60, 3),
                **{key: float(value) for key, value in scores.items()},  # J&F, J, F, and e.g. J&F@1.., AUC
            }
            self.curve.append(point)
            self.folder.write_curve(self.curve)
            for key in scores:
                self.writer.add_scalar(f"val/{key}", point[key], self.step)
            self.writer.add_scalar("val/J&F_vs_train_seconds", point["J&F"], int(self.train_seconds))
            log.info("step %d: validation J&F %.3f (J %.3f, F %.3f)", self.step, point["J&F"], point["J"], point["F"])
        self.dist.barrier()
        return point
