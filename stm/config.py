"""YAML configs mapped onto dataclasses (OmegaConf structured configs), validated before a run starts.

Unknown keys, wrong types and bad values raise StmError naming the key and the file; command-line
overrides use the same dotted form as the YAML (`train.lr=1e-4`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from stm.errors import StmError

T = TypeVar("T")


def choose(key: str, value: Any, allowed: tuple) -> None:
    """Value checks run in the dataclasses' __post_init__, i.e. when a config is built."""
    if value not in allowed:
        raise StmError(f"{key}: {value!r} is not one of {', '.join(map(str, allowed))}")


@dataclass
class ModelConfig:
    mode: str = "semi"  # semi | interactive
    backbone: str = "resnet50"  # resnet50 (the paper's) | resnet34 | resnet18
    read_kernel: str = "sdpa"  # sdpa | bmm
    imagenet_weights: str | None = None  # torchvision's resnet*.pth; None: random init (with a warning)
    init_weights: str | None = None  # a checkpoint to start from (stage 2 from stage 1, or the official weights)

    def __post_init__(self) -> None:
        choose("model.mode", self.mode, ("semi", "interactive"))
        choose("model.backbone", self.backbone, ("resnet50", "resnet34", "resnet18"))
        choose("model.read_kernel", self.read_kernel, ("sdpa", "bmm"))


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)


def load_config(path: str | os.PathLike | None, overrides: list[str] | None = None, schema: type[T] = Config) -> T:
    """Reads YAML `path` (may be None) over the schema's defaults, then applies `key.sub=value` overrides."""
    if path is not None and not Path(path).is_file():
        raise StmError(f"{path}: no such config file")
    bad = [item for item in overrides or [] if "=" not in item]
    if bad:
        raise StmError(f"override {bad[0]!r} is not of the form key.sub=value")
    try:
        config = OmegaConf.structured(schema)
        if path is not None:
            config = OmegaConf.merge(config, OmegaConf.load(path))
        if overrides:
            config = OmegaConf.merge(config, OmegaConf.from_dotlist(overrides))
        return OmegaConf.to_object(config)
    except OmegaConfBaseException as exc:
        raise StmError(f"{path or 'config'}: {_describe(exc)}") from None
    except StmError as exc:
        raise StmError(f"{path or 'config'}: {exc}") from None


def _describe(exc: OmegaConfBaseException) -> str:
    """OmegaConf's message, first line only, with the full key it concerns."""
    message = str(exc).splitlines()[0]
    key = getattr(exc, "full_key", None)
    if "not in struct" in message or "Key '" in message and "not" in message:
        return f"unknown key '{key}'" if key else message
    return f"{key}: {message}" if key and key not in message else message


def to_dict(config: Any) -> dict:
    """Plain nested dict of a config dataclass (for checkpoints and logs)."""
    return OmegaConf.to_container(OmegaConf.structured(config), resolve=True)
