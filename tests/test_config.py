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
