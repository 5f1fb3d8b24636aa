"""The learned backbone outside playspeed: load it in one call, or export it for other tools.

``load_backbone(PATH)`` rebuilds the backbone of a checkpoint or of an exported
``.safetensors`` file, in eval mode: clips ``B x 3 x T x H x W`` -> features ``B x D``.

``export_backbone(CKPT, fmt=..., out=...)`` writes the backbone (never the heads) as:

- ``safetensors``: the weights, plus a JSON entry ``playspeed`` in the file's header with the
  ``build_backbone`` arguments (backbone, norm, clip_len, frames_per_group, groups_per_stage,
  width, input_mode), the input the backbone expects (clip length, crop size, mean, std, and
  for ``frame_diff_unit`` the epsilon added to a clip's RMS) and the feature size. No
  pickle: loading it runs no code.
- ``torchvision``: for ``r3d_18`` with BatchNorm at width 1.0, a state dict (tensors only)
  with the key names and shapes of ``torchvision.models.video.r3d_18``, whose architecture ours
  reproduces; without ``fc``, so it loads strictly once ``model.fc = nn.Identity()`` makes
  torchvision's model return the same pooled features. Other backbones and norms: an error.
- ``torchscript`` / ``onnx``: the eval-mode network traced on a clip of the config's shape
  (any backbone and norm); batch, frame count and frame size stay free. ONNX uses torch's
  TorchScript-based exporter (``dynamo=False``: the newer one needs ``onnxscript``) and needs
  the ``onnx`` package (``pip install "playspeed[onnx]"``).

Every export is checked before it is written: the exported model (read back) must give the
checkpoint's features (ONNX: when ``onnxruntime`` is installed).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn

from playspeed.config import Config
from playspeed.errors import PlayspeedError
from playspeed.io import atomic_write_bytes
from playspeed.models import Backbone, TemporalGroupNorm, build_backbone
from playspeed.models.backbone import UNIT_DIFF_EPS
from playspeed.tasks.checkpoints import load_weights
from playspeed.tasks.registry import load_task

__all__ = ["FORMATS", "export_backbone", "load_backbone", "torchvision_state_dict"]

FORMATS = ("safetensors", "torchvision", "torchscript", "onnx")
HEADER_KEY = "playspeed"  # the safetensors metadata entry that holds our JSON
HEADER_VERSION = 1
# Exported features may differ from the checkpoint's by float rounding only: another
# summation order in the runtime's kernels, relative to the features' scale.
CHECK_TOLERANCE = 1e-4


@dataclass(frozen=True)
class BackboneSpec:
    """What rebuilds a backbone (``build_backbone``'s arguments) and what it expects as input."""

    # name, norm, clip_len, frames_per_group, groups_per_stage, width, input_mode
    build: dict[str, Any]
    # clip_len, size, mean, std, resize (of the training clips); unit_diff_eps: what
    # frame_diff_unit adds to a clip's RMS (None for the other input modes)
    input: dict[str, Any]
    feature_dim: int

    @classmethod
    def of(cls, backbone: Backbone, config: Config) -> BackboneSpec:
        model, clip = config.model, config.clip
        groups = list(model.groups_per_stage) if model.groups_per_stage else None
        # backbone.clip_len: the clip length that fixed TGN's groups (a fine-tuned backbone
        # keeps its pretraining one); input.clip_len: what the checkpoint's task fed it.
        build = {"name": model.backbone, "norm": model.norm, "clip_len": backbone.clip_len,
                 "frames_per_group": model.frames_per_group, "groups_per_stage": groups,
                 "width": model.width, "input_mode": backbone.input_mode}
        inputs = {"clip_len": clip.len, "size": clip.size, "mean": list(clip.mean),
                  "std": list(clip.std), "resize": list(clip.resize),
                  "unit_diff_eps": UNIT_DIFF_EPS if backbone.input_mode == "frame_diff_unit"
                  else None}
        return cls(build=build, input=inputs, feature_dim=backbone.feature_dim)

    def header(self) -> str:
        return json.dumps({"version": HEADER_VERSION, "backbone": self.build,
                           "input": self.input, "feature_dim": self.feature_dim})

    def example_input(self, batch: int = 1) -> torch.Tensor:
        """A normalised random clip batch ``B x 3 x T x H x W`` of the input shape."""
        generator = torch.Generator().manual_seed(0)
        size = self.input["size"]
        return torch.randn(batch, 3, self.input["clip_len"], size, size, generator=generator)


# --- loading ---------------------------------------------------------------------------------


def load_backbone(path: str | Path) -> Backbone:
    """The backbone of a playspeed checkpoint (``.ckpt``) or of a ``.safetensors`` file written
    by ``playspeed export``, weights loaded, in eval mode: ``B x 3 x T x H x W`` -> ``B x D``.

    Neither kind of file can run code when loaded; a file that is not one of these is a
    :class:`PlayspeedError` naming it.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        backbone, _ = read_safetensors(path)
    else:
        backbone, _ = backbone_of_checkpoint(path)
    return backbone.eval()


def backbone_of_checkpoint(path: str | Path) -> tuple[Backbone, BackboneSpec]:
    """A checkpoint's backbone (eval mode) and its spec."""
    task = load_task(path)
    return task.backbone.eval(), BackboneSpec.of(task.backbone, task.config)


def read_safetensors(path: str | Path) -> tuple[Backbone, BackboneSpec]:
    """The backbone of a ``playspeed export --format safetensors`` file, and its spec."""
    path = Path(path)
    if not path.is_file():
        raise PlayspeedError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as stored:
            metadata = stored.metadata() or {}
            weights = {key: stored.get_tensor(key) for key in stored.keys()}
    except Exception as err:  # safetensors raises its own error types for a bad header
        raise PlayspeedError(f"{path}: not a readable safetensors file ({err})") from err
    if HEADER_KEY not in metadata:
        raise PlayspeedError(f"{path}: no '{HEADER_KEY}' entry in its header (not written by "
                             f"playspeed export), so the backbone it holds is unknown")
    try:
        header = json.loads(metadata[HEADER_KEY])
        spec = BackboneSpec(build=dict(header["backbone"]), input=dict(header["input"]),
                            feature_dim=int(header["feature_dim"]))
        build = dict(spec.build)
        backbone = build_backbone(build.pop("name"), **build)
    except (ValueError, TypeError, KeyError) as err:
        raise PlayspeedError(f"{path}: bad '{HEADER_KEY}' header ({err})") from err
    eps = spec.input.get("unit_diff_eps")
    if backbone.input_mode == "frame_diff_unit" and eps is not None and eps != UNIT_DIFF_EPS:
        raise PlayspeedError(f"{path}: written for frame_diff_unit input with unit_diff_eps "
                             f"{eps}; this playspeed computes it with {UNIT_DIFF_EPS}")
    load_weights(backbone, weights, path)
    return backbone.eval(), spec


# --- export --------------------------------------------------------------------------------


def export_backbone(ckpt: str | Path, *, fmt: str, out: str | Path) -> BackboneSpec:
    """Write the backbone of checkpoint ``ckpt`` to ``out`` in format ``fmt`` (see
    :data:`FORMATS`); returns its spec."""
    if fmt not in FORMATS:
        raise PlayspeedError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "onnx" and importlib.util.find_spec("onnx") is None:
        raise PlayspeedError('--format onnx needs the onnx package: pip install "playspeed[onnx]"'
                             " (onnx and onnxruntime)")
    backbone, spec = backbone_of_checkpoint(ckpt)
    data = {"safetensors": _safetensors_bytes, "torchvision": _torchvision_bytes,
            "torchscript": _torchscript_bytes, "onnx": _onnx_bytes}[fmt](backbone, spec)
    atomic_write_bytes(out, data)
    return spec


def _safetensors_bytes(backbone: Backbone, spec: BackboneSpec) -> bytes:
    weights = {key: value.contiguous() for key, value in backbone.state_dict().items()}
    return safetensors_bytes(weights, metadata={HEADER_KEY: spec.header()})


def _torchvision_bytes(backbone: Backbone, spec: BackboneSpec) -> bytes:
    buffer = io.BytesIO()
    torch.save(torchvision_state_dict(backbone, spec), buffer)
    return buffer.getvalue()


def _torchscript_bytes(backbone: Backbone, spec: BackboneSpec) -> bytes:
    example = spec.example_input()
    with torch.no_grad(), _quiet_tracing():
        # check_trace=False: _check_same_features below compares more than trace's check.
        traced = torch.jit.trace(traceable(backbone), example, check_trace=False)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    data = buffer.getvalue()
    loaded = torch.jit.load(io.BytesIO(data))
    # Unoptimised: the graph's semantics without the executor's per-shape re-optimisation,
    # which costs about a second a call on CPU.
    with torch.jit.optimized_execution(False):
        _check_same_features(backbone, loaded, spec, "torchscript")
    return data


def _onnx_bytes(backbone: Backbone, spec: BackboneSpec) -> bytes:
    buffer = io.BytesIO()
    free_axes = {0: "batch", 2: "frames", 3: "height", 4: "width"}
    with torch.no_grad(), _quiet_tracing():
        torch.onnx.export(traceable(backbone), (spec.example_input(),), buffer, dynamo=False,
                          input_names=["clips"], output_names=["features"], opset_version=17,
                          dynamic_axes={"clips": free_axes, "features": {0: "batch"}})
    data = buffer.getvalue()
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        _check_same_features(
            backbone, lambda x: torch.from_numpy(session.run(None, {"clips": x.numpy()})[0]),
            spec, "onnx")
    return data


@contextlib.contextmanager
def _quiet_tracing():
    """Silences what tracing says about code that the export check then verifies: Python
    conditions on sizes (the conv's CPU-autocast guard, never taken at export) and the
    deprecation notices of torch.jit.trace and the TorchScript-based ONNX exporter."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        yield


def _check_same_features(backbone: Backbone, run, spec: BackboneSpec, fmt: str) -> None:
    """The exported model must give the backbone's features, on the export shape and on
    another batch size and clip length (free axes; one more frame splits TGN's groups
    differently)."""
    clips = spec.example_input(batch=2)
    for batch in (clips, torch.cat([clips[:1], clips[:1, :, -1:]], dim=2)):
        with torch.no_grad():
            expected, got = backbone(batch), run(batch)
        error = (got - expected).abs().max().item()
        scale = max(1.0, expected.abs().max().item())
        if not error <= CHECK_TOLERANCE * scale:
            raise PlayspeedError(
                f"{fmt} export does not reproduce the backbone's features on clips of shape "
                f"{tuple(batch.shape)} (max difference {error:.2g}); nothing written")


# --- exportable form: TGN without Python control flow ---------------------------------------


class FrozenTemporalGroupNorm(nn.Module):
    """An eval-mode :class:`TemporalGroupNorm` as one traceable per-frame affine map.

    TGN picks its code path and group boundaries with Python arithmetic on the frame count,
    which a trace would freeze; here the group of each frame is computed with tensor ops
    (``torch.tensor_split``'s rule: the first ``T mod P`` groups one frame longer), so the
    exported graph accepts any clip length ``T >= P``.
    """

    def __init__(self, layer: TemporalGroupNorm) -> None:
        super().__init__()
        self.num_groups = layer.num_groups
        with torch.no_grad():
            scale = layer.weight * torch.rsqrt(layer.running_var + layer.eps)
            shift = layer.bias - layer.running_mean * scale
        self.register_buffer("scale", scale.clone())  # P x C
        self.register_buffer("shift", shift.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> same shape."""
        frames = x.shape[2]
        t = torch.arange(frames, device=x.device)
        length, longer = frames // self.num_groups, frames % self.num_groups
        boundary = longer * (length + 1)
        group = torch.where(t < boundary, t // (length + 1), longer + (t - boundary) // length)
        scale = self.scale[group].t()[None, :, :, None, None].to(x.dtype)  # 1 x C x T x 1 x 1
        shift = self.shift[group].t()[None, :, :, None, None].to(x.dtype)
        return x * scale + shift


def traceable(backbone: Backbone) -> Backbone:
    """An eval-mode copy of ``backbone`` with every TGN layer frozen into its traceable form."""
    copied = copy.deepcopy(backbone).eval()
    for module in list(copied.modules()):
        for name, child in module.named_children():
            if isinstance(child, TemporalGroupNorm):
                setattr(module, name, FrozenTemporalGroupNorm(child))
    return copied


# --- torchvision ---------------------------------------------------------------------------

_OTHER_FORMATS = "use --format safetensors (playspeed.load_backbone), torchscript or onnx"


def torchvision_state_dict(backbone: Backbone, spec: BackboneSpec) -> dict[str, torch.Tensor]:
    """The backbone's weights under ``torchvision.models.video.r3d_18``'s names, without
    ``fc``. Only R3D-18 with BatchNorm at width 1.0 has torchvision's architecture; anything
    else is a :class:`PlayspeedError` saying why and what to use instead."""
    build = spec.build
    if build["name"] != "r3d_18":
        why = {"r2plus1d_18": "torchvision's r2plus1d_18 fixes its stem at 45 channels and "
                              "reuses a block's first mid-channel count in its second "
                              "convolution, so these weights have other shapes",
               }.get(build["name"], f"torchvision has no {build['name']}")
        raise PlayspeedError(f"--format torchvision: {why}; it takes r3d_18 with "
                             f"model.norm=bn only; {_OTHER_FORMATS}")
    if build["norm"] != "bn":
        kind = {"tgn": "temporal group norm (statistics per group of frames)",
                "gn": "GroupNorm"}[build["norm"]]
        raise PlayspeedError(f"--format torchvision: this backbone uses {kind}, which "
                             f"torchvision's r3d_18 (BatchNorm3d) cannot express; "
                             f"{_OTHER_FORMATS}")
    if backbone.input_mode != "rgb":
        raise PlayspeedError(f"--format torchvision: this backbone differences consecutive "
                             f"frames first (model.input_mode={backbone.input_mode}), which "
                             f"torchvision's r3d_18 does not; {_OTHER_FORMATS}")
    if build["width"] != 1.0:
        raise PlayspeedError(f"--format torchvision: torchvision's r3d_18 has width 1.0 "
                             f"(64-512 channels), this backbone width {build['width']}; "
                             f"{_OTHER_FORMATS}")
    _check_torchvision_layout(backbone)
    return {_torchvision_key(key): value.clone()
            for key, value in backbone.state_dict().items()}


def _torchvision_key(key: str) -> str:
    """``layer1.0.conv1.weight`` -> ``layer1.0.conv1.0.weight``, ``layer1.0.norm1.bias`` ->
    ``layer1.0.conv1.1.bias`` (torchvision nests each conv and its norm in a Sequential);
    the stem and the downsample projections already have torchvision's names."""
    match = re.fullmatch(r"(layer\d\.\d+)\.(conv|norm)([12])\.(.+)", key)
    if match is None:
        return key
    block, kind, number, rest = match.groups()
    return f"{block}.conv{number}.{0 if kind == 'conv' else 1}.{rest}"


def _torchvision_geometry(name: str) -> tuple[tuple[int, ...], ...]:
    """(kernel, stride, padding) of convolution ``name`` (torchvision's naming) in
    torchvision's VideoResNet r3d_18: BasicStem, Conv3DSimple blocks, 1x1x1 projections."""
    if name == "stem.0":
        return (3, 7, 7), (1, 2, 2), (1, 3, 3)
    if name.endswith("downsample.0"):
        return (1, 1, 1), (2, 2, 2), (0, 0, 0)
    strided = re.match(r"layer[234]\.0\.conv1\.0$", name) is not None
    return (3, 3, 3), (2 if strided else 1,) * 3, (1, 1, 1)


def _check_torchvision_layout(backbone: Backbone) -> None:
    """Refuses a backbone whose layers differ from torchvision's r3d_18 in any way that the
    weights' names and shapes would not show."""
    for name, module in backbone.named_modules():
        tv_name = _torchvision_key(f"{name}.weight").removesuffix(".weight")
        if isinstance(module, nn.Conv3d):
            have = (module.kernel_size, module.stride, module.padding)
            want = _torchvision_geometry(tv_name)
            if have != want or module.bias is not None or module.groups != 1:
                raise PlayspeedError(
                    f"--format torchvision: layer {name} is not torchvision's (kernel, stride, "
                    f"padding {have}, torchvision {want}); {_OTHER_FORMATS}")
        elif isinstance(module, nn.modules.batchnorm._NormBase):
            if (type(module) is not nn.BatchNorm3d or module.eps != 1e-5 or not module.affine
                    or not module.track_running_stats):
                raise PlayspeedError(f"--format torchvision: norm {name} is not torchvision's "
                                     f"BatchNorm3d(eps=1e-5); {_OTHER_FORMATS}")
