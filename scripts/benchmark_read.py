"""Times the memory read against two plain matrix products of the same shapes, per memory size.

    python scripts/benchmark_read.py                      # 480x854, 2 objects, 1..7 memory frames, fp32 and bf16

The read (stm.model.memory_read, as inference calls it) computes affinity = q k^T / sqrt(128),
a softmax over the memory pixels and the weighted sum of the values. Its floor is the two products
alone: torch.bmm of [N, hw, 128] x [N, 128, L] and of [N, hw, L] x [N, L, 512] with L = T * hw, the
whole affinity materialised. The ratio of the two times says how far the read is from matrix speed;
both grow linearly with T, so the time per memory frame should stay flat. Median of --runs runs.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stm.model.memory_read import memory_read  # noqa: E402


def median_ms(runs: int, function, *args) -> float:
    function(*args)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def plain_products(query: torch.Tensor, key_t: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    return torch.bmm(torch.bmm(query, key_t), value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--memory-frames", default="1,3,5,7", help="comma-separated memory sizes (frames)")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    pixels = math.ceil(args.height / 16) * math.ceil(args.width / 16)  # the 1/16 feature map of the padded frame
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    threads = torch.get_num_threads()
    print(f"{args.height}x{args.width} ({pixels} query pixels), {args.objects} objects, {threads} threads")
    print("| precision | memory frames | read ms | plain bmm ms | ratio | read ms per memory frame | GFLOP/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    generator = torch.Generator().manual_seed(0)
    for name in args.precisions.split(","):
        dtype = dtypes[name]
        for frames in (int(t) for t in args.memory_frames.split(",")):
            length = frames * pixels
            query = torch.randn(1, pixels, 128, generator=generator).to(dtype)
            key = torch.randn(1, args.objects, length, 128, generator=generator).to(dtype)
            value = torch.randn(1, args.objects, length, 512, generator=generator).to(dtype)
            q, k_t, v = query.expand(args.objects, -1, -1), key[0].transpose(1, 2), value[0]
            read = median_ms(args.runs, memory_read, query, key, value)
            plain = median_ms(args.runs, plain_products, q, k_t, v)
            flops = 2 * args.objects * pixels * length * (128 + 512)
            print(
                f"| {name} | {frames} | {read:.1f} | {plain:.1f} | {read / plain:.2f} | {read / frames:.1f} "
                f"| {flops / read / 1e6:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
