"""Makes a DAVIS-layout folder robot-ready: palette annotations and synthesised Scribbles/<seq>/001.json.

    python scripts/make_interactive_root.py SOURCE TARGET [--sequences a,b] [--subset val] [--scale 0.5]
"""

import argparse

from stm.cli import run
from stm.data.interactive_root import make_interactive_root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="DAVIS-layout folder (JPEGImages/480p, Annotations/480p)")
    parser.add_argument("target", help="new folder to write")
    parser.add_argument("--sequences", default=None, help="comma-separated names (default: all / ImageSets list)")
    parser.add_argument("--subset", default="val", help="name of the ImageSets/2017 list to write (default val)")
    parser.add_argument("--scale", type=float, default=1.0, help="resize frames and annotations by this factor")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sequences = [name for name in args.sequences.split(",") if name] if args.sequences else None
    names = make_interactive_root(args.source, args.target, sequences, args.subset, args.scale, args.seed)
    print(f"{args.target}: {len(names)} sequences with first scribbles ({', '.join(names)})")
    return 0


if __name__ == "__main__":
    run(main)
