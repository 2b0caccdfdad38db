import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from stm.errors import StmError
from stm.inference.semi import SemiSupervisedSession
from stm.model import STM
from stm.model.checkpoint import (
    _OFFICIAL_PARTS,
    _OFFICIAL_PREFIXES,
    convert_official_state_dict,
    load_imagenet_weights,
    load_initial_weights,
    load_model,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)
from stm.model.frozen import fold_batchnorm

FIXTURE = Path(__file__).parent / "fixtures" / "official_outputs.npz"
OFFICIAL_KEY_COUNT = 558  # len(state_dict()) of the official model.STM wrapped in DataParallel


def _conv(out_channels, in_channels, size=3, bias=True):
    weight = torch.randn(out_channels, in_channels, size, size) * 0.01
    return {"weight": weight, "bias": torch.randn(out_channels) * 0.01} if bias else {"weight": weight}


def official_layout_state_dict() -> dict[str, torch.Tensor]:
    """A state dict with the official model.py's names (DataParallel: "module." prefix), built from
    torchvision's ResNet-50 names and the official decoder / key-value module names."""
    state = {}

    def put(prefix, tensors):
        state.update({f"module.{prefix}.{name}": value for name, value in tensors.items()})

    resnet = torchvision.models.resnet50(weights=None).state_dict()
    stages = {"conv1": "conv1", "bn1": "bn1", "layer1": "res2", "layer2": "res3", "layer3": "res4"}
    for encoder in ("Encoder_M", "Encoder_Q"):
        for key, value in resnet.items():
            head, _, rest = key.partition(".")
            if head in stages:
                state[f"module.{encoder}.{stages[head]}.{rest}"] = (
                    value.clone().uniform_(0.5, 1.5) if value.is_floating_point() else value.clone()
                )
        state[f"module.{encoder}.mean"] = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        state[f"module.{encoder}.std"] = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    put("Encoder_M.conv1_m", _conv(64, 1, 7, bias=False))
    put("Encoder_M.conv1_o", _conv(64, 1, 7, bias=False))
    for kv in ("KV_M_r4", "KV_Q_r4"):
        put(f"{kv}.Key", _conv(128, 1024))
        put(f"{kv}.Value", _conv(512, 1024))
    put("Decoder.convFM", _conv(256, 1024))
    for block in ("Decoder.ResMM", "Decoder.RF3.ResFS", "Decoder.RF3.ResMM", "Decoder.RF2.ResFS", "Decoder.RF2.ResMM"):
        put(f"{block}.conv1", _conv(256, 256))
        put(f"{block}.conv2", _conv(256, 256))
    put("Decoder.RF3.convFS", _conv(256, 512))
    put("Decoder.RF2.convFS", _conv(256, 256))
    put("Decoder.pred2", _conv(2, 256))
    return state


def seeded_official_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    """Full-size official-layout weights from a seed alone (the recipe of tests/model/fixtures/README.md):
    for each key of official_layout_state_dict() in sorted order, one draw from a torch.Generator seeded
    with `seed`: convolutions N(0, 1 / fan_in), key heads x8 (a trained model's peaked attention),
    BatchNorm weight U(0.5, 1), running_var U(0.5, 1.5), running_mean and every bias N(0, 0.1^2);
    mean / std keep the ImageNet constants."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, like in sorted(official_layout_state_dict().items()):
        name = key.rsplit(".", 1)[-1]
        if name in ("mean", "std", "num_batches_tracked"):
            state[key] = like.clone()
            continue
        if like.dim() == 4:
            value = torch.randn(like.shape, generator=generator) / like[0].numel() ** 0.5
            value *= 8 if ".Key." in key else 1
        elif name == "running_var":
            value = 0.5 + torch.rand(like.shape, generator=generator)
        elif name == "weight":
            value = 0.5 + 0.5 * torch.rand(like.shape, generator=generator)
        else:
            value = 0.1 * torch.randn(like.shape, generator=generator)
        state[key] = value
    return state


def reference_inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """3 frames [3, 3, 57, 89] in [0, 1] (smooth random background from a seeded generator, two
    ellipses painted in flat colours moving 3 px right per frame) and frame 0's labels [57, 89] (0, 1, 2).
    57 x 89 is padded unevenly to 64 x 96 (3 + 4 rows, 3 + 4 columns), as the official code pads."""
    generator = torch.Generator().manual_seed(seed)
    background = torch.rand(3, 3, 8, 12, generator=generator)
    frames = torch.nn.functional.interpolate(background, size=(57, 89), mode="bilinear", align_corners=False)
    yy, xx = torch.meshgrid(torch.arange(57.0), torch.arange(89.0), indexing="ij")
    labels = torch.zeros(3, 57, 89, dtype=torch.long)
    for t in range(3):
        for number, (cy, cx, ry, rx, colour) in enumerate(
            [(22, 30, 12, 16, (0.9, 0.2, 0.1)), (42, 62, 10, 14, (0.1, 0.3, 0.9))], start=1
        ):
            inside = ((yy - cy) / ry) ** 2 + ((xx - cx - 3 * t) / rx) ** 2 <= 1
            frames[t, :, inside] = torch.tensor(colour)[:, None]
            labels[t][inside] = number
    return frames, labels[0]


@pytest.fixture(scope="module")
def official_file(tmp_path_factory):
    state = seeded_official_weights(0)
    assert len(state) == OFFICIAL_KEY_COUNT
    path = tmp_path_factory.mktemp("official") / "STM_weights.pth"
    torch.save(state, path)
    return path, state


def test_official_checkpoint_loads_with_every_key_mapped(official_file):
    path, official = official_file
    model = STM()
    load_weights(model, path)
    ours = model.state_dict()
    # Every tensor of ours came from the file: compare a few by meaning, not by the converter's table.
    assert torch.equal(ours["decoder.refine_8.skip_conv.weight"], official["module.Decoder.RF3.convFS.weight"])
    assert torch.equal(ours["decoder.refine_4.merge_res.conv2.bias"], official["module.Decoder.RF2.ResMM.conv2.bias"])
    assert torch.equal(ours["memory_kv.value.weight"], official["module.KV_M_r4.Value.weight"])
    assert torch.equal(
        ours["query_encoder.layer3.5.bn3.running_var"], official["module.Encoder_Q.res4.5.bn3.running_var"]
    )
    assert torch.equal(
        ours["memory_encoder.trunk.layer1.0.conv1.weight"], official["module.Encoder_M.res2.0.conv1.weight"]
    )
    stem = ours["memory_encoder.trunk.extra_stem.weight"]
    assert torch.equal(stem[:, :1], official["module.Encoder_M.conv1_m.weight"])  # the object's mask
    assert torch.equal(stem[:, 1:], official["module.Encoder_M.conv1_o.weight"])  # the other objects
    converted = convert_official_state_dict(official)
    assert set(converted) == {k for k in ours}  # nothing left over, nothing missing


@pytest.mark.parametrize("fast", [False, True], ids=["as-loaded", "folded-channels-last"])
def test_official_weights_give_the_official_codes_outputs(official_file, fast):
    """The official model.py, run once on these seeded weights and inputs, gave the fixture's
    probabilities (tests/model/fixtures/README.md); our loader and inference loop must give them too,
    also as eval_semi.py runs the model (BatchNorm folded, channels-last)."""
    path, _ = official_file
    model = STM()
    load_weights(model, path)
    model.eval()
    if fast:
        model = fold_batchnorm(model).to(memory_format=torch.channels_last)
    session = SemiSupervisedSession(model, mem_every=5, channels_last=fast)
    frames, labels = reference_inputs(0)
    probs = [session.step(frame, labels.numpy() if t == 0 else None).probs for t, frame in enumerate(frames)]
    ours = torch.stack(probs[1:])[:, 1:, 1::4, 2::4].numpy()  # as sampled in the fixture
    expected = np.load(FIXTURE)["probs"]
    assert ours.shape == expected.shape == (2, 2, 14, 22)
    assert np.abs(ours - expected).max() < 1e-4


def memory_features(model, masks, scribbles=None):
    torch.manual_seed(1)
    frame = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        return model.encode_memory(frame, masks, scribbles)


def official_layout_of(model: STM) -> dict[str, torch.Tensor]:
    """Our semi-supervised model's weights under the official names (DataParallel-wrapped), by the
    converter's own tables read backwards."""
    parts = {ours: official for official, ours in _OFFICIAL_PARTS.items()}
    state = {}
    for key, value in model.state_dict().items():
        if key == "memory_encoder.trunk.extra_stem.weight":
            state["Encoder_M.conv1_m.weight"], state["Encoder_M.conv1_o.weight"] = value[:, :1], value[:, 1:]
            continue
        official, ours = next((o, u) for o, u in _OFFICIAL_PREFIXES if key.startswith(u))
        state[official + ".".join(parts.get(p, p) for p in key[len(ours) :].split("."))] = value
    for encoder in ("Encoder_M", "Encoder_Q"):
        state[f"{encoder}.mean"] = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        state[f"{encoder}.std"] = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return {f"module.{key}": value for key, value in state.items()}


def test_interactive_model_starts_from_the_official_semi_weights(tmp_path, caplog):
    torch.manual_seed(0)
    semi = STM("semi").eval()
    official = official_layout_of(semi)
    assert set(official) == set(official_layout_state_dict())  # the names the official model.py writes
    path = tmp_path / "STM_weights.pth"
    torch.save(official, path)
    model = STM("interactive").eval()
    with caplog.at_level(logging.INFO, logger="stm"):
        load_initial_weights(model, path)
    lines = [r.getMessage() for r in caplog.records if "init_weights" in r.getMessage()]
    assert len(lines) == 1
    assert "semi-supervised" in lines[0] and "zero-initialised" in lines[0] and "scribble" in lines[0]
    ours = model.state_dict()
    for key, value in semi.state_dict().items():  # every layer copied but the extra input stem
        if key != "memory_encoder.trunk.extra_stem.weight":
            assert torch.equal(ours[key], value), key
    stem = ours["memory_encoder.trunk.extra_stem.weight"]
    assert stem.shape == (64, 3, 7, 7)
    assert torch.equal(stem[:, :1], official["module.Encoder_M.conv1_m.weight"])  # the mask input, copied
    assert not stem[:, 1:].any()  # the scribble inputs, new and zero
    # so the interactive model first encodes a memory frame as the semi one does a lone object, scribbles or not
    masks = torch.zeros(1, 1, 64, 64)
    masks[..., 10:40, 20:50] = 1
    scribbles = torch.rand(1, 1, 2, 64, 64).round()
    for got, want in zip(memory_features(model, masks, scribbles), memory_features(semi, masks), strict=True):
        torch.testing.assert_close(got, want)


def test_interactive_model_starts_from_our_semi_checkpoint(tmp_path, monkeypatch):
    torch.manual_seed(0)
    semi = STM("semi", "resnet18", decoder_channels=32)
    path = tmp_path / "checkpoints" / "demo" / "latest.pth"
    save_checkpoint(path, semi)
    model = STM("interactive", "resnet18", decoder_channels=32)
    load_initial_weights(model, path)
    assert torch.equal(model.decoder.predict.weight, semi.decoder.predict.weight)
    load_initial_weights(STM("semi", "resnet18", decoder_channels=32), path)  # same mode: plain load
    with pytest.raises(StmError, match="another backbone"):
        load_initial_weights(STM("interactive", "resnet18"), path)  # a 256-channel decoder
    with pytest.raises(StmError, match="interactive model, but the model is semi"):
        save_checkpoint(tmp_path / "i.pth", model)
        load_initial_weights(STM("semi", "resnet18", decoder_channels=32), tmp_path / "i.pth")
    # a missing start names the config that writes it
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "demo.yaml").write_text("{}")
    path.unlink()
    with pytest.raises(StmError, match=r"does not exist; train it first: python train.py --config configs/demo\.yaml"):
        load_initial_weights(model, "checkpoints/demo/latest.pth")


def test_official_checkpoint_without_dataparallel_prefix_loads(official_file, tmp_path):
    _, official = official_file
    path = tmp_path / "plain.pth"
    torch.save({k.removeprefix("module."): v for k, v in official.items()}, path)
    model, _ = load_model(path)
    assert model.mode == "semi" and model.backbone == "resnet50"


def test_unknown_or_missing_official_keys_are_named(official_file, tmp_path):
    _, official = official_file
    extra = dict(official, **{"module.Decoder.pred3.weight": torch.zeros(1)})
    with pytest.raises(StmError, match="Decoder.pred3.weight"):
        convert_official_state_dict(extra)
    missing = {k: v for k, v in official.items() if k != "module.KV_Q_r4.Key.bias"}
    path = tmp_path / "missing.pth"
    torch.save(missing, path)
    with pytest.raises(StmError, match=r"missing\.pth: missing key query_kv\.key\.bias"):
        load_weights(STM(), path)


def test_our_checkpoint_round_trips_with_optimizer_step_and_config(tmp_path):
    torch.manual_seed(0)
    model = STM(backbone="resnet18")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.decoder.predict.weight.grad = torch.ones_like(model.decoder.predict.weight)
    optimizer.step()
    path = tmp_path / "run" / "latest.pth"
    save_checkpoint(path, model, step=42, config={"model": {"backbone": "resnet18"}}, optimizer=optimizer)
    assert sorted(os.listdir(path.parent)) == ["latest.pth"]  # no temporary file left behind

    restored, checkpoint = load_model(path)
    assert checkpoint["step"] == 42 and checkpoint["config"]["model"]["backbone"] == "resnet18"
    assert restored.backbone == "resnet18"
    for key, value in model.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key
    optimizer2 = torch.optim.Adam(restored.parameters(), lr=1e-3)
    optimizer2.load_state_dict(checkpoint["optimizer"])
    assert [state["step"].item() for state in optimizer2.state_dict()["state"].values()] == [1]


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = STM(backbone="resnet18")
    path = tmp_path / "latest.pth"
    save_checkpoint(path, model, step=1)

    def broken_save(obj, path):
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, step=2)
    monkeypatch.undo()
    assert read_checkpoint(path)["step"] == 1
    assert sorted(os.listdir(tmp_path)) == ["latest.pth"]


def test_files_that_are_not_checkpoints_get_one_clear_error(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not weights")
    with pytest.raises(StmError, match=r"notes\.txt: not a readable checkpoint"):
        load_weights(STM(backbone="resnet18"), text)
    with pytest.raises(StmError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "absent.pth")
    listing = tmp_path / "list.pth"
    torch.save([1, 2, 3], listing)
    with pytest.raises(StmError, match="not a checkpoint"):
        read_checkpoint(listing)


def test_weights_of_the_other_mode_or_backbone_are_refused(tmp_path):
    path = tmp_path / "interactive.pth"
    save_checkpoint(path, STM("interactive", backbone="resnet18"))
    with pytest.raises(StmError, match="interactive model, but the model is semi"):
        load_weights(STM("semi", backbone="resnet18"), path)
    with pytest.raises(StmError, match="interactive model, but a semi model is needed"):
        load_model(path, mode="semi")
    bare = tmp_path / "bare.pth"
    torch.save(STM(backbone="resnet18").state_dict(), bare)
    with pytest.raises(StmError, match=r"bare\.pth: missing key query_encoder\.layer1\.2\."):
        load_weights(STM(backbone="resnet34"), bare)
    with pytest.raises(StmError, match=r"bare\.pth: .* has shape .*another backbone"):
        load_weights(STM(backbone="resnet50"), bare)


def test_imagenet_weights_load_into_both_trunks_from_a_local_file(tmp_path):
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(resnet.state_dict(), path)  # torchvision's file layout, fc and layer4 included
    model = STM(backbone="resnet18")
    load_imagenet_weights(model, path)
    for trunk in (model.query_encoder, model.memory_encoder.trunk):
        assert torch.equal(trunk.layer3[1].conv2.weight, resnet.layer3[1].conv2.weight)
        assert torch.equal(trunk.bn1.running_mean, resnet.bn1.running_mean)
    with pytest.raises(StmError, match="not ImageNet weights for resnet50"):
        load_imagenet_weights(STM(), path)


def test_no_imagenet_weights_means_one_warning_and_random_init(caplog):
    model = STM(backbone="resnet18")
    load_imagenet_weights(model, None)
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "random init" in warnings[0].getMessage()


def test_a_narrow_decoder_round_trips_through_load_model(tmp_path):
    model = STM(backbone="resnet18", decoder_channels=64)
    assert model.decoder.compress.out_channels == 64
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in STM(backbone="resnet18").parameters())
    path = tmp_path / "latest.pth"
    save_checkpoint(path, model)
    restored, _ = load_model(path)
    assert restored.decoder_channels == 64
    for key, value in model.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key


def test_load_model_builds_without_initialising_and_leaves_nothing_on_meta(tmp_path):
    # load_model builds on the meta device and takes the file's tensors: every tensor must end up
    # real, the constants (ImageNet mean / std) recreated, and the outputs those of the saved model.
    torch.manual_seed(5)
    model = STM(backbone="resnet18").eval()
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "weights.pth"
    torch.save(state, path)  # a bare state dict without num_batches_tracked, as some files are
    restored, _ = load_model(path)
    tensors = [*restored.parameters(), *restored.buffers()]
    assert not any(t.is_meta for t in tensors)
    assert all(p.requires_grad for p in restored.parameters())
    assert torch.equal(restored.query_encoder.std, model.query_encoder.std)
    frame, masks = torch.rand(1, 3, 32, 48), torch.rand(1, 2, 32, 48)
    with torch.no_grad():
        expected = model.segment(model.encode_query(frame), *model.encode_memory(frame, masks)).probs
        got = restored.segment(restored.encode_query(frame), *restored.encode_memory(frame, masks)).probs
    assert torch.equal(got, expected)
