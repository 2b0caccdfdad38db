"""Times the training step of a config: iterations per second and peak memory, data loading excluded.

    python scripts/benchmark_train.py --config configs/main_davis.yaml --device cuda      # 384x384, batch 4, AMP
    python scripts/benchmark_train.py --config configs/demo.yaml --steps 10                # the CPU demo
    python scripts/benchmark_train.py --config configs/main_davis.yaml train.amp=fp32      # overrides as in train.py

The Trainer of train.py runs its real step (forward over the clip, backward, optimizer, schedule) on
one fixed batch of generated clips of the config's size, frames, batch and object count, with the
config's precision and BatchNorm setting; weights start from random init (the timing does not depend
on their values). The first --warmup steps are not timed.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stm.config import Config, load_config  # noqa: E402
from stm.data.clips import ClipBatch  # noqa: E402
from stm.data.synthetic import SyntheticSpec, render_video  # noqa: E402
from stm.train.trainer import Trainer  # noqa: E402


def generated_batch(config: Config) -> ClipBatch:
    """batch_size clips of `frames` frames at data.size, each with max_objects moving objects."""
    (height, width), frames, objects = config.data.size, config.data.frames, config.data.max_objects
    spec = SyntheticSpec(height, width, frames, frames, objects, objects)
    rng = np.random.default_rng(0)
    videos = [render_video(rng, spec) for _ in range(config.train.batch_size)]
    images = torch.from_numpy(np.stack([v[0] for v in videos])).permute(0, 1, 4, 2, 3).float() / 255
    labels = torch.from_numpy(np.stack([v[1] for v in videos])).long()
    valid = torch.ones(len(videos), objects, dtype=torch.bool)
    return ClipBatch(images, labels, valid)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="default: the config's")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("overrides", nargs="*", help="key.sub=value settings over the config")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    config = load_config(args.config, args.overrides)
    pretrained = bool(config.model.imagenet_weights or config.model.init_weights)
    if config.train.freeze_bn is None:  # keep the BatchNorm setting the real run would have
        config.train.freeze_bn = pretrained
    config.model.imagenet_weights = config.model.init_weights = None
    if args.device:
        config.train.device = args.device
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir)
        trainer.setup()
        batch = generated_batch(config)
        device = trainer.device
        for _ in range(args.warmup):
            trainer.train_step(batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        step = trainer.step_module
        robot_before = getattr(step, "robot_seconds", 0.0)  # the interactive step's DAVIS robot, on the CPU
        start = time.perf_counter()
        for _ in range(args.steps):
            loss, _probs, _applied = trainer.train_step(batch)  # reads the loss: one sync per step, as train.py
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start

    result = {
        "config": args.config,
        "overrides": args.overrides,
        "backbone": config.model.backbone,
        "size": list(config.data.size),
        "frames": config.data.frames,
        "batch": config.train.batch_size,
        "objects": config.data.max_objects,
        "precision": str(trainer.amp).replace("torch.", "") if trainer.amp else "fp32",
        "freeze_bn": config.train.freeze_bn,
        "device": (
            torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
        ),
        "torch": torch.__version__,
        "iterations_per_s": args.steps / seconds,
        "s_per_iteration": seconds / args.steps,
        "last_loss": loss,
        "robot_s_per_iteration": (getattr(step, "robot_seconds", 0.0) - robot_before) / args.steps,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }
    if device.type == "cuda":
        result["cuda_max_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    robot = hasattr(step, "robot_seconds")
    print(
        f"{args.config}: {config.model.backbone}, {result['size'][0]}x{result['size'][1]}, {result['frames']} frames, "
        f"batch {result['batch']}, {result['objects']} objects, {result['precision']}, on {result['device']}: "
        f"{result['iterations_per_s']:.2f} it/s ({1000 * result['s_per_iteration']:.0f} ms/it"
        + (f", the DAVIS robot {1000 * result['robot_s_per_iteration']:.0f} ms of it)" if robot else ")")
    )
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
