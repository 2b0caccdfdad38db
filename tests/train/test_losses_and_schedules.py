import pytest
import torch
import torch.nn.functional as F

from stm.config import LossConfig, SkipCurriculumConfig, TrainConfig
from stm.train.losses import SegmentationLoss, bootstrapped_ce, hard_fraction
from stm.train.schedules import lr_factor, max_skip


def test_bootstrap_fraction_is_annealed_between_its_steps():
    config = LossConfig(kind="bootstrap", top_p=0.2, start_step=10, end_step=20)
    assert hard_fraction(config, 0) == hard_fraction(config, 10) == 1.0
    assert hard_fraction(config, 15) == pytest.approx(0.6)
    assert hard_fraction(config, 20) == hard_fraction(config, 99) == 0.2
    assert hard_fraction(LossConfig(kind="ce"), 99) == 1.0


def test_bootstrapped_ce_averages_the_hardest_pixels_only():
    torch.manual_seed(0)
    logits, labels = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    pixels = F.cross_entropy(logits, labels, reduction="none").flatten(1)
    assert bootstrapped_ce(logits, labels, 1.0) == pytest.approx(float(pixels.mean()))
    hardest = pixels.sort(dim=1, descending=True).values[:, :16].mean()
    assert bootstrapped_ce(logits, labels, 0.25) == pytest.approx(float(hardest))
    loss = SegmentationLoss(LossConfig(kind="bootstrap", top_p=0.25, start_step=0, end_step=0))
    assert loss(logits, labels, step=5) == pytest.approx(float(hardest))


def test_void_pixels_carry_no_loss():
    torch.manual_seed(0)
    logits, labels = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    void = labels.clone()
    void[0, :4], void[1, :, :2] = 255, 255  # DAVIS void: ignored, never a class
    kept = void != 255
    pixels = F.cross_entropy(logits, labels, reduction="none")
    assert bootstrapped_ce(logits, void, 1.0) == pytest.approx(float(pixels[kept].mean()))
    # The hardest quarter of each image's real pixels: 8 of image 0's 32, 12 of image 1's 48.
    hardest = [pixels[b][kept[b]].sort(descending=True).values[:n] for b, n in ((0, 8), (1, 12))]
    assert bootstrapped_ce(logits, void, 0.25) == pytest.approx(float(torch.cat(hardest).mean()))
    logits.requires_grad_(True)
    bootstrapped_ce(logits, void, 0.25).backward()
    assert (logits.grad.abs().sum(1)[~kept] == 0).all()  # void pixels get no gradient


def test_skip_curriculum_and_lr_schedules():
    skip = SkipCurriculumConfig(start=5, end=25, ramp_steps=100)
    assert [max_skip(skip, s) for s in (0, 50, 100, 500)] == [5, 15, 25, 25]
    assert max_skip(SkipCurriculumConfig(start=5, end=25, ramp_steps=0), 0) == 25
    step = TrainConfig(steps=100, lr_schedule="step", lr_milestones=[10, 50], lr_gamma=0.1)
    assert [lr_factor(step, s) for s in (0, 10, 60)] == pytest.approx([1.0, 0.1, 0.01])
    warm = TrainConfig(steps=100, warmup_steps=4, lr_schedule="cosine")
    assert lr_factor(warm, 1) == pytest.approx(0.5) and lr_factor(warm, 100) == pytest.approx(0.0)
    assert lr_factor(TrainConfig(steps=100, lr_schedule="poly"), 50) == pytest.approx(0.5**0.9)
