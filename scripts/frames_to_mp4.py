"""Turns a folder of frames (e.g. DAVIS JPEGImages/480p/<seq>) into an H.264 mp4 with PyAV.

    python scripts/frames_to_mp4.py FOLDER OUT.mp4 [--fps 24] [--crf 18]
"""

import argparse

from stm.cli import run
from stm.data.frames import FolderFrames
from stm.data.video_file import DEFAULT_FPS, write_video


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="folder of .jpg / .png frames (natural name order)")
    parser.add_argument("output", help="the video to write (.mp4, .mkv, .mov)")
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help="a folder of frames has no rate: DAVIS is 24")
    parser.add_argument("--crf", type=int, default=18, help="x264 quality: 0 lossless, 18 visually lossless")
    args = parser.parse_args(argv)
    frames = FolderFrames(args.folder)
    count = write_video(args.output, (frames[i] for i in range(len(frames))), args.fps, args.crf)
    print(f"{args.output}: {count} frames of {frames.size[1]}x{frames.size[0]} at {args.fps:g} fps")
    return 0


if __name__ == "__main__":
    run(main)
