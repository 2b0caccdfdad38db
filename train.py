"""Train STM: python train.py --config configs/main_davis.yaml [key.sub=value ...]

Runs in checkpoints/<config stem>/ (or run.dir) and resumes from its latest.pth when there is one.
Multi-GPU / multi-node: torchrun --nproc_per_node N train.py --config ...
"""

from stm.cli import run
from stm.train.main import main

if __name__ == "__main__":
    run(main)
