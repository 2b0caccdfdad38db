"""Cost of the atomic writer's fsync: writes N DAVIS-size palette PNGs with stm.data.io.write_mask, with
the fsync and with it skipped, into a temporary folder on the same disk as --dir.

    python scripts/benchmark_writes.py --dir outputs --count 200
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from unittest import mock

import numpy as np

from stm.data.io import write_mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default=".", help="a folder on the disk to measure")
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    labels = np.zeros((480, 854), dtype=np.uint8)
    labels[100:300, 200:500], labels[250:450, 450:800] = 1, 2
    os.makedirs(args.dir, exist_ok=True)
    for label, skip in (("with fsync", False), ("fsync skipped", True)):
        with tempfile.TemporaryDirectory(dir=args.dir) as folder:
            with mock.patch("os.fsync", lambda fd: None) if skip else mock.patch.dict({}):
                start = time.perf_counter()
                for index in range(args.count):
                    write_mask(os.path.join(folder, f"{index:05d}.png"), labels)
                seconds = time.perf_counter() - start
        print(f"{label}: {1000 * seconds / args.count:.2f} ms per 480x854 PNG ({args.count} files)")


if __name__ == "__main__":
    main()
