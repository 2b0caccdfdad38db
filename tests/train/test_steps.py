import torch

from stm.config import LossConfig
from stm.data.clips import ClipBatch
from stm.model.stm import STM
from stm.train.losses import SegmentationLoss
from stm.train.steps import SemiClipStep


def moving_square_batch() -> ClipBatch:
    """Two clips of 3 frames: a bright square moving right over a dark background (one object)."""
    frames = torch.full((2, 3, 3, 32, 32), 0.1)
    labels = torch.zeros(2, 3, 32, 32, dtype=torch.long)
    for t in range(3):
        frames[:, t, :, 8:20, 4 + 4 * t : 16 + 4 * t] = 0.9
        labels[:, t, 8:20, 4 + 4 * t : 16 + 4 * t] = 1
    return ClipBatch(frames, labels, torch.ones(2, 1, dtype=torch.bool))


def test_training_on_a_fixed_batch_lowers_the_loss():
    torch.manual_seed(0)
    model = STM("semi", "resnet18")
    step = SemiClipStep(model, SegmentationLoss(LossConfig()))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    batch = moving_square_batch()
    losses = []
    for _ in range(4):
        output = step(batch, 0)
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        losses.append(float(output.loss.detach()))
    assert output.probs.shape == (2, 2, 2, 32, 32)  # frames 2..3, {background, object}
    assert losses[-1] < 0.7 * losses[0]


def test_frame_two_is_memorised_with_its_predicted_soft_mask():
    """The loss of frame 3 depends on frame 2's prediction through the memory: its gradient reaches
    the memory encoder's mask stem from both memorised frames, not only from the given one."""
    torch.manual_seed(0)
    model = STM("semi", "resnet18")
    seen = []
    original = model.encode_memory
    model.encode_memory = lambda frame, masks, **options: seen.append(masks) or original(frame, masks, **options)
    output = SemiClipStep(model, SegmentationLoss(LossConfig()))(moving_square_batch(), 0)
    assert len(seen) == 2 and seen[1].requires_grad and not seen[0].requires_grad
    assert 0 < float(seen[1].detach().min()) and float(seen[1].detach().max()) < 1  # soft, not thresholded
    output.loss.backward()
    assert model.memory_encoder.trunk.extra_stem.weight.grad.abs().sum() > 0

