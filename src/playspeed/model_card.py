"""``OUT/model_card.md``: what a pretrained backbone is, what it saw, what it scores, how to
load it, and how every number was measured (the convention of model hubs).

Written by every pretraining from its config and ``metrics.json`` (accuracies with the chance
levels of the same validation items); downstream numbers
(fine-tuning, retrieval, probes) are 'not measured' until a caller that has them passes
them in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from torch import nn

from playspeed.config import Config, config_to_dict
from playspeed.data.splits import describe_holdout
from playspeed.io import atomic_write_text

__all__ = ["model_card", "write_model_card"]

CARD_NAME = "model_card.md"
# What the backbone does to the RGB clip before its first stage, per model.input_mode.
_INPUT_MODE_NOTES = {
    "rgb": "",
    "frame_diff": "; the backbone differences consecutive frames itself (model.input_mode "
                  "frame_diff)",
    "frame_diff_unit": "; the backbone differences consecutive frames itself and scales each "
                       "clip's differences to unit RMS (model.input_mode frame_diff_unit)",
}
# (metrics.json key, what it counts), in the order the card lists them.
_PRETEXT_READINGS = (
    ("pretext_val_acc", "pretext accuracy"),
    ("speed_val_acc", "speed accuracy"),
    ("direction_val_acc", "direction accuracy"),
)
# What the card says a downstream evaluation is, by metrics.json key.
DOWNSTREAM = {
    "video_top1": "action recognition after fine-tuning, video top-1 (%)",
    "clip_top1": "action recognition after fine-tuning, clip top-1 (%)",
    "top1": "retrieval (test videos query training videos), top-1 (%)",
    "linear_top1": "linear probe on frozen features, top-1 (%)",
    "knn_top1": "k-NN on frozen features, top-1 (%)",
}


def model_card(config: Config, metrics: dict[str, Any], *, backbone: nn.Module,
               run_dir: str | Path, downstream: dict[str, dict[str, Any]] | None = None) -> str:
    """The card's markdown.

    ``metrics``: pretraining's ``metrics.json``; ``downstream``: evaluation name -> that
    evaluation's ``metrics.json`` (keys of :data:`DOWNSTREAM` and ``protocol``), if any.
    """
    model, clip, data, pretext = config.model, config.clip, config.data, config.pretext
    protocol = metrics.get("protocol", {})
    ckpt = Path(run_dir) / "checkpoints" / "last.ckpt"
    params = sum(p.numel() for p in backbone.parameters())
    norm = {"tgn": f"temporal group norm (TGN, {model.frames_per_group} frames per group)",
            "bn": "BatchNorm", "gn": "GroupNorm"}[model.norm]
    lines = [
        f"# {model.backbone} ({model.norm}), pretrained by playback-speed prediction",
        "",
        "## Model",
        "",
        f"- backbone: `{model.backbone}`, {norm}, width {model.width}, "
        f"{params:,} parameters; `B x 3 x T x H x W` clips -> pooled features "
        f"`B x {backbone.feature_dim}`",
        f"- input: RGB clips of {clip.shape} (T x H x W; frames resized to "
        f"{clip.resize[0]}x{clip.resize[1]}, then cropped), values in [0, 1] normalised with "
        f"mean {list(clip.mean)} and std {list(clip.std)}"
        + _INPUT_MODE_NOTES[model.input_mode],
        f"- pretext task: `{pretext.objective}`, playback speeds (frame skips) "
        f"{list(pretext.speeds)}, directions {list(pretext.directions)}, "
        f"{pretext.num_clips} clips per sample; no labels used",
        "",
        "## Data",
        "",
        f"- dataset: {data.dataset}, split {data.split}, training subset, videos from "
        f"`{data.videos}`",
        f"- trained on {protocol.get('train_videos', 'unknown')} videos; "
        f"{metrics.get('num_videos', 'unknown')} more held out to measure pretext accuracy "
        f"({describe_holdout(fraction=data.val_fraction, seed=config.seed)})",
        f"- training: {protocol.get('epochs', 'unknown')} epoch(s), effective batch "
        f"{protocol.get('effective_batch', 'unknown')}, {config.optim.name} at lr "
        f"{config.optim.lr}",
        "",
        "## Results",
        "",
        "| measurement | value (%) | chance (%) | protocol |",
        "|---|---:|---:|---|",
    ]
    accuracy_rule = protocol.get("accuracy", "")
    chance_rule = protocol.get("chance", "")
    for key, label in _PRETEXT_READINGS:
        chance = metrics.get(key.replace("_acc", "_chance"))
        if chance is not None:  # a reading of this objective
            value = metrics.get(key)
            shown = "not measured" if value is None else f"{value:.1f}"
            rule = accuracy_rule if key == "pretext_val_acc" else "per clip"
            lines.append(f"| {label} | {shown} | {chance:.1f} | "
                         f"{protocol.get('measured_on', '')}; {rule}; chance: {chance_rule} |")
    for name, results in (downstream or {}).items():
        for key, label in DOWNSTREAM.items():
            if key in results:
                # Every top-k reading's chance is stored as chance_top<k> beside it.
                chance = results.get("chance_top" + key.rpartition("top")[2])
                chance_cell = "" if chance is None else f" {chance:.1f}"
                lines.append(f"| {name}: {label} | {results[key]:.1f} |{chance_cell} | "
                             f"{_protocol_text(results.get('protocol', {}))} |")
    if not downstream:
        lines.append("| downstream (fine-tuning, retrieval, probes) | not measured | | "
                     "run `playspeed finetune --init`, `retrieve`, `probe` on this checkpoint |")
    if metrics.get("pretext_warning"):
        lines += ["", f"Warning: {metrics['pretext_warning']}"]
    lines += [
        "",
        "## How to load it",
        "",
        "```python",
        "import playspeed",
        "",
        f'backbone = playspeed.load_backbone("{ckpt}")  # eval mode',
        f"features = backbone(clips)  # B x 3 x T x H x W -> B x {backbone.feature_dim}",
        "```",
        "",
        "For other tools, export the backbone (safetensors: weights and this config, for "
        "`playspeed.load_backbone`; torchvision: `r3d_18` with BatchNorm only; torchscript and "
        "onnx: any backbone):",
        "",
        "```",
        f"playspeed export --ckpt {ckpt} --format safetensors --out backbone.safetensors",
        f"playspeed export --ckpt {ckpt} --format onnx --out backbone.onnx",
        "```",
        "",
        "## Config",
        "",
        "```yaml",
        OmegaConf.to_yaml(config_to_dict(config)).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def _protocol_text(protocol: dict[str, Any]) -> str:
    return "; ".join(f"{key}: {value}" for key, value in protocol.items()).replace("|", "/")


def write_model_card(run_dir: str | Path, config: Config, metrics: dict[str, Any], *,
                     backbone: nn.Module,
                     downstream: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write ``run_dir/model_card.md`` (atomically) and return its path."""
    path = Path(run_dir) / CARD_NAME
    atomic_write_text(path, model_card(config, metrics, backbone=backbone, run_dir=run_dir,
                                       downstream=downstream))
    return path
