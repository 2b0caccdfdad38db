import pytest
import torch

from stm.config import load_config
from stm.errors import StmError
from stm.model.checkpoint import read_checkpoint, save_checkpoint
from stm.model.stm import STM
from stm.train.steps import CLIP_STEPS, SemiClipStep, StepOutput
from stm.train.trainer import Trainer
from tests.train.conftest import tiny_config
from tests.train.ddp_worker import NanGradStep


def state_of(trainer: Trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_a_resumed_run_ends_in_the_same_state_as_an_uninterrupted_one(tiny_videos, tmp_path, capsys):
    def trainer(folder: str, steps: int) -> Trainer:
        config = tiny_config(tiny_videos, tmp_path / folder, steps=steps, extra=["run.save_every_steps=0"])
        return Trainer(config, tmp_path / folder)

    whole = trainer("whole", 3)
    whole.fit()
    trainer("parts", 2).fit()
    assert "resumed" not in capsys.readouterr().out
    second = trainer("parts", 3)
    second.fit()
    output = capsys.readouterr()
    assert "resumed from step 2" in output.out
    assert "\r" not in output.err and "3/3" in output.err  # progress in a log: plain lines
    assert second.step == whole.step == 3
    expected, got = state_of(whole), state_of(second)
    assert all(torch.allclose(expected[k].float(), got[k].float(), atol=1e-6) for k in expected)
    a, b = whole.optimizer.state_dict()["state"], second.optimizer.state_dict()["state"]
    assert all(torch.allclose(a[k]["exp_avg"], b[k]["exp_avg"], atol=1e-7) for k in a)
    checkpoint = read_checkpoint(tmp_path / "parts" / "latest.pth")
    assert checkpoint["step"] == 3 and checkpoint["max_skip"] == 2 and len(checkpoint["rng"]) == 1
    assert checkpoint["size"] == 32  # the short side of data.size: what inference runs at by default
    assert (tmp_path / "parts" / "config.yaml").is_file() and any((tmp_path / "parts" / "tensorboard").iterdir())


def test_batchnorm_is_frozen_from_pretrained_weights_and_trains_from_random_init(tiny_videos, tmp_path):
    save_checkpoint(tmp_path / "init.pth", STM("semi", "resnet18", decoder_channels=32))
    init = [f"model.init_weights={tmp_path / 'init.pth'}"]
    pretrained = Trainer(tiny_config(tiny_videos, tmp_path / "a", extra=init), tmp_path / "a")
    pretrained.setup()
    bn = pretrained.model.query_encoder.bn1
    assert not bn.training and not bn.weight.requires_grad and pretrained.model.decoder.training
    scratch = Trainer(tiny_config(tiny_videos, tmp_path / "b"), tmp_path / "b")
    scratch.setup()
    assert scratch.model.query_encoder.bn1.training and scratch.model.query_encoder.bn1.weight.requires_grad


def test_batchnorm_recalibration_replaces_stale_running_statistics_and_nothing_else(tiny_videos, tmp_path):
    trainer = Trainer(tiny_config(tiny_videos, tmp_path), tmp_path)
    trainer.setup()
    norms = [m for m in trainer.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.running_mean.fill_(100.0)
        norm.running_var.fill_(1e-3)
    weights = {k: v.clone() for k, v in trainer.model.named_parameters()}
    trainer.recalibrate_batchnorm(2)
    bn1 = trainer.model.query_encoder.bn1
    assert bn1.running_mean.abs().max() < 10 and bn1.running_var.min() > 1e-3
    assert all(norm.momentum == 0.1 for norm in norms)
    assert all(torch.equal(weights[k], v) for k, v in trainer.model.named_parameters())
    # the plain average over the two batches: a third pass with momentum None over the same data agrees
    first = bn1.running_mean.clone()
    trainer.recalibrate_batchnorm(2)
    assert torch.allclose(first, bn1.running_mean, atol=1e-5)


class NanStep(SemiClipStep):
    def forward(self, batch, step):
        output = super().forward(batch, step)
        return StepOutput(output.loss * float("nan"), output.probs)


def test_non_finite_losses_skip_steps_then_abort_with_the_last_good_state_saved(tiny_videos, tmp_path):
    CLIP_STEPS["nan-test"] = lambda model, loss, config: NanStep(model, loss)
    try:
        config = tiny_config(tiny_videos, tmp_path, steps=5, extra=["train.step=nan-test", "train.max_nan_steps=2"])
        before = dict(Trainer(config, tmp_path / "unused").model.named_parameters())  # seeded: same initial weights
        with pytest.raises(StmError, match="2 non-finite losses or gradients in a row"):
            Trainer(config, tmp_path).fit()
    finally:
        del CLIP_STEPS["nan-test"]
    saved = read_checkpoint(tmp_path / "latest.pth")
    assert saved["step"] == 2
    assert all(torch.equal(saved["model"][k], before[k]) for k in before)  # no parameter was updated


def test_non_finite_gradients_of_a_finite_loss_are_never_applied(tiny_videos, tmp_path):
    CLIP_STEPS["nan-grad-test"] = lambda model, loss, config: NanGradStep(model, loss, rank=1)
    try:  # grad_clip 0 (the default): no gradient norm is computed for clipping
        extra = ["train.step=nan-grad-test", "train.max_nan_steps=1"]
        config = tiny_config(tiny_videos, tmp_path, steps=5, extra=extra)
        trainer = Trainer(config, tmp_path)
        with pytest.raises(StmError) as error:
            trainer.fit()
    finally:
        del CLIP_STEPS["nan-grad-test"]
    aborted = read_checkpoint(tmp_path / "latest.pth")
    assert aborted["step"] == 2  # stopped at the bad step, not at the NaN loss that applying it would cause
    saved = read_checkpoint(tmp_path / "step_00000001.pth")  # the good step
    assert "1 non-finite losses or gradients in a row" in str(error.value)
    names = [name for name, _ in trainer.model.named_parameters()]  # (BatchNorm statistics move in any forward)
    assert all(torch.equal(aborted["model"][k], saved["model"][k]) for k in names)  # step 2 was not applied
    assert all(torch.isfinite(aborted["model"][k]).all() for k in names)


def test_unreadable_frames_are_skipped_counted_and_abort_past_the_limit(tiny_videos, tmp_path, caplog):
    import shutil

    videos = tmp_path / "videos"
    shutil.copytree(tiny_videos, videos)
    for name in ("train-000", "train-001"):
        for frame in (videos / "JPEGImages" / "480p" / name).iterdir():
            frame.write_bytes(frame.read_bytes()[:40])  # truncated JPEG
    tolerant = Trainer(tiny_config(videos, tmp_path / "a", steps=2, extra=["train.max_bad_samples=10"]), tmp_path / "a")
    tolerant.fit()
    assert tolerant.step == 2 and tolerant.bad_samples > 0
    assert "skipped an unreadable sample" in caplog.text and ".jpg: unreadable image" in caplog.text
    strict = Trainer(tiny_config(videos, tmp_path / "b", steps=2, extra=["train.max_bad_samples=0"]), tmp_path / "b")
    with pytest.raises(StmError, match=r"unreadable samples .*train\.max_bad_samples.*\.jpg"):
        strict.fit()


def test_unknown_step_and_missing_dataset_are_named(tiny_videos, tmp_path):
    with pytest.raises(StmError, match="train.step: 'scribble' is not one of"):
        Trainer(tiny_config(tiny_videos, tmp_path, extra=["train.step=scribble"]), tmp_path)
    config = load_config(None, [f"data.video=[{{root: {tmp_path / 'absent'}}}]", "model.backbone=resnet18"])
    with pytest.raises(StmError, match="absent: no such dataset folder"):
        Trainer(config, tmp_path / "run").fit()


def test_lr_factors_give_named_layers_their_own_rate_through_the_schedule(tiny_videos, tmp_path):
    extra = ["train.lr_factors={memory_encoder.trunk.extra_stem: 10}", "train.lr_schedule=cosine"]
    trainer = Trainer(tiny_config(tiny_videos, tmp_path, extra=extra), tmp_path)
    trainer.setup()
    stem = trainer.model.memory_encoder.trunk.extra_stem.weight
    rates = {id(p): group["lr"] for group in trainer.optimizer.param_groups for p in group["params"]}
    assert rates[id(stem)] == pytest.approx(1e-3) and rates[id(trainer.model.decoder.predict.weight)] == 1e-4
    assert sum(len(group["params"]) for group in trainer.optimizer.param_groups) == sum(
        p.requires_grad for p in trainer.model.parameters()
    )
    trainer.scheduler.step()  # the schedule scales every group alike
    first, second = (group["lr"] for group in trainer.optimizer.param_groups)
    assert max(first, second) / min(first, second) == pytest.approx(10)
    typo = Trainer(tiny_config(tiny_videos, tmp_path / "t", extra=["train.lr_factors={memory_encoder.stem: 10}"]),
                   tmp_path / "t")
    with pytest.raises(StmError, match=r"lr_factors: no trainable parameter is named memory_encoder\.stem"):
        typo.setup()
