"""segment: propagate masks given on some frames of a video file or a folder of frames to every frame.

    python segment.py --video clip.mp4 --masks first.png --output out/ [--weights FILE] [--size N|native]
        [--device cpu|cuda] [--amp] [--overlay] [--mem-every 5] [--max-memory-frames N]

Writes out/<frame:05d>.png (DAVIS palette) for every frame, and out/overlay.mp4 with --overlay.
See README "Segment your own video".
"""

from stm.cli import run
from stm.segment import main

if __name__ == "__main__":
    run(main)
