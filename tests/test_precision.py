"""One precision rule (stm.precision.autocast_dtype) for inference, training and the benchmark."""

import pytest
import torch

from stm.errors import StmError
from stm.inference.semi import SemiSupervisedSession
from stm.model.stm import STM
from stm.precision import autocast_dtype
from stm.train.trainer import Trainer
from tests.train.conftest import tiny_config

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_one_table_for_every_device_and_setting():
    for off in (False, "fp32"):
        assert autocast_dtype(CPU, off) is None and autocast_dtype(CUDA, off) is None
    assert autocast_dtype(CPU, True) == torch.bfloat16  # --amp: the device's half type
    assert autocast_dtype(CUDA, True) == torch.float16
    assert autocast_dtype(CPU, "auto") is None  # train.amp auto: where it pays, the same half type
    assert autocast_dtype(CUDA, "auto") == autocast_dtype(CUDA, True)
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        assert autocast_dtype(CUDA, name) == dtype
    assert autocast_dtype(CPU, "bf16") == torch.bfloat16
    with pytest.raises(StmError, match="fp16 needs CUDA"):
        autocast_dtype(CPU, "fp16")
    with pytest.raises(StmError, match="'fp8'"):
        autocast_dtype(CPU, "fp8")


def test_training_and_inference_take_their_precision_from_it(tmp_path):
    model = STM("semi", "resnet18")
    for amp in (False, True, "bf16"):
        assert SemiSupervisedSession(model, amp=amp).amp_dtype == autocast_dtype(CPU, amp)
    for amp in ("auto", "fp32", "bf16"):
        trainer = Trainer(tiny_config(tmp_path, tmp_path / amp, extra=[f"train.amp={amp}"]), tmp_path / amp)
        assert trainer.amp == autocast_dtype(CPU, amp)
    with pytest.raises(StmError, match="train.amp: fp16 needs CUDA"):
        Trainer(tiny_config(tmp_path, tmp_path / "fp16", extra=["train.amp=fp16"]), tmp_path / "fp16")
