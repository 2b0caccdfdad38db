"""Weights on disk: our checkpoints, the official STM_weights.pth, and ImageNet ResNet weights.

Our checkpoint is one file: {"format_version", "model", "optimizer", "step", "config", "size", ...},
written atomically (stm.data.io.atomic_write: temporary file in the same folder, fsync, rename), so a
crash at any moment leaves either the old file or the new one, never a broken one.

The official release is a DataParallel state dict (keys prefixed "module.") with the module names
of the authors' model.py; `convert_official_state_dict` maps every key onto ours and refuses keys
it does not know. Nothing here downloads anything.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from stm.config import InteractiveConfig
from stm.data.io import atomic_write
from stm.errors import StmError
from stm.model.backbone import IMAGENET_MEAN, IMAGENET_STD, ResNetTrunk
from stm.model.stm import STM

log = logging.getLogger("stm")

FORMAT_VERSION = 1

# Official name prefix -> ours, tried in order (the first match wins).
_OFFICIAL_PREFIXES: list[tuple[str, str]] = [
    ("Encoder_M.", "memory_encoder.trunk."),
    ("Encoder_Q.", "query_encoder."),
    ("KV_M_r4.Key.", "memory_kv.key."),
    ("KV_M_r4.Value.", "memory_kv.value."),
    ("KV_Q_r4.Key.", "query_kv.key."),
    ("KV_Q_r4.Value.", "query_kv.value."),
    ("Decoder.convFM.", "decoder.compress."),
    ("Decoder.ResMM.", "decoder.res."),
    ("Decoder.RF3.", "decoder.refine_8."),
    ("Decoder.RF2.", "decoder.refine_4."),
    ("Decoder.pred2.", "decoder.predict."),
]
# Renames inside a prefix: official trunk stages and Refine parts.
_OFFICIAL_PARTS = {
    "res2": "layer1",
    "res3": "layer2",
    "res4": "layer3",
    "convFS": "skip_conv",
    "ResFS": "skip_res",
    "ResMM": "merge_res",
}
# The official memory encoder's separate stems for the mask and for the other objects; ours is one
# convolution over both maps (the same sum), so their weights are concatenated in this order.
_OFFICIAL_STEMS = ("conv1_m.weight", "conv1_o.weight")
# Buffers the official encoders store: the ImageNet normalisation, a constant here.
_OFFICIAL_CONSTANTS = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}


def is_official_state_dict(state: dict[str, Any]) -> bool:
    return any(re.match(r"^(module\.)?Encoder_M\.", key) for key in state)


def convert_official_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official STM (semi-supervised) state dict -> ours. Unknown keys raise StmError naming them."""
    state = {key.removeprefix("module."): value for key, value in state.items()}
    converted: dict[str, Tensor] = {}
    stems: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        encoder, _, rest = key.partition(".")
        if encoder in ("Encoder_M", "Encoder_Q") and rest in _OFFICIAL_CONSTANTS:
            expected = torch.tensor(_OFFICIAL_CONSTANTS[rest], dtype=torch.float32).view(1, 3, 1, 1)
            if not torch.allclose(value.float().cpu(), expected, atol=1e-6):
                raise StmError(f"official checkpoint key {key} holds unexpected normalisation {value.flatten()}")
            continue
        if encoder == "Encoder_M" and rest in _OFFICIAL_STEMS:
            stems[rest] = value
            continue
        for official, ours in _OFFICIAL_PREFIXES:
            if key.startswith(official):
                parts = key[len(official) :].split(".")
                converted[ours + ".".join(_OFFICIAL_PARTS.get(part, part) for part in parts)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise StmError(f"official checkpoint has keys this model does not know: {', '.join(unknown[:5])}")
    missing = [name for name in _OFFICIAL_STEMS if name not in stems]
    if missing:
        raise StmError(f"official checkpoint lacks Encoder_M.{missing[0]}")
    converted["memory_encoder.trunk.extra_stem.weight"] = torch.cat([stems[n] for n in _OFFICIAL_STEMS], 1)
    return converted


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    step: int = 0,
    config: dict | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    **extra: Any,
) -> None:
    """Writes our checkpoint atomically. `config` must be plain containers (it is stored as is)."""
    checkpoint = {
        "format_version": FORMAT_VERSION,
        "model": model.state_dict(),
        "mode": getattr(model, "mode", None),
        "backbone": getattr(model, "backbone", None),
        "step": step,
        "config": config,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        **extra,
    }
    atomic_write(path, lambda temporary: torch.save(checkpoint, temporary))


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Loads a file that should hold weights; StmError with the path when it cannot be one."""
    path = Path(path)
    if not path.is_file():
        raise StmError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StmError(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(obj, dict):
        raise StmError(f"{path}: not a checkpoint (holds a {type(obj).__name__}, not a dict)")
    return obj


def model_state(checkpoint: dict[str, Any], path: str | os.PathLike) -> tuple[dict[str, Tensor], str | None]:
    """The model state dict held in any accepted layout, and the mode it was trained for if known."""
    if "format_version" in checkpoint:
        version = checkpoint["format_version"]
        if version != FORMAT_VERSION:
            raise StmError(f"{path}: checkpoint format {version} is not supported (expected {FORMAT_VERSION})")
        return checkpoint["model"], checkpoint.get("mode")
    if is_official_state_dict(checkpoint):
        return convert_official_state_dict(checkpoint), "semi"
    if checkpoint and all(isinstance(v, Tensor) for v in checkpoint.values()):
        return {key.removeprefix("module."): value for key, value in checkpoint.items()}, None
    raise StmError(f"{path}: not an STM checkpoint (keys: {', '.join(list(checkpoint)[:5])})")


def _mode_of_state(state: dict[str, Tensor]) -> str | None:
    stem = state.get("memory_encoder.trunk.extra_stem.weight")
    if stem is None:
        return None
    return {2: "semi", 3: "interactive"}.get(stem.shape[1])


def load_weights(model: nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """Loads our checkpoint, the official STM_weights.pth or a bare state dict into `model`.
    Returns the whole checkpoint (for optimizer state, step, config). Mismatches raise StmError."""
    checkpoint = read_checkpoint(path)
    _load_state(model, *model_state(checkpoint, path), path)
    return checkpoint


SCRIBBLE_STEM = "memory_encoder.trunk.extra_stem.weight"


def semi_to_interactive(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Semi-supervised weights (our layout) as an interactive model's: every layer as it is, except the
    memory encoder's extra input stem. Its mask channel is kept; the other-objects channel is dropped;
    the positive and negative scribble channels are new and start at zero, so the model first behaves
    as the semi-supervised one given the object's mask alone."""
    stem = state[SCRIBBLE_STEM]
    scribbles = torch.zeros(stem.shape[0], 2, *stem.shape[2:], dtype=stem.dtype)
    return {**state, SCRIBBLE_STEM: torch.cat([stem[:, :1], scribbles], dim=1)}


def load_initial_weights(model: nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """model.init_weights: like load_weights, and an interactive model also starts from semi-supervised
    weights (ours or the official STM_weights.pth), saying in one line what was copied and what is new.
    A missing file names the config that writes it when one exists (configs/<run>.yaml)."""
    path = Path(path)
    if not path.is_file():
        writer = Path("configs") / f"{path.parent.name}.yaml"
        known = path.name == "latest.pth" and writer.is_file()
        hint = f"; train it first: python train.py --config {writer}" if known else ""
        raise StmError(f"{path}: model.init_weights does not exist{hint}")
    checkpoint = read_checkpoint(path)
    state, mode = model_state(checkpoint, path)
    mode = mode or _mode_of_state(state)
    if mode == "semi" and model.mode == "interactive" and SCRIBBLE_STEM in state:
        _load_state(model, semi_to_interactive(state), "interactive", path)
        log.info(
            "init_weights %s: semi-supervised weights in the interactive model: copied %d tensors (both encoders, "
            "key/value heads, decoder; the memory encoder's mask input channel); new, zero-initialised: its "
            "positive and negative scribble input channels (%s[:, 1:3]); dropped: its other-objects channel",
            path, len(state), SCRIBBLE_STEM,
        )
    else:
        _load_state(model, state, mode, path)
        log.info("init_weights %s: all %d tensors copied", path, len(state))
    return checkpoint


def _load_state(
    model: nn.Module, state: dict[str, Tensor], mode: str | None, path: str | os.PathLike, assign: bool = False
) -> None:
    mode = mode or _mode_of_state(state)
    if mode is not None and mode != model.mode:
        raise StmError(f"{path}: weights are for the {mode} model, but the model is {model.mode}")
    expected = model.state_dict()
    for key, value in state.items():
        if key in expected and value.shape != expected[key].shape:
            raise StmError(
                f"{path}: {key} has shape {tuple(value.shape)}, the model expects {tuple(expected[key].shape)} "
                f"(another backbone?)"
            )
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        problem = f"missing key {missing[0]}" if missing else f"unexpected key {unexpected[0]}"
        raise StmError(f"{path}: {problem} ({len(missing)} missing, {len(unexpected)} unexpected)")
    model.load_state_dict(state, strict=False, assign=assign)


def load_imagenet_weights(model: nn.Module, path: str | os.PathLike | None) -> None:
    """Initialises both ResNet trunks from torchvision's ImageNet file (e.g. resnet50-0676ba61.pth).
    Without a path, keeps the random init and says so in one line."""
    if not path:
        log.warning("no ImageNet weights given (model.imagenet_weights): the encoders start from random init")
        return
    state = read_checkpoint(path)
    trunk_state = {k: v for k, v in state.items() if k.split(".")[0] in ("conv1", "bn1", "layer1", "layer2", "layer3")}
    for trunk in (model.query_encoder, model.memory_encoder.trunk):
        own = {k for k in trunk.state_dict() if not k.startswith("extra_stem.")}
        missing = sorted(own - trunk_state.keys())
        if missing:
            raise StmError(f"{path}: not ImageNet weights for {model.backbone} (missing {missing[0]})")
        for key, value in trunk_state.items():
            if value.shape != trunk.state_dict()[key].shape:
                raise StmError(f"{path}: {key} has shape {tuple(value.shape)}: weights of another ResNet?")
        trunk.load_state_dict(trunk_state, strict=False)
    log.info("loaded ImageNet weights from %s", path)


def _architecture_of_state(state: dict[str, Tensor]) -> tuple[str | None, str]:
    """(mode, backbone) of a bare state dict in our layout, read off its shapes."""
    width = state["query_kv.key.weight"].shape[1] if "query_kv.key.weight" in state else 1024
    if width == 1024:
        backbone = "resnet50"
    else:
        backbone = "resnet34" if "query_encoder.layer3.5.conv1.weight" in state else "resnet18"
    return _mode_of_state(state), backbone


def training_size(config: dict | None) -> int | None:
    """The short side a run's network saw, from its config (plain dict): model.size when set, else the
    training crop's short side (min of data.size); None without a config."""
    if not config:
        return None
    size = (config.get("model") or {}).get("size")
    if size:
        return int(size)
    crop = (config.get("data") or {}).get("size")
    return int(min(crop)) if crop else None


def recorded_size(checkpoint: dict[str, Any]) -> int | None:
    """The short side a checkpoint was trained at: its "size" entry, else derived from its saved config
    (checkpoints written before sizes were recorded), else None (the official weights, bare state
    dicts: run them at the video's own size)."""
    if checkpoint.get("size"):
        return int(checkpoint["size"])
    config = checkpoint.get("config")
    return training_size(config) if isinstance(config, dict) else None


def recorded_thickness(checkpoint: dict[str, Any]) -> int:
    """The scribble width (pixels at the working size) an interactive run trained with: its config's
    interactive.scribble_thickness, else the config default."""
    config = checkpoint.get("config") if isinstance(checkpoint.get("config"), dict) else {}
    protocol = config.get("interactive") or {}
    return int(protocol.get("scribble_thickness", InteractiveConfig.scribble_thickness))


def load_model(path: str | os.PathLike, mode: str | None = None, read_kernel: str = "sdpa") -> tuple[nn.Module, dict]:
    """Builds the STM that a weights file describes and loads it. `mode`, when given, must match.
    Returns (model in eval mode, the checkpoint dict)."""
    checkpoint = read_checkpoint(path)
    state, stored_mode = model_state(checkpoint, path)
    found_mode, backbone = _architecture_of_state(state)
    stored_mode = stored_mode or found_mode or mode or "semi"
    if mode is not None and stored_mode != mode:
        raise StmError(f"{path}: weights are for the {stored_mode} model, but a {mode} model is needed")
    decoder_channels = state["decoder.compress.weight"].shape[0] if "decoder.compress.weight" in state else 256
    # Built on the meta device and given the file's tensors as they are: no random initialisation
    # and no second copy of the weights (about a second and 150 MB at ResNet-50 on a 2-core CPU).
    with torch.device("meta"):
        model = STM(stored_mode, checkpoint.get("backbone") or backbone, read_kernel, decoder_channels)
    state = {key: value.float() if value.is_floating_point() else value for key, value in state.items()}
    _load_state(model, state, stored_mode, path, assign=True)
    for module in model.modules():
        if isinstance(module, ResNetTrunk):
            module.reset_constants()
        for name, buffer in module.named_buffers(recurse=False):
            if buffer.is_meta and name == "num_batches_tracked":  # absent from some files; a fresh model's 0
                module.register_buffer(name, torch.zeros((), dtype=buffer.dtype))
    return model.eval(), checkpoint
