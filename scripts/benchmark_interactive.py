"""Peak memory and time of an InteractiveSession on a long video: each interaction re-segments every frame.

    python scripts/benchmark_interactive.py --frames 100 --height 480 --width 854               # frames read lazily
    python scripts/benchmark_interactive.py --frames 100 --height 480 --width 854 --tensor      # one tensor

Frames are noise generated on demand (the cost does not depend on what they show); one object, a
scribbled rectangle on frame 0, then --interactions - 1 more on other frames. Only the session's public
constructor and `interact` are used, so `--package DIR` measures another version of the package too
(e.g. `git archive main stm | tar -x -C DIR`; with --tensor, the only frame form older versions take).
Prints the peak RSS after each interaction and the time it took.
"""

from __future__ import annotations

import argparse
import inspect
import json
import resource
import sys
import time
from pathlib import Path

import torch


class NoiseFrames:
    """T frames [3, H, W] in [0, 1], each made when read (as a video reader decodes it)."""

    def __init__(self, count: int, height: int, width: int):
        self.count, self.height, self.width = count, height, width

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.count:
            raise IndexError(index)
        generator = torch.Generator().manual_seed(index)
        return torch.rand(3, self.height, self.width, generator=generator)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--decoder-channels", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8, help="frames segmented per network call")
    parser.add_argument("--interactions", type=int, default=2)
    parser.add_argument("--tensor", action="store_true", help="pass the video as one [T, 3, H, W] tensor")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--package", type=Path, default=Path(__file__).resolve().parents[1],
                        help="folder holding the stm package to measure (default: this checkout)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.package))
    from stm.inference.interactive import InteractiveSession
    from stm.model.stm import STM

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = STM("interactive", args.backbone, decoder_channels=args.decoder_channels).eval()
    frames = NoiseFrames(args.frames, args.height, args.width)
    if args.tensor:
        frames = torch.stack([frames[t] for t in range(args.frames)])
    session = InteractiveSession(model, frames, 1, batch=args.batch)
    result = {
        "frames": args.frames, "size": [args.height, args.width], "backbone": args.backbone,
        "decoder_channels": args.decoder_channels, "batch": args.batch, "tensor": args.tensor,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "session": inspect.getsourcefile(InteractiveSession), "rounds": [],
    }
    print(f"before the first interaction: peak RSS {peak_rss_gib():.2f} GiB", flush=True)
    for index in range(args.interactions):
        frame = index * (args.frames - 1) // max(args.interactions - 1, 1)
        scribbles = torch.zeros(1, 2, args.height, args.width, dtype=torch.bool)
        scribbles[0, 0, args.height // 3 : args.height // 3 + 3, args.width // 4 : args.width // 2] = True
        start = time.perf_counter()
        session.interact(frame, scribbles)
        seconds = time.perf_counter() - start
        cached = getattr(session, "cached_bytes", None)
        result["rounds"].append({"frame": frame, "seconds": seconds, "peak_rss_gib": peak_rss_gib(), "cached": cached})
        kept = f", query encodings kept {cached / 2**20:.0f} MiB" if cached is not None else ""
        print(f"interaction {index + 1} on frame {frame}: {seconds:.1f} s, peak RSS {peak_rss_gib():.2f} GiB{kept}",
              flush=True)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
