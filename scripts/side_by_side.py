"""Side by side with the official STM inference code: whole processes, the same data and weights.

    python scripts/side_by_side.py --official /path/to/seoungwugoh-STM --work /tmp/side_by_side

The official code (github.com/seoungwugoh/STM: eval_DAVIS.py, model.py, dataset.py, helpers.py) is
never part of this repository: fetch it anywhere and pass its folder. Steps:

1. generate one sequence in the DAVIS layout (default 31 frames at 480x854 with 2 objects, first-frame
   annotation only) and random weights in the official layout (the official model's own
   initialisation, seeded, saved as its DataParallel state dict: `STM_weights.pth`);
2. run, one after the other, each as a whole process under `/usr/bin/time`: the official
   `eval_DAVIS.py`, unmodified (run through `runpy` with two offline shims: an empty `matplotlib`,
   which it imports and never uses, and torchvision's ResNet-50 built with `weights=None`, as its
   `pretrained=True` would download ImageNet weights), then `eval_semi.py` in fp32 and with `--amp`;
3. compare the masks each run wrote with the official ones, and (unless `--fidelity-frames 0`) the
   probabilities of both codes in this process, in fp32, on the first frames of the sequence:
   the official `Run_video` (taken unmodified from eval_DAVIS.py by its syntax tree) against our
   `SemiSupervisedSession`.

Prints one table (wall time, peak RSS, ratios to the official run, masks agreeing) and writes it
with the raw figures to WORK/side_by_side.json. Run it under `flock /work/locks/cpu` on a shared machine.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import runpy
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEQUENCE = "blackswan"  # eval_DAVIS.py reads its palette from Annotations/480p/blackswan/00000.png
OFFICIAL_OUTPUT = Path("test") / "STM_DAVIS_17val"  # where eval_DAVIS.py -y 17 -s val writes, under its cwd


def offline_shims() -> None:
    """What the official code needs offline: it imports matplotlib.pyplot (never used) and builds
    torchvision.models.resnet50(pretrained=True), which would download ImageNet weights (the
    checkpoint replaces them anyway)."""
    import torchvision

    matplotlib = types.ModuleType("matplotlib")
    matplotlib.pyplot = types.ModuleType("matplotlib.pyplot")
    sys.modules.setdefault("matplotlib", matplotlib)
    sys.modules.setdefault("matplotlib.pyplot", matplotlib.pyplot)
    original = torchvision.models.resnet50

    def resnet50(pretrained: bool = False, **kwargs):
        kwargs.pop("weights", None)
        return original(weights=None, **kwargs)

    torchvision.models.resnet50 = resnet50


def official_model(official: Path, weights: Path | None = None):
    """The official model.STM wrapped in DataParallel as eval_DAVIS.py wraps it, in eval mode."""
    import torch

    offline_shims()
    sys.path.insert(0, str(official))
    from model import STM as OfficialSTM  # noqa: PLC0415 (the official model.py, from its folder)

    model = torch.nn.DataParallel(OfficialSTM())
    if weights is not None:
        model.load_state_dict(torch.load(weights, map_location="cpu"))
    return model.eval()


def generate(work: Path, official: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    """The DAVIS-layout root (frames, first mask, ImageSets/2017/val.txt) and STM_weights.pth."""
    import torch

    from stm.data.io import write_frame, write_mask
    from stm.data.synthetic import FRAME_QUALITY, SyntheticSpec, render_video

    root, weights = work / "davis", work / "STM_weights.pth"
    spec = SyntheticSpec(args.height, args.width, args.frames, args.frames, args.objects, args.objects)
    frames, labels = render_video(np.random.default_rng(args.seed), spec)
    for t, frame in enumerate(frames):
        write_frame(root / "JPEGImages" / "480p" / SEQUENCE / f"{t:05d}.jpg", frame, quality=FRAME_QUALITY)
    write_mask(root / "Annotations" / "480p" / SEQUENCE / "00000.png", labels[0])
    listing = root / "ImageSets" / "2017" / "val.txt"
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text(f"{SEQUENCE}\n")
    torch.manual_seed(args.seed)
    torch.save(official_model(official).state_dict(), weights)
    return root, weights


def busy_seconds() -> float:
    """CPU seconds this machine has spent busy (all processes, all cores) since boot, from /proc/stat."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def timed(command: list[str], cwd: Path, log: Path) -> dict:
    """Runs `command` under /usr/bin/time: wall seconds, CPU seconds and peak RSS (KB, %M) of the
    whole process, and the CPU seconds the rest of the machine used meanwhile (other load skews
    wall times on a shared machine: it is reported, never subtracted)."""
    stats = log.with_suffix(".time")
    busy = busy_seconds()
    with open(log, "w") as output:
        subprocess.run(
            ["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(stats), *command],
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    wall, user, system, rss = stats.read_text().split()[-4:]
    cpu = float(user) + float(system)
    others = max(0.0, busy_seconds() - busy - cpu)
    print(f"  {wall} s wall, {cpu:.1f} s CPU, {int(rss):,} KB; other processes {others:.1f} CPU s", flush=True)
    return {
        "wall_s": float(wall),
        "cpu_s": cpu,
        "peak_rss_kb": int(rss),
        "other_load_cpu_s": others,
        "command": " ".join(command),
    }


def agreement(folder: Path, reference: Path) -> float:
    """Fraction of pixels labelled the same in two folders of palette PNGs."""
    from stm.data.io import read_mask

    files = sorted(reference.glob("*.png"))
    same = sum(np.count_nonzero(read_mask(folder / f.name) == read_mask(f)) for f in files)
    return same / sum(read_mask(f).size for f in files)


def official_run_video(official: Path):
    """eval_DAVIS.py's Run_video function, unmodified: compiled alone from the file's syntax tree
    (importing eval_DAVIS.py would run the whole evaluation)."""
    import torch
    import torch.nn.functional as F
    import tqdm

    tree = ast.parse((official / "eval_DAVIS.py").read_text())
    function = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "Run_video")
    namespace = {"torch": torch, "np": np, "F": F, "tqdm": tqdm}
    exec(compile(ast.Module([function], type_ignores=[]), str(official / "eval_DAVIS.py"), "exec"), namespace)
    return namespace


def fidelity(official: Path, weights: Path, root: Path, frames: int, mem_every: int = 5) -> dict:
    """Largest probability difference, ours (fp32) against the official code, on the first `frames`."""
    import torch

    from stm.data.io import read_frame, read_mask
    from stm.inference.semi import SemiSupervisedSession
    from stm.model.checkpoint import load_model

    torch.set_grad_enabled(False)
    paths = sorted((root / "JPEGImages" / "480p" / SEQUENCE).glob("*.jpg"))[:frames]
    images = np.stack([read_frame(p) for p in paths])
    first = read_mask(root / "Annotations" / "480p" / SEQUENCE / "00000.png")
    objects = int(first.max())
    run_video = official_run_video(official)
    run_video["model"] = official_model(official, weights)
    fs = torch.from_numpy(images).permute(3, 0, 1, 2)[None].float() / 255  # as dataset.py: [1, 3, T, H, W]
    ms = torch.zeros(1, 11, len(paths), *first.shape)
    ms[0, :, 0] = torch.from_numpy(np.stack([first == k for k in range(11)])).float()
    _, es = run_video["Run_video"](fs, ms, len(paths), torch.LongTensor([[objects]]), Mem_every=mem_every)
    theirs = es[0, : 1 + objects].permute(1, 0, 2, 3)  # [T, 1 + K, H, W]
    model, _ = load_model(weights, mode="semi")
    session = SemiSupervisedSession(model.eval(), mem_every)
    ours = torch.stack([session.step(image, first if t == 0 else None).probs for t, image in enumerate(images)])
    difference = (ours - theirs)[1:].abs()  # frame 0 is the given mask in both
    labels_same = (ours.argmax(1) == theirs.argmax(1))[1:].float().mean().item()
    return {"frames": len(paths), "max_abs_prob_diff": difference.max().item(), "labels_same": labels_same}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path, required=True, help="folder holding the official eval_DAVIS.py")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder for data, weights and outputs")
    parser.add_argument("--frames", type=int, default=31)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default="official,fp32,amp", help="comma-separated subset of official,fp32,amp")
    parser.add_argument("--fidelity-frames", type=int, default=8, help="frames compared in-process (0: skip)")
    args = parser.parse_args(argv)
    official, work = args.official.resolve(), args.work.resolve()
    if not (official / "eval_DAVIS.py").is_file():
        parser.error(f"--official {official}: no eval_DAVIS.py there")
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    print(f"generating {args.frames} frames at {args.height}x{args.width} and official-layout weights", flush=True)
    root, weights = generate(work, official, args)
    python = sys.executable
    ours = [python, str(ROOT / "eval_semi.py"), "--root", str(root), "--weights", str(weights)]
    commands = {
        "official": [python, __file__, "--run-official", str(official), "--", str(root)],
        "fp32": [*ours, "--output", str(work / "fp32")],
        "amp": [*ours, "--output", str(work / "amp"), "--amp"],
    }
    results: dict = {"machine": machine(), "settings": vars(args) | {"official": str(official), "work": str(work)}}
    for name in args.runs.split(","):
        print(f"running {name}", flush=True)
        results[name] = timed(commands[name], work, work / f"{name}.log")
    reference = work / OFFICIAL_OUTPUT / SEQUENCE
    for name in ("fp32", "amp"):
        if name in results and reference.is_dir():
            results[name]["labels_same_as_official"] = agreement(work / name / SEQUENCE, reference)
    if args.fidelity_frames:
        print(f"comparing probabilities in-process on {args.fidelity_frames} frames", flush=True)
        results["fidelity"] = fidelity(official, weights, root, min(args.fidelity_frames, args.frames))
    print(table(results))
    (work / "side_by_side.json").write_text(json.dumps(results, indent=1, default=str))
    return results


def machine() -> dict:
    import torch

    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "")
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags.split(),
        "amx_bf16": "amx_bf16" in flags.split(),
        "mkldnn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def table(results: dict) -> str:
    m, s = results["machine"], results["settings"]
    lines = [
        f"{s['frames']} frames at {s['height']}x{s['width']}, {s['objects']} objects, mem-every 5; {m['cpu']} "
        f"({m['cores']} cores, avx512_bf16 {m['avx512_bf16']}, amx_bf16 {m['amx_bf16']}), torch {m['torch']}, "
        f"{m['date']}",
        "| run | wall time | CPU time | peak RSS | speed-up | RSS ratio | masks as official | other load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base = results.get("official")
    for name in ("official", "fp32", "amp"):
        if name not in results:
            continue
        r = results[name]
        speed = f"{base['wall_s'] / r['wall_s']:.2f}x" if base and name != "official" else ""
        ratio = f"{r['peak_rss_kb'] / base['peak_rss_kb']:.2f}" if base and name != "official" else ""
        same = f"{100 * r['labels_same_as_official']:.4f}%" if "labels_same_as_official" in r else ""
        lines.append(
            f"| {name} | {r['wall_s']:.1f} s | {r['cpu_s']:.1f} s | {r['peak_rss_kb']:,} KB | {speed} | {ratio} "
            f"| {same} | {r['other_load_cpu_s']:.1f} CPU s |"
        )
    if "fidelity" in results:
        f = results["fidelity"]
        lines.append(
            f"fp32 probabilities against the official code, in-process, {f['frames']} frames: largest difference "
            f"{f['max_abs_prob_diff']:.2e}, labels the same on {100 * f['labels_same']:.4f}% of pixels"
        )
    return "\n".join(lines)


def run_official(official: Path, root: str) -> None:
    """The official eval_DAVIS.py, unmodified, on `root` (its outputs go under the current folder)."""
    offline_shims()
    sys.path.insert(0, str(official))
    sys.argv = [str(official / "eval_DAVIS.py"), "-g", "", "-s", "val", "-y", "17", "-D", root]
    runpy.run_path(str(official / "eval_DAVIS.py"), run_name="__main__")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--run-official" and sys.argv[3] == "--":
        run_official(Path(sys.argv[2]), sys.argv[4])
    else:
        main()
