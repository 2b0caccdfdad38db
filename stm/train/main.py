"""The train.py command: parse arguments, load and validate the config, prepare data, train, report."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from stm.config import load_config
from stm.train.datasets import ensure_generated_data
from stm.train.trainer import Trainer
from stm.train.validation import make_validator

log = logging.getLogger("stm")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="train.py", description="Train STM from a YAML config.")
    parser.add_argument("--config", required=True, help="YAML config (see configs/)")
    parser.add_argument("overrides", nargs="*", help="key.sub=value settings over the config")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = load_config(args.config, args.overrides)
    run_dir = Path(config.run.dir or Path("checkpoints") / Path(args.config).stem)
    trainer = Trainer(config, run_dir)
    if trainer.dist.is_main:
        ensure_generated_data(config)
    trainer.dist.barrier()
    result = trainer.fit(make_validator(config))
    if trainer.dist.is_main:
        minutes = trainer.train_seconds / 60
        line = f"step {trainer.step}, {minutes:.1f} min of training; checkpoint {trainer.folder.latest}"
        if result is not None:
            line = f"J&F {result['J&F']:.3f} (J {result['J']:.3f}, F {result['F']:.3f}) on held-out videos; " + line
            if "AUC" in result:  # interactive: J&F after the robot's first and last interaction, and their AUC
                last = max(int(key.removeprefix("J&F@")) for key in result if key.startswith("J&F@"))
                rounds = f"J&F@1 {result['J&F@1']:.3f}, J&F@{last} {result[f'J&F@{last}']:.3f}"
                line = f"{rounds}, AUC {result['AUC']:.3f} (robot rounds); " + line
        print(line, flush=True)
    return 0
