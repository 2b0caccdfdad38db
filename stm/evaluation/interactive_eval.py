"""eval_interactive: our InteractiveSession answering the DAVIS robot, with the official scores.

For each sample the robot hands over scribbles; we rasterise them at the working size (`--size`:
the short side the checkpoint was trained at by default), run one interaction of the session and
submit labels at the annotations' size. Outputs in OUT: the session's report CSV (result_<time>.csv), summary.json
(auc, metric_at_threshold = J&F at 60 s, the curve), per_sequence.csv, and one summary line.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from stm.data.io import atomic_write, read_frame
from stm.data.scribbles import davis_json_maps, scribbled_frames
from stm.errors import StmError
from stm.evaluation.davis_robot import METRICS, interaction_seconds, per_sequence_table, plan_tables, run_session
from stm.inference.interactive import InteractiveSession
from stm.inference.working_size import describe_size, parse_size, resize, resolve_size, working_shape
from stm.model.checkpoint import load_model, recorded_size, recorded_thickness
from stm.model.stm import STM
from stm.progress import progress

log = logging.getLogger("stm")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Interactive VOS with the DAVIS robot (davisinteractive).")
    parser.add_argument("--root", required=True, help="DAVIS-layout folder with Annotations/480p and Scribbles")
    parser.add_argument("--output", required=True, help="folder for the report CSV, summary.json, per_sequence.csv")
    parser.add_argument("--subset", default="val", help="train | val | trainval (default val)")
    parser.add_argument("--sequences", default=None, help="comma-separated sequence names (default: the subset)")
    parser.add_argument("--weights", default=None, help="interactive checkpoint (default: random init, a smoke test)")
    parser.add_argument("--max-interactions", type=int, default=8)
    parser.add_argument(
        "--max-time", type=float, default=240, help="seconds per object per sample (DAVIS: 240; 0: no limit)"
    )
    parser.add_argument("--metric", default="J_AND_F", choices=METRICS)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--size",
        type=parse_size,
        default=None,
        help="short side the network runs at: N pixels or native (default: the size the checkpoint trained at, "
        "else native)",
    )
    parser.add_argument("--backbone", default="resnet50", help="backbone of the random-init model (no --weights)")
    parser.add_argument("--batch", type=int, default=8, help="frames segmented per network call")
    parser.add_argument(
        "--thickness", type=int, default=None,
        help="scribble stroke width in working-size pixels (default: the width the checkpoint trained with)",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    return parser


def load_interactive_model(weights: str | None, backbone: str, device: str) -> tuple[STM, int, int | None]:
    """The model, the scribble width it trained with (interactive.scribble_thickness of its run's config;
    the config default for other weights) and the short side it trained at (None: not recorded)."""
    if device == "cuda" and not torch.cuda.is_available():
        raise StmError("--device cuda: no CUDA device is available")
    if weights:
        model, checkpoint = load_model(weights, mode="interactive")
    else:
        log.warning("no --weights: the interactive model has random weights; the scores only test the pipeline")
        model, checkpoint = STM("interactive", backbone).eval(), {}
    return model.to(device), recorded_thickness(checkpoint), recorded_size(checkpoint)


class Predictor:
    """Keeps one InteractiveSession per sample and answers the robot's interactions."""

    def __init__(self, model: STM, root: Path, size: int | None, batch: int, thickness: int):
        self.model, self.root, self.size, self.batch, self.thickness = model, root, size, batch, thickness
        self.session: InteractiveSession | None = None
        self.labels: np.ndarray | None = None

    def start(self, sequence: str, objects: int) -> None:
        files = sorted((self.root / "JPEGImages" / "480p" / sequence).glob("*.jpg"))
        frames = torch.from_numpy(np.stack([read_frame(file) for file in files])).permute(0, 3, 1, 2)
        height, width = frames.shape[-2:]
        frames = resize(frames.float().div_(255), working_shape((height, width), self.size))
        self.session = InteractiveSession(self.model, frames, objects, output_size=(height, width), batch=self.batch)
        self.labels = np.zeros((len(files), height, width), dtype=np.uint8)

    def __call__(self, sequence: str, scribbles: dict, new_sequence: bool, objects: int) -> np.ndarray:
        if new_sequence or self.session is None:
            self.start(sequence, objects)
        self.labels = answer_scribbles(self.session, scribbles, self.thickness, self.labels)
        return self.labels


def answer_scribbles(session: InteractiveSession, scribbles: dict, thickness: int, labels: np.ndarray) -> np.ndarray:
    """One interaction from DAVIS scribble JSON: the strokes of each scribbled frame, rasterised at the
    session's working size with `thickness`-pixel lines, go to the session. Returns the new labels
    (at the session's output size), or `labels` when the JSON holds no stroke."""
    height, width = session.size
    for frame in scribbled_frames(scribbles):
        maps = davis_json_maps(scribbles, frame, session.num_objects, height, width, thickness)
        labels = session.interact(frame, torch.from_numpy(maps)).numpy()
    return labels


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.thickness is not None and args.thickness < 1:
        raise StmError(f"--thickness {args.thickness}: must be at least 1")
    if args.max_interactions < 1:
        raise StmError(f"--max-interactions {args.max_interactions}: must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    root, output = Path(args.root), Path(args.output)
    sequences = [name for name in args.sequences.split(",") if name] if args.sequences else None
    plan = plan_tables(root, args.subset, sequences)  # every bad-input error before any work
    model, trained_thickness, trained_size = load_interactive_model(args.weights, args.backbone, args.device)
    size = resolve_size(args.size, trained_size)
    log.info("working size: %s%s", describe_size(size), " (the checkpoint's)" if args.size is None else "")
    predictor = Predictor(model, root, size, args.batch, args.thickness or trained_thickness)
    bar = progress(desc="sequences", unit="seq", total=len(plan[0]))
    started: list[str] = []

    def on_sequence(name: str) -> None:  # called per sample; DAVIS has several samples per sequence
        if started and started[-1] != name:
            bar.update(1)
        started.append(name)
        bar.set_postfix_str(name)

    summary, report, report_path = run_session(
        root, output, predictor, args.subset, sequences, args.max_interactions, args.max_time or None, args.metric,
        on_sequence, plan,
    )
    bar.update(1)
    bar.close()
    table = per_sequence_table(report)
    atomic_write(output / "per_sequence.csv", lambda tmp: table.to_csv(tmp, index=False, float_format="%.4f"))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    seconds = interaction_seconds(report).mean()
    at = summary["metric_at_threshold"]
    print(
        f"AUC {summary['auc']:.3f}  {args.metric}@{at['threshold']}s {at[args.metric]:.3f}  "
        f"{seconds:.2f} s per interaction  ({len(table)} sequences, report {report_path}, summary "
        f"{output / 'summary.json'})"
    )
    return 0
