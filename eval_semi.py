"""eval_semi: semi-supervised video object segmentation on DAVIS 2016/2017 or YouTube-VOS.

    python eval_semi.py --root DAVIS --output out/davis17 --weights STM_weights.pth [--amp]
    torchrun --nproc_per_node 4 eval_semi.py --root ... --output ... --device cuda --amp

Writes OUT/<seq>/<frame>.png (DAVIS) or OUT/Annotations/<video>/<frame>.png + OUT/submission.zip
(YouTube-VOS), and OUT/global_results-<split>.csv, OUT/per-sequence_results-<split>.csv when every
frame has ground truth. See README "Semi-supervised evaluation"; the arguments are in
stm/evaluation/semi_cli.py.
"""

from stm.cli import run
from stm.evaluation.semi_cli import main

if __name__ == "__main__":
    run(main)
