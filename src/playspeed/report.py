"""Plots and tables: confusion matrices, training curves, retrieval and speed figures, result
tables and bar charts. Depends on file I/O only; the reports that use them assemble their
text where their numbers come from (``demo``, ``compare``)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import numpy as np  # noqa: E402

from playspeed.io import atomic_write_bytes  # noqa: E402


def save_figure(fig, path: Path) -> Path:
    """Write a figure atomically (temp file + rename) and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def plot_confusion(matrix: np.ndarray, classes: Sequence[str], path: Path, *, title: str = ""
                   ) -> Path:
    """Row-normalised confusion matrix (rows: true class, columns: prediction)."""
    totals = matrix.sum(1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    size = max(4.0, 0.35 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, classes, rotation=90, fontsize=7)
    ax.set_yticks(ticks, classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(classes) <= 20:
        for (row, col), count in np.ndenumerate(matrix):
            if count:
                ax.text(col, row, str(count), ha="center", va="center", fontsize=6,
                        color="white" if normalised[row, col] > 0.5 else "black")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    return save_figure(fig, path)


def read_run_logs(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """A run's CSV logs as ``{metric: [(step, value), ...]}``, every version (start and
    resumes) in order."""
    series: dict[str, list[tuple[int, float]]] = {}
    versions = sorted(Path(run_dir).glob("logs/csv/version_*/metrics.csv"),
                      key=lambda p: int(p.parent.name.split("_")[1]))
    for path in versions:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                step = int(row.get("step") or 0)
                for key, value in row.items():
                    if key not in ("step", "epoch") and value not in ("", None):
                        series.setdefault(key, []).append((step, float(value)))
    return series


def plot_curves(runs: dict[str, Path], metrics: Sequence[str], path: Path, *,
                title: str = "") -> Path:
    """One panel per metric; one line per run (``{label: run directory}``)."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for label, run_dir in runs.items():
            points = read_run_logs(run_dir).get(metric, [])
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, label=label, marker="." if len(points) < 30 else None)
        ax.set_title(metric)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a metric that no run logged has no lines
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_pretext_curves(run_dir: Path, path: Path, *, chance: dict[str, float],
                        chance_loss: float) -> Path:
    """Pretext loss (training, validation) and validation accuracies against clips seen, each
    with its chance level dashed (``ln K``; ``chance["<name>_val_chance"]`` in percent)."""
    series = read_run_logs(run_dir)
    seen = sorted(series.get("train/clips_seen", []) + series.get("val/clips_seen", []))
    levels = {"train/loss": chance_loss,
              **{f"val/{name}_acc": chance.get(f"{name}_val_chance")
                 for name in ("pretext", "speed", "direction")}}
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    panels = ((loss_ax, (("train/loss", "training"), ("val/loss", "validation"))),
              (acc_ax, (("val/pretext_acc", "pretext"), ("val/speed_acc", "speed"),
                        ("val/direction_acc", "direction"))))
    for ax, lines in panels:
        for metric, label in lines:
            points = series.get(metric, [])
            if not points or not seen:
                continue
            steps, values = zip(*points, strict=True)
            clips = np.interp(steps, *zip(*seen, strict=True))
            line, = ax.plot(clips, values, label=label, marker="." if len(points) < 30 else None)
            level = levels.get(metric)
            if level is not None:
                ax.axhline(level, color=line.get_color(), ls="--", lw=0.8,
                           label="chance (ln K)" if ax is loss_ax else f"{label} chance")
        ax.set_xlabel("clips seen")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:  # a run that ended before its first validation
            ax.text(0.5, 0.5, "not validated", transform=ax.transAxes, ha="center",
                    va="center", color="grey")
    loss_ax.set_title("loss")
    acc_ax.set_title("validation accuracy (%)")
    return save_figure(fig, path)


def middle_frame(source, record) -> np.ndarray:
    """The middle frame of a video, ``H x W x C`` uint8."""
    return source.read(record, [source.num_frames(record) // 2])[0].numpy()


def plot_retrieval(queries, gallery, ranked, source, path: Path, *, num_queries: int = 6,
                   k: int = 5, title: str = "") -> Path:
    """A row per query: its middle frame, then its top-``k`` gallery videos framed green
    (same class) or red. Queries are spread over the classes."""
    picks = np.linspace(0, len(queries) - 1, min(num_queries, len(queries))).round().astype(int)
    k = min(k, ranked.shape[1])
    fig, axes = plt.subplots(len(picks), k + 1, figsize=(1.9 * (k + 1), 1.6 * len(picks)),
                             squeeze=False)
    for row, query_index in enumerate(picks):
        query = queries[int(query_index)]
        cells = [(query, None)] + [(gallery[int(g)], gallery[int(g)].label == query.label)
                                   for g in ranked[int(query_index), :k]]
        for col, (record, hit) in enumerate(cells):
            ax = axes[row, col]
            ax.imshow(middle_frame(source, record))
            ax.set_xticks([])
            ax.set_yticks([])
            colour = "black" if hit is None else ("tab:green" if hit else "tab:red")
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(1 if hit is None else 4)
            name = getattr(queries, "classes", None)
            label = name[record.label] if name and record.label >= 0 else Path(record.key).stem
            ax.set_title(("query: " if hit is None else f"{col}. ") + label, fontsize=7)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_speed_timeline(predictions, segments, *, clip_len: int, fps: float, path: Path,
                        title: str = "", truth=None, typical_speed: float | None = None
                        ) -> Path:
    """Two panels along the video, a point per window (at its centre): the expected playback
    speed (log scale; the dashed line is the video's typical window) and the probability of
    playing backwards. Flagged segments are shaded; ``truth`` (known re-timed segments with
    ``first_frame``, ``last_frame``, ``signed_speed``) is drawn as black bars."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 4.6), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 2]})
    centres = np.array([(p.start + clip_len / 2) / fps for p in predictions])
    log2_speed = np.array([p.log2_speed for p in predictions])
    p_reversed = np.array([p.p_reversed for p in predictions])
    top.plot(centres, 2.0 ** log2_speed, marker=".", color="tab:blue", lw=1,
             label="expected speed")
    typical = typical_speed or 2.0 ** float(np.median(log2_speed))
    top.axhline(typical, color="grey", lw=0.8, ls="--", label="typical window")
    bottom.plot(centres, p_reversed, marker=".", color="tab:purple", lw=1,
                label="P(reversed)")
    bottom.axhline(0.5, color="grey", lw=0.8, ls="--")
    for segment in segments:
        ax = bottom if segment.kind == "reversed" else top
        ax.axvspan(segment.first_frame / fps, (segment.last_frame + 1) / fps, alpha=0.2,
                   color="tab:red" if segment.kind == "reversed" else "tab:orange",
                   label=f"flagged {segment.kind}")
    for segment in truth or ():
        start, stop = segment.first_frame / fps, (segment.last_frame + 1) / fps
        top.hlines(abs(segment.signed_speed), start, stop, color="black", lw=2.5, alpha=0.6,
                   label="true speed", zorder=2)
        if segment.signed_speed < 0:
            bottom.hlines(0.97, start, stop, color="black", lw=2.5, alpha=0.6,
                          label="truly reversed", zorder=2)
    top.set_yscale("log", base=2)
    top.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
    top.set_ylabel("speed")
    bottom.set_ylim(0, 1)
    bottom.set_ylabel("P(reversed)")
    bottom.set_xlabel("time (s)")
    top.set_title(title)
    for ax in (top, bottom):
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), fontsize=7, loc="upper right")
        ax.grid(alpha=0.3)
    return save_figure(fig, path)


def results_table(rows: dict[str, dict[str, float]], row_names: dict[str, str],
                  columns: dict[str, str], *,
                  spread: dict[str, dict[str, float]] | None = None) -> str:
    """A Markdown table: one row per model, one column per reading (percent), shown as
    ``mean ± std`` where ``spread`` gives a reading's standard deviation."""
    header = "| model | " + " | ".join(columns.values()) + " |"
    lines = [header, "|---|" + "---:|" * len(columns)]
    for name, row in rows.items():
        stds = (spread or {}).get(name, {})
        cells = ["-" if key not in row else f"{row[key]:.1f}"
                 + (f" ± {stds[key]:.1f}" if key in stds else "") for key in columns]
        lines.append(f"| {row_names.get(name, name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_result_bars(rows: dict[str, dict[str, float]], row_names: dict[str, str],
                     columns: dict[str, str], path: Path, *, title: str = "",
                     spread: dict[str, dict[str, float]] | None = None,
                     baseline: dict[str, float] | None = None) -> Path:
    """One panel per reading, one bar per model (whiskers: ``spread``, a standard
    deviation per reading); a model's ``chance`` level is marked on its pretext-accuracy
    bar, a reading's ``baseline`` (what learning nothing scores) across its panel."""
    fig, axes = plt.subplots(1, len(columns), figsize=(2.6 * len(columns), 3.6), sharey=True,
                             squeeze=False)
    names = list(rows)
    colours = plt.get_cmap("tab10")(np.arange(len(names)) % 10)
    for ax, (key, heading) in zip(axes[0], columns.items(), strict=True):
        values = [rows[n].get(key, np.nan) for n in names]
        errors = [(spread or {}).get(n, {}).get(key, 0.0) for n in names]
        ax.bar(np.arange(len(names)), values, color=colours, yerr=errors if spread else None,
               capsize=2)
        if key == "pretext_acc":
            chance = [rows[n].get("chance", np.nan) for n in names]
            ax.hlines(chance, np.arange(len(names)) - 0.4, np.arange(len(names)) + 0.4,
                      colors="black", linestyles="--", label="chance")
            ax.legend(fontsize=7)
        if baseline and key in baseline:
            ax.axhline(baseline[key], color="black", linestyle=":", linewidth=1)
        ax.set_xticks(np.arange(len(names)), [row_names.get(n, n) for n in names],
                      rotation=60, ha="right", fontsize=7)
        ax.set_title(heading, fontsize=9)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_ylabel("%")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
