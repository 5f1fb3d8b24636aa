"""Draws ``docs/figures/method.png``, the README's figure, with the project's own code.

Top: clips cut from one synthetic video (a ``Bounce``, whose arrow of time is visible) at
several playback speeds and directions, as the pretext sampler cuts them. Bottom: where
temporal group normalization (TGN) sits: the norm layers of R3D-18 at a 16-frame clip, each
stage's frames coloured by the group whose statistics normalise them, read from the real
model's norm table, and the two pretext heads.

Run from the repository root: ``PYTHONPATH=src python docs/figures/method_figure.py``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyArrowPatch, Rectangle  # noqa: E402

from playspeed.data.sampling import clip_indices  # noqa: E402
from playspeed.data.synthetic import draw_look, render  # noqa: E402
from playspeed.models import build_backbone  # noqa: E402
from playspeed.preview import signed_speed_label  # noqa: E402

OUT = Path(__file__).with_name("method.png")
VIDEO_CLASS = "Bounce"
VIDEO_SIZE = (160, 120)  # W, H, as the quick demo writes them
NUM_FRAMES = 128
SEED = 4
CLIP_LEN = 16
SHOWN = 8  # frames drawn per clip: every second one of its 16
START = 4  # every clip starts here, so the rows differ only in speed and direction
SIGNED_SPEEDS = (1, 2, 4, 8, -4)
FRAMES_PER_GROUP = 4  # TGN's default g


def video_frames() -> np.ndarray:
    """``T x H x W x 3`` uint8: one synthetic video."""
    rng = np.random.default_rng(SEED)
    look = draw_look(rng, VIDEO_SIZE)
    return np.stack(list(render(VIDEO_CLASS, look=look, rng=rng, size=VIDEO_SIZE,
                                num_frames=NUM_FRAMES)))


def stage_groups() -> list[tuple[str, int, int]]:
    """``(stage, T_l, P_l)`` of R3D-18's norm layers at ``CLIP_LEN`` frames, one per stage."""
    backbone = build_backbone("r3d_18", norm="tgn", clip_len=CLIP_LEN, width=0.125,
                              frames_per_group=FRAMES_PER_GROUP)
    stages: dict[str, tuple[int, int]] = {}
    for name, frames, groups in backbone.norm_table():
        stages.setdefault(name.split(".")[0], (frames, groups))
    return [(stage, frames, groups) for stage, (frames, groups) in stages.items()]


def draw_clips(fig, frames: np.ndarray) -> None:
    """One row per signed speed: ``SHOWN`` frames, captioned with their source index."""
    axes = fig.subplots(len(SIGNED_SPEEDS), SHOWN, squeeze=False)
    for row, signed in enumerate(SIGNED_SPEEDS):
        speed, direction = abs(signed), 1 if signed > 0 else -1
        indices = clip_indices(start=START, clip_len=CLIP_LEN, skip=speed, direction=direction)
        for col, t in enumerate(range(0, CLIP_LEN, CLIP_LEN // SHOWN)):
            ax = axes[row, col]
            ax.imshow(frames[indices[t]], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"frame {indices[t]}", fontsize=7, labelpad=1)
        axes[row, 0].set_ylabel(signed_speed_label(speed, direction), fontsize=13,
                                fontweight="bold", rotation=0, ha="right", va="center",
                                color="tab:blue" if direction > 0 else "tab:red")


def draw_tgn(ax) -> None:
    """The backbone's stages as rows of frames, coloured by TGN group, then the heads."""
    colours = plt.get_cmap("Set2")(np.arange(8))
    stages = stage_groups()
    cell, gap = 1.0, 1.6
    ax.set_xlim(-6.5, 2 * CLIP_LEN + 14)
    ax.set_ylim(-1.2, len(stages) * gap + 0.8)
    ax.axis("off")
    ax.text(-6.5, len(stages) * gap + 0.4,
            f"R3D-18 on a {CLIP_LEN}-frame clip: every norm layer is TGN, "
            f"P_l = max(1, T_l // {FRAMES_PER_GROUP}) groups of consecutive frames, "
            "each with its own statistics and affine", fontsize=9, va="bottom")
    for i, (stage, frames, groups) in enumerate(stages):
        y = (len(stages) - 1 - i) * gap
        bounds = np.cumsum([0] + [len(part) for part in np.array_split(np.arange(frames),
                                                                        groups)])
        for t in range(frames):
            group = int(np.searchsorted(bounds, t, side="right") - 1)
            ax.add_patch(Rectangle((2 * t * cell, y), 2 * cell - 0.15, 1.0,
                                   facecolor=colours[group], edgecolor="black", linewidth=0.4))
        ax.text(-0.6, y + 0.5, stage, ha="right", va="center", fontsize=9)
        ax.text(2 * frames * cell + 0.6, y + 0.5, f"T_l = {frames}, P_l = {groups}",
                va="center", fontsize=8)
    x_heads = 2 * CLIP_LEN + 3.5
    for y, text in ((gap * 2.6, "speed head\n(4-way: 1x 2x 4x 8x)"),
                    (gap * 1.2, "direction head\n(forward / reversed)")):
        ax.text(x_heads, y, text, ha="left", va="center", fontsize=9,
                bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.4"})
        ax.add_patch(FancyArrowPatch((2 * CLIP_LEN - 6, 0.5), (x_heads - 0.3, y),
                                     arrowstyle="-|>", mutation_scale=10, color="0.4"))
    ax.text(2 * CLIP_LEN - 8, -0.9, "pooled features", fontsize=8, color="0.3")


def main(out: Path = OUT) -> Path:
    """Draw the figure to ``out`` (default: next to this script)."""
    frames = video_frames()
    fig = plt.figure(figsize=(11, 10.5))
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.5, 0.85])
    top.suptitle(f"One synthetic video ({VIDEO_CLASS}), {CLIP_LEN}-frame clips from frame "
                 f"{START} at signed playback speeds (every 2nd frame shown): the network "
                 "learns to tell them apart", fontsize=10)
    draw_clips(top, frames)
    draw_tgn(bottom.add_subplot(1, 1, 1))
    fig.savefig(out, dpi=72, bbox_inches="tight")
    plt.close(fig)
    return Path(out)


if __name__ == "__main__":
    print(f"wrote {main()}")
