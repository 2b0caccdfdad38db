"""DistributedDataParallel with gloo, two processes under torchrun (tests/train/ddp_worker.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stm.model.checkpoint import read_checkpoint
from stm.train import trainer as trainer_module
from tests.train.conftest import tiny_config, tiny_overrides
from tests.train.ddp_worker import fixed_batches

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def torchrun(mode: str, overrides: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*TORCHRUN, str(ROOT / "tests" / "train" / "ddp_worker.py"), mode, *overrides],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def finish(process: subprocess.Popen) -> str:
    try:
        return process.communicate(timeout=240)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the process group hung: " + process.communicate()[0][-3000:])


def test_two_processes_of_batch_b_make_the_update_of_one_process_of_batch_2b(tiny_videos, tmp_path, monkeypatch):
    # BatchNorm frozen: its batch statistics are per process by design (no SyncBatchNorm), all else must agree.
    extra = ["train.freeze_bn=true", "train.lr=1e-3"]
    process = torchrun("fixed", tiny_overrides(tiny_videos, tmp_path / "ddp", steps=2) + extra)
    single = tiny_config(tiny_videos, tmp_path / "one", steps=2, extra=[*extra, "train.batch_size=4"])
    monkeypatch.setattr(trainer_module, "build_loader", lambda *a, **k: fixed_batches(*a, **k, world=1))
    one = trainer_module.Trainer(single, tmp_path / "one")
    one.fit()
    out = finish(process)
    assert process.returncode == 0, out

    parts = [fixed_batches(single, rank, 0, 1, world=2)[0] for rank in (0, 1)]
    assert not torch.equal(parts[0].frames, parts[1].frames)  # the two processes saw different clips
    grads = [torch.load(tmp_path / "ddp" / f"grads_rank{rank}.pt") for rank in (0, 1)]
    expected = {name: p.grad for name, p in one.model.named_parameters() if p.grad is not None}
    assert grads[0].keys() == grads[1].keys() == expected.keys()
    for name, grad in expected.items():  # the gradient averaged over processes = the gradient of 2B
        assert float((grads[0][name] - grad).abs().max()) <= 1e-5 * float(grad.abs().max()) + 1e-7, name
        assert torch.equal(grads[0][name], grads[1][name]), name
    ddp = read_checkpoint(tmp_path / "ddp" / "latest.pth")
    assert ddp["step"] == 2 and len(ddp["rng"]) == 2  # both processes' RNG states
    start = trainer_module.Trainer(single, tmp_path / "unused").model.state_dict()  # seeded: the same initial weights
    for name, value in one.model.named_parameters():  # two Adam steps land on the same weights
        if value.grad is None or value.grad.abs().max() < 1e-6:
            continue  # a gradient of rounding noise only (e.g. the key biases, which the softmax cancels):
            # Adam normalises it into a full-size step in a random direction
        moved = float((value.detach() - start[name]).abs().mean())
        assert moved > 0 and float((ddp["model"][name] - value.detach()).abs().mean()) <= 1e-3 * moved, name


@pytest.mark.parametrize(
    ("mode", "message", "saved_step"),
    [
        ("nan-grad", "1 non-finite losses or gradients in a row", 2),  # step 2 skipped: step 1's weights
        ("empty-batch", "no readable sample in the batch of step 2", 1),
    ],
)
def test_a_fault_on_one_process_stops_both_after_saving_the_last_good_state(
    tiny_videos, tmp_path, mode, message, saved_step
):
    overrides = tiny_overrides(tiny_videos, tmp_path, steps=4) + ["run.save_every_steps=0", "train.max_nan_steps=1"]
    process = torchrun(mode, overrides)
    out = finish(process)
    assert process.returncode != 0 and message in out, out
    saved = read_checkpoint(tmp_path / "latest.pth")  # written by the abort, nothing else saves
    assert saved["step"] == saved_step and all(torch.isfinite(v).all() for v in saved["model"].values())
