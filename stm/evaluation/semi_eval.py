"""Semi-supervised evaluation: DAVIS 2016/2017 and YouTube-VOS submissions, J&F tables, resume.

The run is a list of jobs (one per sequence). Each job streams its frames from disk one at a time
through a SemiSupervisedSession and writes its files atomically; a job whose files all exist is
complete and skipped when the run is repeated. Under `torchrun --nproc_per_node N` the jobs are
dealt round-robin to the processes; process 0 waits for all of them, then scores every sequence
from the files on disk and writes the tables (and the YouTube-VOS zip), so the output is one
complete submission however it was split.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from stm.data.io import (
    check_mask_size,
    davis_sequence,
    davis_sequence_names,
    read_frame,
    read_mask,
    without_void,
)
from stm.data.youtube import youtube_video, youtube_video_names
from stm.errors import StmError
from stm.evaluation.metrics import ObjectResult, sequence_scores, write_results
from stm.evaluation.writers import OverlayVideo, write_prediction, write_scores, zip_submission
from stm.inference.semi import SemiSupervisedSession
from stm.inference.working_size import describe_size, resolve_size
from stm.model import STM
from stm.model.checkpoint import load_model, recorded_size
from stm.model.frozen import freeze_for_inference
from stm.precision import autocast_dtype
from stm.progress import progress

log = logging.getLogger("stm")

DATASETS = ("davis", "youtube")


@dataclass
class EvalOptions:
    root: Path
    output: Path
    dataset: str = "davis"
    year: int = 2017
    split: str | None = None  # val (DAVIS) / valid (YouTube-VOS) when None
    sequences: list[str] | None = None
    weights: Path | None = None
    backbone: str = "resnet50"  # for a random-init model (no weights)
    mem_every: int = 5
    max_memory_frames: int | None = None
    size: int | str | None = None  # short side the network runs at; "native"; None: the checkpoint's
    device: str = "cpu"
    amp: bool | str = False  # True, "bf16" or "fp16"
    channels_last: bool = True
    compile: bool = False
    read_kernel: str = "sdpa"
    save_scores: bool = False
    overlay: bool = False
    all_frames: bool = False  # YouTube-VOS: propagate through <split>_all_frames

    @property
    def split_name(self) -> str:
        return self.split or ("valid" if self.dataset == "youtube" else "val")


@dataclass
class Job:
    """One sequence: what to read, which masks are given, what to write."""

    name: str
    frames: list[Path]
    given: dict[int, Path]  # frame index -> mask passed to the session
    outputs: dict[int, Path]  # frame index -> prediction PNG
    scores: dict[int, Path] = field(default_factory=dict)
    overlay: Path | None = None
    ground_truth: list[Path] | None = None  # a mask for every frame (J&F), or None
    single_object: bool = False  # DAVIS 2016: all objects are one

    def complete(self) -> bool:
        files = [*self.outputs.values(), *self.scores.values(), *([self.overlay] if self.overlay else [])]
        return all(path.is_file() for path in files)


def davis_jobs(opts: EvalOptions) -> list[Job]:
    jobs = []
    for name in davis_sequence_names(opts.root, opts.year, opts.split_name, opts.sequences):
        sequence = davis_sequence(opts.root, name)
        if 0 not in sequence.masks:
            folder = Path(opts.root) / "Annotations" / "480p" / name
            raise StmError(f"{folder / (sequence.frames[0].stem + '.png')}: no annotation for the first frame")
        job = _job(opts, name, sequence.frames, {0: sequence.masks[0]}, opts.output / name, range(len(sequence)))
        if len(sequence.masks) == len(sequence.frames):
            job.ground_truth = [sequence.masks[i] for i in range(len(sequence))]
        job.single_object = opts.year == 2016
        jobs.append(job)
    return jobs


def youtube_jobs(opts: EvalOptions) -> list[Job]:
    jobs = []
    for name in youtube_video_names(opts.root, opts.split_name, opts.sequences):
        video = youtube_video(opts.root, opts.split_name, name, opts.all_frames)
        if not video.masks:
            raise StmError(f"{Path(opts.root) / opts.split_name / 'Annotations' / name}: no annotation for any frame")
        wanted = set(video.outputs)
        indices = [i for i, frame in enumerate(video.frames) if frame.stem in wanted]
        jobs.append(_job(opts, name, video.frames, video.masks, opts.output / "Annotations" / name, indices))
    return jobs


def _job(opts: EvalOptions, name: str, frames: list[Path], given: dict, folder: Path, indices: Iterable[int]) -> Job:
    job = Job(name, frames, given, {i: folder / f"{frames[i].stem}.png" for i in indices})
    if opts.save_scores:
        job.scores = {i: opts.output / "scores" / name / f"{frames[i].stem}.npz" for i in indices}
    if opts.overlay:
        job.overlay = opts.output / "overlays" / f"{name}.mp4"
    return job


def build_model(opts: EvalOptions, device: torch.device) -> tuple[torch.nn.Module, int | None]:
    """Loads --weights (ours or the official STM_weights.pth), or a random-init model with a warning.
    Also returns the short side the weights were trained at (None: not recorded)."""
    recorded = None
    if opts.weights:
        model, checkpoint = load_model(opts.weights, mode="semi", read_kernel=opts.read_kernel)
        recorded = recorded_size(checkpoint)
    else:
        log.warning("no --weights given: the model is randomly initialised, so the masks are meaningless")
        torch.manual_seed(0)  # every process of a distributed run builds the same model
        model = STM("semi", opts.backbone, opts.read_kernel)
    # BatchNorm folded into the convolutions; under --amp the weights cast once, not on every call
    model = freeze_for_inference(model.eval(), device, opts.channels_last, autocast_dtype(device, opts.amp))
    if opts.compile:
        for name in ("query_encoder", "memory_encoder", "decoder"):
            setattr(model, name, torch.compile(getattr(model, name)))
    return model, recorded


def _prefetch(paths: list[Path], pool: ThreadPoolExecutor, ahead: int = 2) -> Iterator[np.ndarray]:
    """Frames read in a background thread, `ahead` frames in advance: never the whole video in memory."""
    queue: list[Future] = [pool.submit(read_frame, p) for p in paths[:ahead]]
    for index in range(len(paths)):
        if index + ahead < len(paths):
            queue.append(pool.submit(read_frame, paths[index + ahead]))
        yield queue.pop(0).result()


def _given_labels(job: Job, index: int, frame: np.ndarray) -> np.ndarray:
    path = job.given[index]
    labels = read_mask(path)
    check_mask_size(path, labels, job.frames[index], frame)
    labels = without_void(labels)
    return (labels > 0).astype(np.uint8) if job.single_object else labels


def run_job(job: Job, model: torch.nn.Module, opts: EvalOptions, position: int = 0, size: int | None = None) -> int:
    """Propagates one sequence at working size `size` (None: native) and writes its files (at the
    sequence's size); returns the number of frames processed."""
    session = SemiSupervisedSession(
        model, opts.mem_every, opts.max_memory_frames, opts.amp, opts.channels_last, size=size
    )
    writes: list[Future] = []
    first_size = None
    overlay = OverlayVideo(job.overlay) if job.overlay else nullcontext()  # a failure leaves no half video
    with overlay as video, ThreadPoolExecutor(2) as readers, ThreadPoolExecutor(2) as writers:
        frames = _prefetch(job.frames, readers)
        bar = progress(frames, total=len(job.frames), desc=job.name, unit="frame", leave=False, position=position)
        for index, frame in enumerate(bar):
            if first_size is None:
                first_size = frame.shape
            elif frame.shape != first_size:
                raise StmError(
                    f"{job.frames[index]}: frame is {frame.shape[1]}x{frame.shape[0]}, the sequence's "
                    f"first frame is {first_size[1]}x{first_size[0]}"
                )
            labels = _given_labels(job, index, frame) if index in job.given else None
            result = session.step(frame, labels)
            if index in job.outputs:
                writes.append(writers.submit(write_prediction, job.outputs[index], result.labels))
            if index in job.scores:
                writes.append(writers.submit(write_scores, job.scores[index], result.probs.cpu().numpy()))
            if video is not None:
                video.add(frame, result.labels)
        for write in writes:
            write.result()
    return len(job.frames)


def score_jobs(jobs: list[Job]) -> list[ObjectResult]:
    """J and F of every object of every sequence, read back from the written files."""
    results = []
    for job in progress(jobs, desc="J&F", unit="seq", leave=False):
        truth = [without_void(read_mask(p)) for p in job.ground_truth]
        if job.single_object:
            truth = [(t > 0).astype(np.uint8) for t in truth]
        predictions = [read_mask(job.outputs[i]) for i in range(len(job.frames))]
        for index, (t, p) in enumerate(zip(truth, predictions, strict=True)):
            check_mask_size(job.outputs[index], p, job.ground_truth[index], t)
        ids = sorted(int(i) for i in np.unique(truth[0]) if i)
        j, f = sequence_scores(truth, predictions, ids)
        results.extend(ObjectResult(job.name, number, j[k], f[k]) for k, number in enumerate(range(1, len(ids) + 1)))
    return results


def peak_memory(device: torch.device) -> tuple[float, str]:
    """Peak memory in GiB and what it measures."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30, "CUDA max allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "CPU RSS"


def _distributed(opts: EvalOptions) -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the torchrun process group when there is one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device(opts.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise StmError("--device cuda: no CUDA device is available")
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def evaluate(opts: EvalOptions) -> dict:
    """Runs the whole evaluation; returns the summary (and prints its one line on process 0)."""
    if opts.dataset not in DATASETS:
        raise StmError(f"--dataset {opts.dataset}: choose one of {', '.join(DATASETS)}")
    rank, world, device = _distributed(opts)
    jobs = davis_jobs(opts) if opts.dataset == "davis" else youtube_jobs(opts)
    model, recorded = build_model(opts, device)
    size = resolve_size(opts.size, recorded)
    if rank == 0:
        log.info("working size: %s%s", describe_size(size), " (the checkpoint's)" if opts.size is None else "")
    if opts.amp and device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        log.warning(
            "this CPU has no native bfloat16 matrix instructions (%s): --amp will be slower than fp32",
            torch.backends.cpu.get_cpu_capability(),
        )
    mine = jobs[rank::world]
    frames, seconds, skipped = 0, 0.0, 0
    for job in mine:
        if job.complete():
            skipped += 1
            continue
        start = time.perf_counter()
        frames += run_job(job, model, opts, position=rank, size=size)
        seconds += time.perf_counter() - start
    memory, memory_kind = peak_memory(device)
    if world > 1:
        totals = torch.tensor([frames, skipped], dtype=torch.float64)
        maxima = torch.tensor([seconds, memory], dtype=torch.float64)
        dist.all_reduce(totals)
        dist.all_reduce(maxima, op=dist.ReduceOp.MAX)
        (frames, skipped), (seconds, memory) = totals.tolist(), maxima.tolist()
    summary = {
        "sequences": len(jobs),
        "skipped": int(skipped),
        "frames": int(frames),
        "fps": frames / seconds if seconds > 0 else None,
        "peak_memory_gib": memory,
        "memory": memory_kind,
    }
    if rank == 0:
        summary.update(_finish(jobs, opts))
        print(summary_line(summary), flush=True)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return summary


def _finish(jobs: list[Job], opts: EvalOptions) -> dict:
    if opts.dataset == "youtube":
        zip_submission(opts.output / "Annotations", opts.output / "submission.zip")
        return {}
    if not all(job.ground_truth for job in jobs):
        log.info("no ground truth for every frame of every sequence: J&F not computed")
        return {}
    return write_results(opts.output, opts.split_name, score_jobs(jobs))


def summary_line(summary: dict) -> str:
    scores = (
        f"J&F {summary['J&F-Mean']:.3f}  J {summary['J-Mean']:.3f}  F {summary['F-Mean']:.3f}"
        if "J&F-Mean" in summary
        else "J&F n/a"
    )
    fps = f"{summary['fps']:.2f} FPS" if summary["fps"] else "FPS n/a"
    done = f"{summary['frames']} frames, {summary['skipped']} of {summary['sequences']} sequences already complete"
    return f"{scores} | {fps} ({done}) | peak memory {summary['peak_memory_gib']:.2f} GiB ({summary['memory']})"
