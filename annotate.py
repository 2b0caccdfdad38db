"""Annotate a video in the browser: paint masks, propagate them with STM, correct, export.

    python annotate.py --video clip.mp4 --weights checkpoints/demo/latest.pth
    # then open the printed URL (http://127.0.0.1:8000/)

Everything is kept in the workspace: a DAVIS palette PNG per frame, the objects, and every
interaction in interactions.jsonl. Default: <video>.annotations beside a video file; for a folder of
frames (a dataset's, such as DAVIS's JPEGImages/480p/<seq>), <folder>.annotations in the current
directory, so nothing is written inside the dataset.
"""

from __future__ import annotations

import argparse

from stm.app.launch import check_port, load_predictors, open_annotator, serve
from stm.cli import run
from stm.inference.working_size import parse_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", required=True, help="a video file, or a folder of frames (.jpg/.png)")
    parser.add_argument("--weights", help="propagation checkpoint (ours or the official STM_weights.pth); none: random")
    parser.add_argument("--interactive-weights", help="interactive checkpoint: enables positive / negative scribbles")
    parser.add_argument("--workspace", help="where masks and the interaction log live (default: beside a video file; "
                        "for a folder of frames, in the current directory)")  # fmt: skip
    parser.add_argument("--size", type=parse_size, default=None, help="short side the network runs at, or native "
                        "(default: the size the checkpoint was trained at)")  # fmt: skip
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)

    check_port(args.host, args.port)
    semi, interactive = load_predictors(args.weights, args.interactive_weights, args.size, args.device)
    fields = {"weights": args.weights, "interactive_weights": args.interactive_weights, "size": args.size}
    annotator = open_annotator(args.video, args.workspace, semi, interactive, fields)
    serve(annotator, args.host, args.port)
    return 0


if __name__ == "__main__":
    run(main)
