"""Replays an annotation workspace's interaction log against any checkpoint. With ground truth, prints
J&F after each interaction and the area under J&F over the person's time (as the DAVIS interactive
benchmark scores its robot): a benchmark with a human in the loop.

    python scripts/replay_interactions.py WORKSPACE/interactions.jsonl --weights FILE [--ground-truth DIR]
"""

import argparse
import tempfile
from pathlib import Path

from stm.app.annotator import Annotator
from stm.app.launch import load_predictors
from stm.app.replay import MASK_ACTIONS, Scores, area_under_curve, read_ground_truth, replay
from stm.app.workspace import Workspace, read_log
from stm.cli import run
from stm.data.frames import open_frames
from stm.errors import StmError
from stm.inference.working_size import parse_size


def describe(entry: dict) -> str:
    action = entry["action"]
    if action == "stroke":
        return f"{entry['tool']} frame {entry['frame']} object {entry['object']}"
    if action == "propagate":
        direction = "backward" if entry.get("reverse") else "forward"
        return f"propagate {direction} from {entry['frame']} ({entry.get('outcome', 'done')})"
    if action in ("undo", "redo"):
        return f"{action} frame {entry.get('frame')}"
    return f"{action} {entry.get('object', '')}".strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", help="a workspace's interactions.jsonl")
    parser.add_argument("--weights", help="propagation checkpoint to replay with (none: random init)")
    parser.add_argument("--interactive-weights", help="interactive checkpoint, for logs with scribbles")
    parser.add_argument("--ground-truth", help="folder of one PNG mask per frame (e.g. Annotations/480p/<seq>)")
    parser.add_argument("--video", help="the video (default: the one the log names)")
    parser.add_argument("--size", type=parse_size, default=None, help="short side to run at, or native")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--output", help="keep the replayed workspace here (default: a temporary folder)")
    args = parser.parse_args(argv)

    entries = read_log(args.log)
    opens = [e for e in entries if e["action"] == "open"]
    video = args.video or (opens[0].get("video") if opens else None)
    if not video:
        raise StmError(f"{args.log}: the log names no video; give --video")
    frames = open_frames(video)
    height, width = frames.size
    semi, interactive = load_predictors(args.weights, args.interactive_weights, args.size, args.device)
    truth = read_ground_truth(args.ground_truth, len(frames), frames.size) if args.ground_truth else None
    scores = Scores(truth) if truth else None

    with tempfile.TemporaryDirectory(prefix="stm-replay-") as scratch:
        root = Path(args.output or scratch)
        if (root / "interactions.jsonl").exists():
            raise StmError(f"{root}: already holds a workspace; give an empty --output")
        workspace = Workspace(root, Path(str(video)).name, len(frames), height, width)
        seconds, values = [0.0], [scores.jf] if scores else []
        print(f"{'#':>4} {'time':>8}  {'interaction':<44} {'frames':>6}" + ("     J&F" if scores else ""))
        count = 0
        for step in replay(entries, lambda: Annotator(workspace, frames, str(video), semi, interactive)):
            if step.entry["action"] not in MASK_ACTIONS:
                continue
            count += 1
            line = f"{count:>4} {step.seconds:>7.1f}s  {describe(step.entry):<44} {len(step.changed):>6}"
            if scores:
                for index in set(step.changed):
                    scores.update(index, workspace.labels(index))
                seconds.append(step.seconds)
                values.append(scores.jf)
                line += f"  {scores.jf:.3f}"
            print(line, flush=True)
        if scores:
            print(
                f"J&F after {count} interactions: {values[-1]:.3f}; "
                f"AUC of J&F over {seconds[-1]:.1f} s: {area_under_curve(seconds, values):.3f}"
            )
        if args.output:
            print(f"replayed workspace: {root}")
    return 0


if __name__ == "__main__":
    run(main)
