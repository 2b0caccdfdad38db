"""eval_semi: semi-supervised video object segmentation on DAVIS 2016/2017 or YouTube-VOS.

The command line of eval_semi.py (the launcher at the top of the repository): arguments -> EvalOptions
-> stm.evaluation.semi_eval.evaluate. See README "Semi-supervised evaluation".
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stm.evaluation.semi_eval import DATASETS, EvalOptions, evaluate
from stm.inference.working_size import parse_size
from stm.model.backbone import TRUNK_CHANNELS
from stm.model.memory_read import READ_KERNELS


def parse_args(argv: list[str] | None = None) -> EvalOptions:
    parser = argparse.ArgumentParser(prog="eval_semi.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="dataset folder (DAVIS or YouTube-VOS layout)")
    parser.add_argument("--output", type=Path, required=True, help="where the submission goes")
    parser.add_argument("--dataset", choices=DATASETS, default="davis")
    parser.add_argument("--year", type=int, choices=(2016, 2017), default=2017, help="DAVIS year (2016: one object)")
    parser.add_argument("--split", default=None, help="val (DAVIS) or valid (YouTube-VOS) by default")
    parser.add_argument("--sequences", default=None, help="comma-separated sequence names (default: the split's)")
    parser.add_argument("--weights", type=Path, default=None, help="our checkpoint or the official STM_weights.pth")
    parser.add_argument(
        "--backbone",
        choices=sorted(TRUNK_CHANNELS),
        default="resnet50",
        help="trunk of a random-init model (no weights)",
    )
    parser.add_argument("--mem-every", type=int, default=5, help="keep every N-th frame in memory")
    parser.add_argument("--max-memory-frames", type=int, default=None, help="read at most N memory frames (>= 2)")
    parser.add_argument(
        "--size",
        type=parse_size,
        default=None,
        help="short side the network runs at: N pixels or native (default: the size the checkpoint was trained at, "
        "else native); outputs are always at the frames' size",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--amp", action="store_true", help="autocast: bf16 on the CPU, fp16 on CUDA")
    parser.add_argument("--amp-dtype", choices=("bf16", "fp16"), default=None, help="autocast precision for --amp")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoders and the decoder")
    parser.add_argument("--read-kernel", choices=READ_KERNELS, default="sdpa", help="memory read implementation")
    parser.add_argument("--save-scores", action="store_true", help="OUT/scores/<seq>/<frame>.npz float16 probs")
    parser.add_argument("--overlay", action="store_true", help="OUT/overlays/<seq>.mp4 with masks on the frames")
    parser.add_argument("--all-frames", action="store_true", help="YouTube-VOS: propagate through <split>_all_frames")
    args = parser.parse_args(argv)
    if args.mem_every < 1:
        parser.error("--mem-every must be at least 1")
    if args.max_memory_frames is not None and args.max_memory_frames < 2:
        parser.error("--max-memory-frames must be at least 2 (the first and the previous frame)")
    return EvalOptions(
        root=args.root,
        output=args.output,
        dataset=args.dataset,
        year=args.year,
        split=args.split,
        sequences=[s for s in args.sequences.split(",") if s] if args.sequences else None,
        weights=args.weights,
        backbone=args.backbone,
        mem_every=args.mem_every,
        max_memory_frames=args.max_memory_frames,
        size=args.size,
        device=args.device,
        amp=(args.amp_dtype or True) if args.amp else False,
        channels_last=args.channels_last,
        compile=args.compile,
        read_kernel=args.read_kernel,
        save_scores=args.save_scores,
        overlay=args.overlay,
        all_frames=args.all_frames,
    )


def main(argv: list[str] | None = None) -> int:
    evaluate(parse_args(argv))
    return 0

