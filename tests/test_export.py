"""Exports of the backbone: every format that takes a backbone and norm gives back its
features; torchvision's layout is matched name for name and shape for shape, or refused
with the reason; load_backbone reads checkpoints and exported files."""

import io
import json
import signal
from pathlib import Path

import pytest
import torch
from torch import nn

import playspeed
from playspeed.cli import main
from playspeed.errors import PlayspeedError
from playspeed.export import (
    FORMATS,
    BackboneSpec,
    FrozenTemporalGroupNorm,
    export_backbone,
    load_backbone,
    torchvision_state_dict,
)
from playspeed.models import TemporalGroupNorm, list_backbones
from playspeed.models.backbone import UNIT_DIFF_EPS
from playspeed.tasks.base import backbone_from_config

FIXTURE = Path(__file__).parent / "fixtures" / "torchvision_r3d_18.json"
NORMS = ("bn", "tgn", "gn")
# RGB input (the synthetic_cpu configs difference frames): torchvision's layout takes RGB.
TINY = ("model.width=0.25", "clip.len=8", "clip.size=16", "model.input_mode=rgb")


def _randomise_norms(module: nn.Module, seed: int = 0) -> None:
    """Non-trivial affine parameters and running statistics in every norm layer, so that an
    export that dropped or misplaced them would show in the features."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.BatchNorm3d, nn.GroupNorm, TemporalGroupNorm)):
                layer.weight.copy_(1 + 0.2 * torch.randn(layer.weight.shape, generator=generator))
                layer.bias.copy_(0.2 * torch.randn(layer.bias.shape, generator=generator))
            if getattr(layer, "running_mean", None) is not None:
                layer.running_mean.copy_(0.5 * torch.randn(layer.running_mean.shape,
                                                           generator=generator))
                layer.running_var.uniform_(0.5, 2.0, generator=generator)


@pytest.fixture(scope="module")
def checkpoint(tiny_config, untrained_checkpoint, tmp_path_factory):
    """``checkpoint(backbone, norm, *overrides)``: a tiny pretrain checkpoint (cached)."""
    made = {}

    def make(name, norm, *overrides):
        key = (name, norm, *overrides)
        if key not in made:
            config = tiny_config("pretrain", f"model.backbone={name}", f"model.norm={norm}",
                                 *TINY, *overrides)
            path = tmp_path_factory.mktemp("export") / f"{name}_{norm}.ckpt"
            made[key] = untrained_checkpoint(
                config, path, change=lambda module: _randomise_norms(module.backbone))
        return made[key]

    return make


def _clips(batch=2, frames=8, size=16, seed=1):
    return torch.randn(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


def _assert_same_features(got, expected):
    scale = expected.abs().max().item()
    assert (got - expected).abs().max().item() <= 1e-4 * max(1.0, scale)


# Every backbone x norm; the small r3d_10 in the fast loop (pytest -m "not slow"), the
# others marked slow.
COMBINATIONS = [pytest.param(name, norm, id=f"{name}-{norm}",
                             marks=() if name == "r3d_10" else pytest.mark.slow)
                for name in list_backbones() for norm in NORMS]
FRAME_DIFF = "model.input_mode=frame_diff"
FRAME_DIFF_UNIT = "model.input_mode=frame_diff_unit"


# --- safetensors and load_backbone ---------------------------------------------------------


@pytest.mark.parametrize(("name", "norm"), COMBINATIONS)
def test_safetensors_round_trip(name, norm, checkpoint, tmp_path):
    ckpt = checkpoint(name, norm)
    out = tmp_path / "backbone.safetensors"
    spec = export_backbone(ckpt, fmt="safetensors", out=out)
    original, loaded = load_backbone(ckpt), load_backbone(out)
    assert not loaded.training and type(loaded) is type(original)
    assert spec.build["name"] == name and spec.build["norm"] == norm
    assert spec.build["width"] == 0.25 and spec.build["clip_len"] == 8
    for key, value in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    clips = _clips()
    with torch.no_grad():
        assert torch.equal(loaded(clips), original(clips))


@pytest.mark.parametrize("input_mode", ["frame_diff", "frame_diff_unit"])
def test_safetensors_keeps_the_input_mode(input_mode, checkpoint, tmp_path):
    ckpt = checkpoint("r3d_10", "tgn", f"model.input_mode={input_mode}")
    out = tmp_path / "backbone.safetensors"
    assert export_backbone(ckpt, fmt="safetensors", out=out).build["input_mode"] == input_mode
    loaded, clips = load_backbone(out), _clips()
    assert loaded.input_mode == input_mode
    with torch.no_grad():
        assert torch.equal(loaded(clips), load_backbone(ckpt)(clips))


def test_safetensors_header_records_the_unit_energy_epsilon(checkpoint, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    out = tmp_path / "backbone.safetensors"
    export_backbone(checkpoint("r3d_10", "tgn", FRAME_DIFF_UNIT), fmt="safetensors", out=out)
    with safe_open(str(out), framework="pt") as stored:
        metadata = stored.metadata()
    header = json.loads(metadata["playspeed"])
    assert header["input"]["unit_diff_eps"] == UNIT_DIFF_EPS
    # A file made with another epsilon would compute other features: refused, not guessed.
    header["input"]["unit_diff_eps"] = 0.05
    other = tmp_path / "other.safetensors"
    save_file(load_backbone(out).state_dict(), str(other),
              metadata={"playspeed": json.dumps(header)})
    with pytest.raises(PlayspeedError, match=f"{other}: written for frame_diff_unit input "
                                             "with unit_diff_eps 0.05"):
        load_backbone(other)


def test_safetensors_header_is_plain_json(checkpoint, tmp_path):
    from safetensors import safe_open

    out = tmp_path / "backbone.safetensors"
    export_backbone(checkpoint("r3d_18", "tgn"), fmt="safetensors", out=out)
    with safe_open(str(out), framework="pt") as stored:
        header = json.loads(stored.metadata()["playspeed"])
    assert header["backbone"] == {"name": "r3d_18", "norm": "tgn", "clip_len": 8,
                                  "frames_per_group": 4, "groups_per_stage": None,
                                  "width": 0.25, "input_mode": "rgb"}
    assert header["input"]["clip_len"] == 8 and header["input"]["size"] == 16
    assert header["input"]["unit_diff_eps"] is None  # RGB input: no epsilon
    assert header["feature_dim"] == 128


def test_load_backbone_is_exported_at_the_top(checkpoint):
    backbone = playspeed.load_backbone(checkpoint("r3d_10", "bn"))
    assert not backbone.training
    assert backbone(_clips()).shape == (2, backbone.feature_dim)


def test_load_backbone_of_a_finetuned_checkpoint(tiny_config, untrained_checkpoint, tmp_path):
    # A fine-tuned TGN backbone keeps the group counts of its pretraining clip length.
    config = tiny_config("finetune", "model.norm=tgn", "clip.len=4", *TINY[:1])
    ckpt = untrained_checkpoint(config, tmp_path / "ft.ckpt", task="finetune",
                                classes=["a", "b"], pretrain_clip_len=8)
    out = tmp_path / "ft.safetensors"
    spec = export_backbone(ckpt, fmt="safetensors", out=out)
    assert spec.build["clip_len"] == 8 and spec.input["clip_len"] == 4
    assert load_backbone(out).norm_table() == load_backbone(ckpt).norm_table()


def test_unusable_safetensors_files_are_named(checkpoint, tmp_path):
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2)}, str(foreign))
    with pytest.raises(PlayspeedError, match=f"{foreign}: no 'playspeed' entry"):
        load_backbone(foreign)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(PlayspeedError, match=f"{garbage}: not a readable safetensors file"):
        load_backbone(garbage)
    # Weights that do not fit the backbone the header describes.
    mixed = tmp_path / "mixed.safetensors"
    export_backbone(checkpoint("r3d_10", "bn"), fmt="safetensors", out=mixed)
    from safetensors import safe_open

    with safe_open(str(mixed), framework="pt") as stored:
        metadata = stored.metadata()
    header = json.loads(metadata["playspeed"])
    header["backbone"]["width"] = 0.5
    save_file(load_backbone(mixed).state_dict(), str(mixed),
              metadata={"playspeed": json.dumps(header)})
    with pytest.raises(PlayspeedError, match=f"{mixed}: weights do not fit"):
        load_backbone(mixed)


# --- torchscript and onnx ------------------------------------------------------------------


def _torchscript_round_trip(ckpt, tmp_path, *, optimized):
    out = tmp_path / "backbone.pt"
    export_backbone(ckpt, fmt="torchscript", out=out)
    exported, original = torch.jit.load(str(out)), load_backbone(ckpt)
    # The export shape, and another batch and clip length (TGN groups split unevenly).
    for clips in (_clips(batch=2), _clips(batch=1, frames=9)):
        with torch.no_grad(), torch.jit.optimized_execution(optimized):
            _assert_same_features(exported(clips), original(clips))


@pytest.mark.parametrize(("name", "norm"), COMBINATIONS)
def test_torchscript_round_trip(name, norm, checkpoint, tmp_path):
    # The graph as saved; the executor's optimisations (a second per call here) are
    # exercised once below.
    _torchscript_round_trip(checkpoint(name, norm), tmp_path, optimized=False)


def test_torchscript_round_trip_optimised(checkpoint, tmp_path):
    # With unit-energy frame differences, so the graph holds the whole input step too.
    _torchscript_round_trip(checkpoint("r3d_10", "tgn", FRAME_DIFF_UNIT), tmp_path,
                            optimized=True)


@pytest.mark.parametrize(("name", "norm", "overrides"),
                         [pytest.param(*case.values, (), id=case.id, marks=case.marks)
                          for case in COMBINATIONS]
                         + [("r3d_10", "tgn", (FRAME_DIFF,)),
                            ("r3d_10", "tgn", (FRAME_DIFF_UNIT,))])
def test_onnx_round_trip(name, norm, overrides, checkpoint, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    ckpt = checkpoint(name, norm, *overrides)
    out = tmp_path / "backbone.onnx"
    export_backbone(ckpt, fmt="onnx", out=out)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    original = load_backbone(ckpt)
    for clips in (_clips(batch=2), _clips(batch=1, frames=9)):
        (features,) = session.run(["features"], {"clips": clips.numpy()})
        with torch.no_grad():
            _assert_same_features(torch.from_numpy(features), original(clips))


def test_onnx_without_the_onnx_package_is_one_line(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)  # as if not installed
    out = tmp_path / "backbone.onnx"
    assert main(["export", "--ckpt", str(checkpoint("r3d_10", "bn")), "--format", "onnx",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['error: --format onnx needs the onnx package: pip install '
                   '"playspeed[onnx]" (onnx and onnxruntime)']
    assert not out.exists()


@pytest.mark.parametrize("frames", [4, 5, 6, 7, 8])
def test_frozen_tgn_equals_tgn_in_eval_mode(frames):
    layer = TemporalGroupNorm(6, 4)
    _randomise_norms(layer)
    layer.eval()
    x = torch.randn(2, 6, frames, 3, 3)
    with torch.no_grad():
        torch.testing.assert_close(FrozenTemporalGroupNorm(layer)(x), layer(x))


# --- torchvision ---------------------------------------------------------------------------


class _TorchvisionBlock(nn.Module):
    """torchvision.models.video.resnet.BasicBlock with Conv3DSimple, as torchvision writes it."""

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv3d(inplanes, planes, 3, stride, 1, bias=False),
                                   nn.BatchNorm3d(planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(nn.Conv3d(planes, planes, 3, 1, 1, bias=False),
                                   nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + residual)


class TorchvisionR3D18(nn.Module):
    """A minimal copy of torchvision's VideoResNet as ``r3d_18()`` builds it (BasicStem,
    [Conv3DSimple] * 4, layers [2, 2, 2, 2], fc to 400 classes), from
    torchvision/models/video/resnet.py: torchvision is not installed here."""

    def __init__(self, num_classes=400):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(3, 64, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(64), nn.ReLU(inplace=True))
        inplanes = 64
        for index, (planes, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), 1):
            downsample = None
            if stride != 1 or inplanes != planes:
                downsample = nn.Sequential(
                    nn.Conv3d(inplanes, planes, 1, stride=(stride,) * 3, bias=False),
                    nn.BatchNorm3d(planes))
            blocks = [_TorchvisionBlock(inplanes, planes, stride, downsample),
                      _TorchvisionBlock(planes, planes)]
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.stem(x)
        for index in range(1, 5):
            x = getattr(self, f"layer{index}")(x)
        return self.fc(self.avgpool(x).flatten(1))


def _fixture_layout():
    return {key: tuple(shape) for key, shape in json.loads(FIXTURE.read_text())["state_dict"]
            .items()}


def test_fixture_is_torchvisions_r3d_18():
    layout = _fixture_layout()
    # torchvision publishes 33,371,472 parameters for r3d_18 (R3D_18_Weights meta).
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    params = sum(torch.Size(shape).numel() for key, shape in layout.items()
                 if not key.endswith(buffers))
    assert params == 33_371_472
    assert layout == {key: tuple(v.shape) for key, v in TorchvisionR3D18().state_dict().items()}


@pytest.fixture(scope="module")
def r3d_18_bn():
    """Our R3D-18 with BN at width 1.0 (random weights and statistics), eval mode, and the
    spec of a config that builds it."""
    from playspeed.config import load_config

    config = load_config("pretrain/synthetic_cpu", ["model.backbone=r3d_18", "model.norm=bn",
                                                    "model.width=1.0", "clip.len=8",
                                                    "clip.size=32", "model.input_mode=rgb"])
    torch.manual_seed(0)
    backbone = backbone_from_config(config)
    _randomise_norms(backbone)
    return backbone.eval(), BackboneSpec.of(backbone, config)


def test_torchvision_names_shapes_and_features(r3d_18_bn):
    backbone, spec = r3d_18_bn
    weights = torchvision_state_dict(backbone, spec)
    expected = {k: v for k, v in _fixture_layout().items() if not k.startswith("fc.")}
    assert {key: tuple(value.shape) for key, value in weights.items()} == expected
    # Saved and read back as a user would, then loaded strictly into torchvision's structure.
    buffer = io.BytesIO()
    torch.save(weights, buffer)
    buffer.seek(0)
    model = TorchvisionR3D18()
    model.fc = nn.Identity()
    model.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    clips = torch.randn(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(clips), backbone(clips), rtol=1e-4, atol=1e-5)


def test_torchvision_refuses_a_changed_layout(r3d_18_bn):
    backbone, spec = r3d_18_bn
    stem = backbone.stem[0]
    stem.padding = (0, 3, 3)
    try:
        with pytest.raises(PlayspeedError, match=r"layer stem.0 is not torchvision's"):
            torchvision_state_dict(backbone, spec)
    finally:
        stem.padding = (1, 3, 3)


@pytest.mark.parametrize(("name", "norm", "overrides", "reason"), [
    ("r3d_18", "tgn", (), "temporal group norm"),
    ("r3d_18", "gn", (), "GroupNorm"),
    ("r3d_18", "bn", (), "torchvision's r3d_18 has width 1.0"),
    ("r3d_18", "bn", (FRAME_DIFF,), "differences consecutive frames"),
    ("r3d_18", "bn", (FRAME_DIFF_UNIT,), "differences consecutive frames"),
    ("r2plus1d_18", "bn", (), "fixes its stem at 45 channels"),
    ("c3d", "bn", (), "torchvision has no c3d"),
    ("r3d_10", "bn", (), "torchvision has no r3d_10"),
])
def test_torchvision_refusals_say_why_and_what_instead(name, norm, overrides, reason,
                                                       checkpoint, tmp_path, capsys):
    out = tmp_path / "tv.pth"
    assert main(["export", "--ckpt", str(checkpoint(name, norm, *overrides)), "--format",
                 "torchvision", "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: --format torchvision: ") and reason in line
    assert "use --format safetensors (playspeed.load_backbone), torchscript or onnx" in line
    assert not out.exists()


# --- the command ---------------------------------------------------------------------------


def test_export_command(checkpoint, tmp_path, capsys):
    ckpt, out = checkpoint("r2plus1d_10", "tgn"), tmp_path / "b.safetensors"
    assert main(["export", "--ckpt", str(ckpt), "--format", "safetensors",
                 "--out", str(out)]) == 0
    assert f"wrote {out} (safetensors): r2plus1d_10 with tgn" in capsys.readouterr().out
    clips = _clips()
    with torch.no_grad():
        assert torch.equal(load_backbone(out)(clips), load_backbone(ckpt)(clips))


@pytest.mark.parametrize("fmt", [  # torchvision's full-size R3D-18 takes seconds to build
    pytest.param(fmt, marks=pytest.mark.slow) if fmt == "torchvision" else fmt
    for fmt in FORMATS])
def test_every_format_is_written_whole(fmt, checkpoint, tmp_path, renamed_into_place):
    # torchvision's layout is R3D-18 with BN at full width on RGB only
    model = (("r3d_18", "bn", "model.width=1.0", "model.input_mode=rgb")
             if fmt == "torchvision" else ("r3d_10", "bn"))
    out = tmp_path / f"backbone.{fmt}"
    export_backbone(checkpoint(*model), fmt=fmt, out=out)
    assert renamed_into_place == [out]
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary file left


@pytest.mark.slow
def test_a_kill_during_export_leaves_no_file_under_its_name(checkpoint, tmp_path,
                                                            killed_while_writing):
    out = tmp_path / "b.safetensors"
    status = killed_while_writing(["export", "--ckpt", checkpoint("r3d_10", "bn"),
                                   "--format", "safetensors", "--out", out])
    assert status == -signal.SIGKILL
    assert not out.exists()


def test_command_offers_every_format(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "{" + ",".join(FORMATS) + "}" in capsys.readouterr().out
