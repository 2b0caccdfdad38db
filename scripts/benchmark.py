"""Times STM inference on a generated video: frames per second, ms and GFLOP/s per stage, peak memory.

    python scripts/benchmark.py                                   # 480x854, 2 objects, 12 frames, fp32, CPU
    python scripts/benchmark.py --precision bf16                  # autocast, as eval_semi.py --amp on the CPU
    python scripts/benchmark.py --device cuda --precision fp16 --frames 60
    python scripts/benchmark.py --task interactive --batch 4      # the interactive re-segmentation pass
    python scripts/benchmark.py --height 120 --width 216 --frames 1000 --max-memory-frames 8   # memory stays flat

`semi` runs the SemiSupervisedSession frame by frame, exactly as eval_semi.py does (without disk I/O);
`interactive` memorises one annotated frame with scribbles and segments every frame in batches. The
first run is a warm-up (its FLOPs are counted, its time is not); the median of --runs timed runs is
reported. Stage times come from timing the network's four operations (on CUDA in one extra run,
synchronised around each operation, so that the frame rate is measured without those waits).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stm.data.synthetic import SyntheticSpec, render_video  # noqa: E402
from stm.inference.semi import SemiSupervisedSession, frame_tensor  # noqa: E402
from stm.model import STM  # noqa: E402
from stm.model.frozen import freeze_for_inference  # noqa: E402
from stm.model.memory_read import READ_KERNELS  # noqa: E402
from stm.precision import autocast, autocast_dtype  # noqa: E402

STAGES = {"encode_query": "query encoder", "encode_memory": "memory encoder", "read": "read", "decode": "decoder"}


class StageTimer:
    """Wraps the model's four operations: accumulates their wall time and, when counting, their FLOPs."""

    def __init__(self, model: torch.nn.Module, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self.flops: dict[str, float] = defaultdict(float)
        self.counting = False
        # On CUDA the per-stage synchronisation would slow the whole run: time stages in a separate run.
        self.timing = device.type != "cuda"
        for name in STAGES:
            setattr(model, name, self._wrap(name, getattr(model, name)))

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _wrap(self, name, method):
        def timed(*args, **kwargs):
            if self.counting:
                if name == "read":  # scaled_dot_product_attention on the CPU is not counted by torch
                    query, key, value = args[0].key, args[1], args[2]
                    self.flops[name] += (
                        2 * query.shape[1] * key.shape[1] * key.shape[2] * (key.shape[3] + value.shape[3])
                    )
                    return method(*args, **kwargs)
                with FlopCounterMode(display=False) as counter:
                    result = method(*args, **kwargs)
                self.flops[name] += counter.get_total_flops()
                return result
            if not self.timing:
                return method(*args, **kwargs)
            self._sync()
            start = time.perf_counter()
            result = method(*args, **kwargs)
            self._sync()
            self.seconds[name] += time.perf_counter() - start
            return result

        return timed

    def reset(self) -> None:
        self.seconds.clear()


def video_source(args) -> tuple[np.ndarray, np.ndarray]:
    """A short generated clip (frames, labels); longer videos play it forwards and backwards."""
    spec = SyntheticSpec(args.height, args.width, 24, 24, args.objects, args.objects)
    frames, labels = render_video(np.random.default_rng(0), spec)
    return frames, labels


def frame_at(frames: np.ndarray, t: int) -> np.ndarray:
    period = 2 * (len(frames) - 1)
    t %= period
    return frames[t if t < len(frames) else period - t]


def run_semi(model, args, frames, labels, device) -> None:
    session = SemiSupervisedSession(model, args.mem_every, args.max_memory_frames, args.precision, args.channels_last)
    for t in range(args.frames):
        session.step(frame_at(frames, t), labels[0] if t == 0 else None)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_interactive(model, args, frames, labels, device) -> None:
    """One interaction's re-segmentation: memory from the annotated frame, all frames in batches."""
    ids = [i for i in np.unique(labels[0]) if i]
    with torch.inference_mode(), autocast(device, autocast_dtype(device, args.precision)):
        first = frame_tensor(frames[0], device, args.channels_last)
        masks = torch.stack([torch.from_numpy(labels[0] == i) for i in ids])[None].float().to(device)
        scribbles = torch.zeros(1, len(ids), 2, *masks.shape[-2:], device=device)
        key, value = model.encode_memory(first, masks, scribbles)
        for start in range(0, args.frames, args.batch):
            batch = torch.cat(
                [
                    frame_tensor(frame_at(frames, t), device, args.channels_last)
                    for t in range(start, min(start + args.batch, args.frames))
                ]
            )
            n = batch.shape[0]
            model.segment(model.encode_query(batch), key.expand(n, -1, -1, -1), value.expand(n, -1, -1, -1))
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(device: torch.device) -> dict:
    result = {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if device.type == "cuda":
        result["cuda_max_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=("semi", "interactive"), default="semi")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--mem-every", type=int, default=5)
    parser.add_argument("--max-memory-frames", type=int, default=None)
    parser.add_argument("--batch", type=int, default=4, help="frames per batch in the interactive pass")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    parser.add_argument("--read-kernel", choices=READ_KERNELS, default="sdpa")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoders and the decoder")
    parser.add_argument("--runs", type=int, default=3, help="timed runs after the warm-up; the median is reported")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = STM("interactive" if args.task == "interactive" else "semi", args.backbone, args.read_kernel).eval()
    weights_dtype = autocast_dtype(device, args.precision)
    model = freeze_for_inference(model, device, args.channels_last, weights_dtype)  # as eval_semi.py runs it
    if args.compile:
        for name in ("query_encoder", "memory_encoder", "decoder"):
            setattr(model, name, torch.compile(getattr(model, name)))
    timer = StageTimer(model, device)
    frames, labels = video_source(args)
    run = run_semi if args.task == "semi" else run_interactive

    timer.counting = True  # warm-up: count FLOPs, do not time
    run(model, args, frames, labels, device)
    timer.counting = False
    flops = dict(timer.flops)
    totals, stage_runs = [], []
    for _ in range(args.runs):
        timer.reset()
        start = time.perf_counter()
        run(model, args, frames, labels, device)
        totals.append(time.perf_counter() - start)
        stage_runs.append(dict(timer.seconds))
    if not timer.timing:
        timer.reset()
        timer.timing = True
        run(model, args, frames, labels, device)
        stage_runs = [dict(timer.seconds)]
    seconds = statistics.median(totals)
    stages = {}
    for name, label in STAGES.items():
        stage_seconds = statistics.median(r.get(name, 0.0) for r in stage_runs)
        stages[label] = {
            "ms_per_frame": 1000 * stage_seconds / args.frames,
            "gflop_per_frame": flops.get(name, 0.0) / 1e9 / args.frames,
            "gflop_per_s": flops.get(name, 0.0) / 1e9 / stage_seconds if stage_seconds > 0 else None,
        }
    total_flops = sum(flops.values())
    result = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": platform.processor(),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        },
        "fps": args.frames / seconds,
        "seconds_per_run": totals,
        "ms_per_frame": 1000 * seconds / args.frames,
        "gflop_per_frame": total_flops / 1e9 / args.frames,
        "gflop_per_s": total_flops / 1e9 / seconds,
        "stages": stages,
        **peak_memory(device),
    }
    print(table(result))
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return result


def table(result: dict) -> str:
    s = result["settings"]
    lines = [
        f"{s['task']} {s['height']}x{s['width']}, {s['objects']} objects, {s['frames']} frames, mem-every "
        f"{s['mem_every']}, {s['precision']}, {s['device']} ({result['machine']['device']}, "
        f"{result['machine']['threads']} threads), read {s['read_kernel']}, median of {s['runs']}",
        "| stage | ms / frame | GFLOP / frame | GFLOP/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, stage in result["stages"].items():
        rate = f"{stage['gflop_per_s']:.0f}" if stage["gflop_per_s"] else "-"
        lines.append(f"| {label} | {stage['ms_per_frame']:.1f} | {stage['gflop_per_frame']:.1f} | {rate} |")
    lines.append(
        f"| **total** | {result['ms_per_frame']:.1f} | {result['gflop_per_frame']:.1f} | {result['gflop_per_s']:.0f} |"
    )
    memory = f"peak RSS {result['peak_rss_gib']:.2f} GiB"
    if "cuda_max_allocated_gib" in result:
        memory += f", CUDA max allocated {result['cuda_max_allocated_gib']:.2f} GiB"
    lines.append(f"FPS {result['fps']:.2f} | {memory}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
