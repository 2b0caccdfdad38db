"""segment.py: masks given on some frames of any video, propagated to every frame.

The video is a file (mp4, mov, mkv, ... decoded lazily with PyAV) or a folder of frames; --masks is
one PNG (the masks of frame 0) or a folder of PNGs named by frame number (00000.png, 00040.png:
objects that join later, or corrections). Every mask is checked before anything is written. The
propagation runs forward from the first annotated frame, then backward from it when that is not
frame 0, writing DIR/<frame:05d>.png (DAVIS palette, atomically) as each frame finishes, and with
--overlay DIR/overlay.mp4 at the end.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from stm.data.io import read_mask, write_mask
from stm.errors import StmError
from stm.evaluation.semi_eval import peak_memory
from stm.evaluation.writers import OverlayVideo
from stm.inference.predictor import Video, VideoPredictor
from stm.inference.working_size import describe_size, parse_size
from stm.progress import progress

log = logging.getLogger("stm")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Propagate masks given on some frames to every frame of a video.")
    parser.add_argument("--video", type=Path, required=True, help="a video file or a folder of frames")
    parser.add_argument(
        "--masks", type=Path, required=True, help="a PNG for frame 0, or a folder of PNGs named by frame number"
    )
    parser.add_argument("--output", type=Path, required=True, help="where DIR/<frame:05d>.png go")
    parser.add_argument("--weights", type=Path, default=None, help="our checkpoint or the official STM_weights.pth")
    parser.add_argument(
        "--size",
        type=parse_size,
        default=None,
        help="short side the network runs at: N pixels or native (default: the size the checkpoint was trained "
        "at, else native); the masks are always written at the video's size",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--amp", action="store_true", help="autocast: bf16 on the CPU, fp16 on CUDA")
    parser.add_argument("--overlay", action="store_true", help="also write DIR/overlay.mp4, the masks on the frames")
    parser.add_argument("--mem-every", type=int, default=5, help="keep every N-th frame in memory")
    parser.add_argument("--max-memory-frames", type=int, default=None, help="read at most N memory frames (>= 2)")
    return parser


def mask_files(masks: Path) -> dict[int, Path]:
    """Frame index -> PNG: one file is frame 0's; a folder's PNGs are named by frame number."""
    if masks.is_file():
        return {0: masks}
    if not masks.is_dir():
        raise StmError(f"{masks}: no such mask file or folder")
    files = {}
    for path in sorted(masks.glob("*.png")):
        if path.name.startswith("."):
            continue
        if not path.stem.isdigit():
            raise StmError(f"{path}: mask files in a folder are named by frame number (00000.png, 00040.png)")
        files[int(path.stem)] = path
    if not files:
        raise StmError(f"{masks}: no mask PNGs in the folder")
    return files


def add_masks(video: Video, files: dict[int, Path]) -> None:
    """Every mask read and checked against the video (size, frame number, objects) before any work."""
    for frame, path in sorted(files.items()):
        try:
            video.add_mask(frame, read_mask(path))
        except StmError as exc:
            message = str(exc)
            raise StmError(message if message.startswith(str(path)) else f"{path}: {message}") from None


def segment(video: Video, output: Path, bar) -> int:
    """Propagates and writes every frame; returns the number of frames written."""
    first = min(video.annotated)
    written = 0
    passes = [video.propagate(first)] + ([video.propagate(first, reverse=True)] if first > 0 else [])
    for number, results in enumerate(passes):
        for result in results:
            if number > 0 and result.index == first:
                continue  # the backward pass starts from the frame the forward pass already wrote
            write_mask(output / f"{result.index:05d}.png", result.labels)
            written += 1
            bar.update(1)
    return written


def write_overlay(video: Video, path: Path) -> None:
    """The masks over the frames at the video's own frame rate (a browser plays it inline)."""
    with OverlayVideo(path, fps=video.fps) as overlay:
        for index in progress(range(len(video)), desc="overlay", unit="frame", leave=False):
            overlay.add(video.frame(index), video.labels(index))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.mem_every < 1:
        parser.error("--mem-every must be at least 1")
    if args.max_memory_frames is not None and args.max_memory_frames < 2:
        parser.error("--max-memory-frames must be at least 2 (the first and the previous frame)")
    files = mask_files(args.masks)
    predictor = VideoPredictor.from_weights(
        args.weights, args.device, args.amp, args.size, args.mem_every, args.max_memory_frames
    )
    if predictor.mode != "semi":
        raise StmError(f"{args.weights}: an interactive checkpoint; segment.py propagates masks with a semi one")
    video = predictor.open(args.video)
    try:
        add_masks(video, files)
        log.info("%s: %d frames of %dx%d, working size %s", args.video, len(video), *video.size[::-1],
                 describe_size(predictor.size))  # fmt: skip
        start = time.perf_counter()
        with progress(total=len(video), desc=args.video.name, unit="frame") as bar:
            frames = segment(video, args.output, bar)
        seconds = time.perf_counter() - start
        if args.overlay:
            write_overlay(video, args.output / "overlay.mp4")
    finally:
        video.close()
    memory, kind = peak_memory(torch.device(args.device))
    print(
        f"{frames} frames in {seconds:.1f} s, {frames / seconds:.2f} FPS | peak memory {memory:.2f} GiB ({kind}) | "
        f"masks in {args.output}",
        flush=True,
    )
    return 0
