import csv
import os
import subprocess
import sys
from pathlib import Path

from tests.evaluation.conftest import make_davis

REPO = Path(__file__).resolve().parents[2]


def test_two_processes_write_one_complete_submission(tmp_path):
    root = make_davis(tmp_path / "davis", names=("a", "b", "c"))
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(REPO / "eval_semi.py"),
        "--root",
        str(root),
        "--output",
        str(out),
        "--backbone",
        "resnet18",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    summaries = [line for line in finished.stdout.splitlines() if line.startswith("J&F ")]
    assert len(summaries) == 1 and "15 frames, 0 of 3 sequences already complete" in summaries[0]
    for name in ("a", "b", "c"):
        assert len(list((out / name).glob("*.png"))) == 5
    rows = list(csv.reader((out / "per-sequence_results-val.csv").open()))
    assert [r[0] for r in rows[1:]] == ["a_1", "a_2", "b_1", "b_2", "c_1", "c_2"]
