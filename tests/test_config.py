from pathlib import Path

import pytest

from stm.config import Config, load_config, to_dict
from stm.errors import StmError


def write(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_yaml_and_overrides_fill_the_dataclasses(tmp_path):
    path = write(tmp_path, "model:\n  backbone: resnet18\n")
    config = load_config(path, ["model.read_kernel=bmm"])
    assert isinstance(config, Config)
    assert config.model.backbone == "resnet18" and config.model.read_kernel == "bmm"
    assert config.model.mode == "semi"  # default kept
    assert to_dict(config)["model"]["backbone"] == "resnet18"


def test_unknown_keys_are_named_with_the_file(tmp_path):
    path = write(tmp_path, "model:\n  backbon: resnet18\n")
    with pytest.raises(StmError, match=r"run\.yaml: unknown key 'model\.backbon'"):
        load_config(path)
    with pytest.raises(StmError, match=r"unknown key 'model\.colour'"):
        load_config(None, ["model.colour=red"])


def test_bad_values_and_types_are_named(tmp_path):
    with pytest.raises(StmError, match=r"model\.backbone: 'vgg' is not one of"):
        load_config(write(tmp_path, "model:\n  backbone: vgg\n"))
    with pytest.raises(StmError, match="ModelConfig"):
        load_config(write(tmp_path, "model: 3\n"))


def test_missing_file_and_malformed_override():
    with pytest.raises(StmError, match="no such config file"):
        load_config("/nonexistent/run.yaml")
    with pytest.raises(StmError, match="key.sub=value"):
        load_config(None, ["model.backbone"])


def test_training_sections_name_keys_inside_lists_and_nested_values(tmp_path):
    videos = "data.video=[{root: a}, {root: b, kind: youtube, weight: 2}]"
    config = load_config(None, [videos, "train.loss.kind=bootstrap"])
    assert [v.kind for v in config.data.video] == ["davis", "youtube"] and config.train.loss.kind == "bootstrap"
    with pytest.raises(StmError, match=r"unknown key 'data\.video\[1\]\.rot' \(did you mean 'data\.video\[1\]\.root'"):
        load_config(write(tmp_path, "data:\n  video:\n    - root: a\n    - rot: b\n"))
    with pytest.raises(StmError, match=r"data\.video\[0\]\.kind: 'yt' is not one of davis, youtube"):
        load_config(None, ["data.video=[{root: a, kind: yt}]"])
    with pytest.raises(StmError, match=r"data\.static_augment\.crop_scale: \[1\.0, 0\.5\]"):
        load_config(None, ["data.static_augment.crop_scale=[1,0.5]"])
    with pytest.raises(StmError, match=r"train\.lr: Value 'fast'"):
        load_config(None, ["train.lr=fast"])
    with pytest.raises(StmError, match=r"train\.lr_factors\.decoder: 0\.0 must be > 0"):
        load_config(None, ["train.lr_factors={decoder: 0}"])
    with pytest.raises(StmError, match=r"data\.video\[0\]\.root: .*missing mandatory value"):
        load_config(None, ["data.video=[{kind: davis}]"])


def test_shipped_configs_load_with_the_paper_settings():
    configs = Path(__file__).resolve().parents[1] / "configs"
    for name in ("pretrain_static", "main_davis", "main_youtube"):
        config = load_config(configs / f"{name}.yaml")
        assert config.data.size == [384, 384] and config.data.frames == 3
        assert config.train.batch_size == 4 and config.train.lr == 1e-5 and config.model.backbone == "resnet50"
    for name in ("main_davis", "main_youtube"):
        config = load_config(configs / f"{name}.yaml")
        assert config.data.skip.end == 25 and config.model.init_weights == "checkpoints/pretrain_static/latest.pth"
    for name in ("interactive_pretrain", "interactive_main", "interactive_demo"):
        config = load_config(configs / f"{name}.yaml")  # clips longer than their rounds; 8 robot rounds at validation
        assert config.model.mode == "interactive" and config.train.step == "interactive"
        assert config.data.frames > config.interactive.train_rounds and config.interactive.rounds == 8
    assert load_config(configs / "interactive_main.yaml").model.init_weights == "checkpoints/main_davis/latest.pth"
    assert load_config(configs / "interactive_demo.yaml").model.init_weights == "checkpoints/demo/latest.pth"
    demo = load_config(configs / "demo.yaml")
    assert demo.data.synthetic is not None and demo.train.max_minutes > 0 and demo.val.root is not None
