"""train.py as a user runs it: end to end with validation, signals, SIGKILL, torchrun with gloo."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import eval_semi
from stm.data.io import PARTIAL_GLOB
from stm.errors import StmError
from stm.model.checkpoint import read_checkpoint
from stm.train.main import main
from tests.train.conftest import tiny_overrides

ROOT = Path(__file__).resolve().parents[2]


def command(tmp_path: Path, videos: Path, steps: int, *extra: str) -> list[str]:
    config = tmp_path / "tiny.yaml"
    config.write_text("model:\n  backbone: resnet18\n")
    return ["--config", str(config), *tiny_overrides(videos, tmp_path / "run", steps), *extra]


def launch(args: list[str], runner: list[str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*(runner or [sys.executable]), str(ROOT / "train.py"), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.2)


def test_demo_shaped_run_trains_validates_and_its_checkpoint_evaluates(tiny_videos, tmp_path, capsys):
    args = command(tmp_path, tiny_videos, 2, f"val.root={tiny_videos}", "val.every_steps=1")
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "J&F " in out and "on held-out videos" in out
    run = tmp_path / "run"
    curve = (run / "curve.csv").read_text().splitlines()
    assert curve[0].startswith("step,train_minutes,wall_minutes,J&F") and len(curve) == 3  # steps 1 and 2
    assert 0 <= float(curve[-1].split(",")[3]) <= 1
    assert read_checkpoint(run / "latest.pth")["curve"][-1]["step"] == 2
    weights = str(run / "latest.pth")
    eval_semi.main(["--root", str(tiny_videos), "--output", str(tmp_path / "out"), "--weights", weights])
    assert (tmp_path / "out" / "global_results-val.csv").is_file()


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: 1e-4\n  max_minute: 3\n")
    with pytest.raises(StmError, match=r"bad\.yaml: unknown key 'train\.max_minute' \(did you mean 'train\.max_min"):
        main(["--config", str(bad)])
    good = tmp_path / "good.yaml"
    good.write_text("{}\n")
    with pytest.raises(StmError, match=r"train\.batch_size: Value 'many'"):
        main(["--config", str(good), "train.batch_size=many"])


def test_sigterm_saves_and_sigkill_leaves_a_loadable_checkpoint_to_resume(tiny_videos, tmp_path):
    run = tmp_path / "run"
    process = launch(command(tmp_path, tiny_videos, 1000))
    wait_for(run / "step_00000001.pth", process)
    process.send_signal(signal.SIGTERM)
    out = process.communicate(timeout=120)[0]
    assert process.returncode == 0 and "stopped by a signal" in out
    stopped = read_checkpoint(run / "latest.pth")["step"]

    process = launch(command(tmp_path, tiny_videos, 1000))
    wait_for(run / f"step_{stopped + 1:08d}.pth", process)
    process.kill()  # SIGKILL: no handler runs
    assert f"resumed from step {stopped}" in process.communicate(timeout=60)[0]
    killed = read_checkpoint(run / "latest.pth")["step"]  # whole, whenever the kill came
    assert killed > stopped

    process = launch(command(tmp_path, tiny_videos, killed + 1))
    out = process.communicate(timeout=120)[0]
    assert process.returncode == 0 and f"resumed from step {killed}" in out
    assert read_checkpoint(run / "latest.pth")["step"] == killed + 1
    assert not list(run.glob(PARTIAL_GLOB))

