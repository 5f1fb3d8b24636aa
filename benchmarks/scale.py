"""Scaling study: the figures that decide a plan for Kinetics-400 pretraining.

Measured on this machine, each on one core, one loader worker or one device:

- ``decode``: frames/s of decoding whole videos (PyAV, one thread, frames left in YUV);
- ``prepare``: :func:`~playspeed.data.prepare.prepare_store` with one worker (decode, resize,
  encode, write) into each store a user chooses between: JPEG at the default 128x171, JPEG
  with the short side 128 (``prepare --short-side``) and raw 128x171; videos/s, frames/s and
  the store's bytes per frame (its files, headers and offset tables included);
- ``loader``: pretext samples of the config (default ``pretrain/kinetics400_r3d_18``: 3 clips
  of 16x112x112, its crops and colour jitter) built by ``PlaybackSpeedClips`` from the JPEG
  and the raw store, in this process on one torch thread: what one loader worker makes;
- ``train step``: the config's model, loss, optimiser and precision on one batch held in
  memory (``benchmarks/train_loop.py``'s ``bare_step``): on CUDA when there is a GPU, else
  on the CPU, marked as such; and the step's FLOPs per clip, counted by
  ``torch.utils.flop_counter`` (forward and backward, on the meta device: no compute).

Rates are the best of ``--rounds`` rounds (other processes only ever slow a round down).

The footage: synthetic scenes of the ``handheld`` variant (:mod:`playspeed.data.synthetic`:
the camera sways, zooms and shakes, a background layer flows, sensor noise; the whole frame
moves, as in real footage), written with the project's own writer in each codec of the usual
datasets: H.264 (libx264 .mp4: Kinetics as YouTube serves it), MPEG-4 Part 2 (.avi: UCF-101,
HMDB-51) and VP9 (.webm: Something-Something v2), by default at the size and length of
Kinetics as it is usually shared (340x256, 10 s at 30 fps); ``--size W H``, repeated,
measures several sizes (1280 720: YouTube's 720p, as a downloader fetches it). Each video's
frames are rendered once and encoded in all three codecs. ``--videos DIR`` measures the
videos under DIR (any folder ``prepare --dataset folder`` reads) instead.

The plan (:func:`plan`) turns the figures and the stated projections (:data:`KINETICS_400`,
:data:`GPUS`, :data:`SCALING`) into hours to prepare Kinetics-400 on M cores (from the
H.264 footage of each size), the store's size, loader workers per GPU and the wall time of
the config's epochs on 1, 8 and 32 GPUs.
The report is Markdown (docs/scaling.md's tables); ``--markdown JSON`` prints it again from
a ``--json`` file, so that the page regenerates from a measurement.

    python benchmarks/scale.py --json scale.json      # a few minutes on 2 cores
    python benchmarks/scale.py --size 340 256 --size 1280 720 --json scale.json
    python benchmarks/scale.py --markdown scale.json  # the tables of docs/scaling.md
    python benchmarks/scale.py --videos DIR           # real footage (class folders)
    python benchmarks/scale.py optim.batch_size=32    # overrides of the config
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from playspeed.config import Config, load_config, override_config
from playspeed.console import quiet_dependencies
from playspeed.data.datasets import VideoFolder, VideoRecord
from playspeed.data.prepare import prepare_store
from playspeed.data.pretext import PlaybackSpeedClips
from playspeed.data.store import FrameStore, frames_path
from playspeed.data.synthetic import (
    CLASSES,
    draw_look,
    draw_scene_motion,
    render,
    synth_options,
)
from playspeed.data.video import open_video, write_video
from playspeed.io import write_json
from playspeed.tasks.data import pretext_dataset
from playspeed.tasks.pretext import PlaybackSpeedPretraining
from playspeed.tasks.trainer import training_device_type, training_precision


def _benchmark_script(name: str):
    """Another script of benchmarks/ (not a package), as a module."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as the import system does (dataclasses look it up there)
    spec.loader.exec_module(module)
    return module


bare_step = _benchmark_script("train_loop").bare_step

CONFIG = "pretrain/kinetics400_r3d_18"
FOOTAGE = {"sizes": [(340, 256)], "seconds": 10.0, "fps": 30, "videos": 2,
           "variant": "handheld"}


@dataclass(frozen=True)
class Codec:
    label: str
    codec: str  # FFmpeg encoder name
    suffix: str
    options: dict[str, str] | None = None


CODECS = {
    "h264": Codec("H.264 (libx264 .mp4)", "libx264", ".mp4"),
    "mpeg4": Codec("MPEG-4 Part 2 (.avi)", "mpeg4", ".avi"),
    # libvpx's two-pass "good" quality family, as the SSv2 files were made; speed 4 keeps
    # the encoding of the footage short.
    "vp9": Codec("VP9 (libvpx .webm)", "libvpx-vp9", ".webm",
                 {"deadline": "good", "cpu-used": "4"}),
}
# prepare_store's settings of each store; the first is the default and the config's.
STORES = {
    "jpeg 128x171": {"fmt": "jpeg", "resize": (128, 171)},
    "jpeg short side 128": {"fmt": "jpeg", "short_side": 128},
    "raw 128x171": {"fmt": "raw", "resize": (128, 171)},
}
DEFAULT_STORE, RAW_STORE = "jpeg 128x171", "raw 128x171"
# The codec the plan prepares: Kinetics' files are H.264.
PLAN_CODEC = "h264"

# --- what the plan assumes (projections, each with its source) -------------------------

#: Kinetics-400's training set as the plan counts it: ~240k clips (of the 246k the
#: annotation lists, a few percent can no longer be downloaded) of 10 s, most at 30 fps.
#: Preparing the validation set too (``prepare`` reads both CSVs) adds ~20k clips, 8%.
KINETICS_400 = {"videos": 240_000, "seconds": 10.0, "fps": 30.0}
#: Cores ``prepare`` runs on: one machine of 16 or 64, or four of 64 with --shard I/4.
PREPARE_CORES = (16, 64, 256)
GPU_COUNTS = (1, 8, 32)


@dataclass(frozen=True)
class Gpu:
    """A GPU's projected training rate: ``tflops`` achieved (not peak) on a conv net."""

    name: str
    tflops: float
    source: str


# The anchor: NVIDIA's published ResNet-50 v1.5 training in PyTorch on one A100 80GB, mixed
# precision: 2470 images/s (NVIDIA/DeepLearningExamples, PyTorch/Classification/ConvNets/
# resnet50v1.5, "Training performance: NVIDIA DGX A100"), at 3 x 8.2 GFLOP an image (4.1
# GMACs forward at 224x224, backward twice the forward): 60.8 TFLOP/s achieved, 19% of the
# A100's 312 TFLOP/s dense bf16 peak. The H100 (SXM) is scaled from it by memory bandwidth
# (3.35 vs 2.04 TB/s): a conv net's norm and activation layers are bound by it; its compute
# peak (989 TFLOP/s) is 3.2x, so this is the cautious end.
_RESNET50_A100 = 2470 * 3 * 8.2e9 / 1e12
GPUS = (
    Gpu("A100", _RESNET50_A100, "ResNet-50 training's achieved FLOP/s on an A100 "
        "(NVIDIA's published 2470 img/s, mixed precision)"),
    Gpu("H100 SXM", _RESNET50_A100 * 3.35 / 2.04, "the A100 figure x 1.64, the ratio of "
        "memory bandwidth (3.35 / 2.04 TB/s; compute peak: 3.2x)"),
)
#: Share of N GPUs' summed speed that DDP keeps: 0.84 is the published 8-GPU strong scaling
#: of the same ResNet-50 anchor (16621 / (8 x 2470) img/s); 32 GPUs (4 nodes) are assumed to
#: keep it: R3D-18's all-reduce (33M fp32 gradients, ~130 MB a step) takes ~20 ms on a
#: 100 Gb/s link against a step of ~0.5-0.8 s, and overlaps the backward pass.
SCALING = {1: 1.0, 8: 0.84, 32: 0.84}

# --- footage ---------------------------------------------------------------------------


def write_footage(root: Path, *, size: tuple[int, int], seconds: float, fps: int,
                  videos: int, variant: str, seed: int = 0) -> dict[str, Path]:
    """``videos`` synthetic videos of ``variant`` scenes, each encoded in every codec of
    :data:`CODECS` under ``root/<codec>/<class>/``; returns the folder of each codec."""
    options = synth_options(variant, size=size)
    num_frames = round(seconds * fps)
    folders = {name: root / name for name in CODECS}
    for index in range(videos):
        motion = CLASSES[index % len(CLASSES)]
        key = (seed, index)
        look = draw_look(np.random.default_rng([*key, 0]), size, pan=options.reach())
        scene = draw_scene_motion(options, key, look=look, num_frames=num_frames)
        frames = list(render(motion, look=look, rng=np.random.default_rng([*key, 1]),
                             size=size, num_frames=num_frames, pan=options.pan,
                             noise=options.noise, scene=scene))
        for name, codec in CODECS.items():
            path = folders[name] / motion / f"{motion}_{index:03d}{codec.suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_video(path, frames, fps=fps, codec=codec.codec, options=codec.options)
    return folders


# --- measurements ----------------------------------------------------------------------


def fastest(work: dict[Any, Callable[[int], float]], *, rounds: int) -> dict[Any, float]:
    """The shortest of ``rounds`` timings of each piece of ``work`` (``work[key](round)``
    does it once and returns its seconds). The rounds interleave the pieces, so that a burst
    of load from other processes slows them all alike; it never speeds one up."""
    best = dict.fromkeys(work, math.inf)
    for round_ in range(rounds):
        for key, once in work.items():
            best[key] = min(best[key], once(round_))
    return best


def decode_seconds(records: Sequence[VideoRecord]) -> float:
    """Decoding ``records`` whole, one thread, frames left as decoded (no conversion)."""
    start = time.perf_counter()
    for record in records:
        with open_video(record.path) as (container, stream):
            for _ in container.decode(stream):
                pass
    return time.perf_counter() - start


def prepare_seconds(records: Sequence[VideoRecord], out: Path, **settings: Any) -> float:
    """``prepare_store`` of ``records`` with one worker into a new store ``out`` (which
    stays, for the loader)."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    report = prepare_store(records, out, workers=1, progress=False, **settings)
    elapsed = time.perf_counter() - start
    if report.failed:
        raise RuntimeError(f"prepare failed: {report.failed}")
    return elapsed


def store_figures(records: Sequence[VideoRecord], store: Path) -> tuple[int, float]:
    """Frames of ``records`` in ``store``, and its bytes per frame (its files, headers and
    offset tables included)."""
    frames = sum(FrameStore(store).num_frames(record) for record in records)
    size = sum(frames_path(store, record.key).stat().st_size for record in records)
    return frames, size / frames


def loader_seconds(dataset: PlaybackSpeedClips, round_: int, *, samples: int) -> float:
    """Building ``samples`` items of ``dataset`` on one torch thread (one loader worker's
    work); round ``round_`` draws from epochs of its own."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    try:
        start = time.perf_counter()
        for i in range(samples):
            epoch, index = divmod(i, len(dataset))  # past the last video: the next epoch's
            dataset.set_epoch(round_ * samples + epoch)
            dataset[index]
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)


def flops_per_clip(config: Config, sample: dict[str, torch.Tensor]) -> float:
    """FLOPs of one training clip through the config's pretext task, forward and backward,
    on a batch of one ``sample`` (an item of the training dataset), counted on the meta
    device (shapes only: nothing is computed)."""
    with torch.device("meta"):
        task = PlaybackSpeedPretraining(config)
    batch = {key: value.unsqueeze(0).to("meta") for key, value in sample.items()}
    with FlopCounterMode(display=False) as counter:
        loss, *_ = task.training_loss(batch)
        loss.backward()
    return counter.get_total_flops() / sample["clips"].shape[0]


def step_rate(config: Config, *, steps: int, rounds: int, warmup: int) -> dict[str, Any]:
    """The bare train step (``train_loop.bare_step``) on this machine's training device."""
    device = training_device_type(config)
    measured = bare_step(config, steps=steps, rounds=rounds, warmup=warmup)
    name = (torch.cuda.get_device_name() if device == "cuda"
            else f"{_cpu_name()}, {torch.get_num_threads()} torch threads")
    return {"device": device, "device_name": name, "clips_per_s": measured["clips_per_second"],
            "rates": measured["rates"], "batch_shape": list(measured["batch_shape"]),
            "precision": training_precision(config)}


# --- the plan --------------------------------------------------------------------------


def plan_sources(result: dict[str, Any]) -> list[str]:
    """The measured sources the plan prepares: those in :data:`PLAN_CODEC`, at each footage
    size (or the given videos)."""
    found = [key for key, source in result["sources"].items() if source["codec"] == PLAN_CODEC]
    return found or list(result["sources"])


def plan(result: dict[str, Any], *, dataset: dict[str, float] = KINETICS_400,
         cores: Sequence[int] = PREPARE_CORES, gpu_counts: Sequence[int] = GPU_COUNTS
         ) -> dict[str, Any]:
    """Kinetics-400 pretraining from the measured ``result`` and the projections.

    Preparation, per source of :func:`plan_sources` and store: the dataset's frames over the
    measured per-core prepare rate, on M cores; the store's size: its frames at the measured
    bytes per frame. Training: one sample (``num_clips`` clips) per video per epoch, the
    config's epochs; a GPU's clips/s is the measured step on CUDA where there was one, else
    each of :data:`GPUS` projected through the counted FLOPs per clip; loader workers per
    GPU: that rate over one worker's measured clips/s (JPEG store), rounded up.
    """
    frames = dataset["videos"] * dataset["seconds"] * dataset["fps"]
    config = result["config"]
    clips = config["epochs"] * dataset["videos"] * config["num_clips"]
    gpus = []
    step = result["step"]
    if step["device"] == "cuda":
        gpus.append({"name": step["device_name"], "clips_per_s": step["clips_per_s"],
                     "basis": "measured"})
    gpus += [{"name": gpu.name, "clips_per_s": gpu.tflops * 1e12 / result["flops_per_clip"],
              "basis": f"projected: {gpu.source}, over the counted FLOPs per clip"}
             for gpu in GPUS]
    worker = result["loader"][DEFAULT_STORE]["clips_per_s"]
    for gpu in gpus:
        gpu["loader_workers"] = math.ceil(gpu["clips_per_s"] / worker)
        gpu["hours"] = {count: clips / (gpu["clips_per_s"] * count * SCALING[count]) / 3600
                        for count in gpu_counts}
    prepare = {source: {store: {"bytes": frames * rates["bytes_per_frame"],
                                "hours": {m: frames / (rates["frames_per_s"] * m) / 3600
                                          for m in cores}}
                        for store, rates in result["prepare"][source].items()}
               for source in plan_sources(result)}
    return {"dataset": dict(dataset), "frames": frames, "training_clips": clips,
            "prepare": prepare, "gpus": gpus}


# --- the report ------------------------------------------------------------------------


def _figure(value: float) -> str:
    """Three significant digits, no exponent."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _size(size: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if size >= scale:
            return f"{_figure(size / scale)} {unit}"
    return f"{_figure(size / 1e3)} kB"


def _hours(hours: float) -> str:
    return f"{_figure(hours * 60)} min" if hours < 1 else f"{_figure(hours)} h"


def report(result: dict[str, Any]) -> str:
    """The measured figures and the plan, as docs/scaling.md's Markdown tables."""
    meta, footage, config = result["meta"], result["footage"], result["config"]
    sources = result["sources"]
    stamp = (f"{meta['date']}, commit {meta['commit']}, {meta['machine']}, load average "
             f"{meta['load_average'][0]:.1f} at the start, {meta['load_average_end'][0]:.1f} "
             f"at the end (1-minute)")
    if footage["source"] == "synthetic":
        sizes = " and ".join(f"{width}x{height}" for width, height in footage["sizes"])
        what = (f"{footage['videos']} synthetic {footage['variant']} videos per codec and "
                f"size, {sizes}, {footage['seconds']:g} s at {footage['fps']} fps")
    else:
        what = f"the {footage['videos']} videos under {footage['source']}"
    lines = [f"Measured with `{meta['command']}` ({stamp}); footage: {what}.", "",
             "| figure | setting | rate | per |", "| --- | --- | ---: | --- |"]
    for key, rates in result["decode"].items():
        lines.append(f"| decode | {sources[key]['label']} | "
                     f"{_figure(rates['frames_per_s'])} frames/s "
                     f"({_figure(rates['videos_per_s'])} videos/s) | core |")
    for key, stores in result["prepare"].items():
        for store, rates in stores.items():
            lines.append(f"| prepare | {sources[key]['label']} -> {store} | "
                         f"{_figure(rates['frames_per_s'])} frames/s "
                         f"({_figure(rates['videos_per_s'])} videos/s) | core |")
    for key in plan_sources(result):
        for store, rates in result["prepare"][key].items():
            lines.append(f"| store size | {sources[key]['label']} -> {store} | "
                         f"{_size(rates['bytes_per_frame'])} | frame |")
    for store, rates in result["loader"].items():
        lines.append(f"| loader | {config['name']} samples ({config['num_clips']} clips of "
                     f"{config['clip']}) from the {store} store | "
                     f"{_figure(rates['clips_per_s'])} clips/s | worker (one thread) |")
    step = result["step"]
    where = ("GPU" if step["device"] == "cuda" else
             "**CPU, not a GPU figure** (no GPU on this machine)")
    lines += [f"| train step | {config['backbone']}, batch {step['batch_shape'][0]} x "
              f"{step['batch_shape'][1]} clips, {step['precision']}, {step['device_name']} | "
              f"{_figure(step['clips_per_s'])} clips/s | {where} |",
              f"| train FLOPs | {config['backbone']}, {config['clip']} clip, forward + "
              f"backward (counted) | {_figure(result['flops_per_clip'] / 1e9)} GFLOP | clip |"]

    planned = plan(result)
    data = planned["dataset"]
    lines += ["", f"Plan for Kinetics-400: {data['videos']:,} training clips of "
              f"{data['seconds']:g} s at {data['fps']:g} fps ({_figure(planned['frames'] / 1e6)}M "
              f"frames); {config['epochs']} epochs of one {config['num_clips']}-clip sample per "
              f"video ({_figure(planned['training_clips'] / 1e6)}M clips).", "",
              "| source -> store | store size | "
              + " | ".join(f"prepare on {m} cores" for m in PREPARE_CORES) + " |",
              "| --- | ---: | " + " | ".join("---:" for _ in PREPARE_CORES) + " |"]
    for key, stores in planned["prepare"].items():
        for store, figures in stores.items():
            lines.append(f"| {sources[key]['label']} -> {store} | {_size(figures['bytes'])} | "
                         + " | ".join(_hours(figures["hours"][m]) for m in PREPARE_CORES)
                         + " |")
    lines += ["", "| GPU | clips/s per GPU | loader workers per GPU (at least) | "
              + " | ".join(f"{n} GPU{'s' if n > 1 else ''}" for n in GPU_COUNTS)
              + " | basis |",
              "| --- | ---: | ---: | " + " | ".join("---:" for _ in GPU_COUNTS) + " | --- |"]
    for gpu in planned["gpus"]:
        lines.append(f"| {gpu['name']} | {_figure(gpu['clips_per_s'])} | "
                     f"{gpu['loader_workers']} | "
                     + " | ".join(_hours(gpu["hours"][n]) for n in GPU_COUNTS)
                     + f" | {gpu['basis']} |")
    return "\n".join(lines)


# --- the run ---------------------------------------------------------------------------


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str:
    """The repository's commit, marked when the work tree differs from it."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                                capture_output=True, text=True, check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                 cwd=root, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}{' (with uncommitted changes)' if changed else ''}"


def measure(config: Config, work: Path, *, videos: Path | None, footage: dict[str, Any],
            rounds: int, loader_samples: int, step_batch: int | None, step_steps: int,
            step_rounds: int, config_name: str, command: str) -> dict[str, Any]:
    """Every figure of the study, as a JSON-ready dict (the input of :func:`report`)."""
    load, commit = os.getloadavg(), _commit()  # as the run starts
    if videos is None:
        folders, sources = {}, {}
        for width, height in footage["sizes"]:
            written = write_footage(work / "footage" / f"{width}x{height}",
                                    size=(width, height), seconds=footage["seconds"],
                                    fps=footage["fps"], videos=footage["videos"],
                                    variant=footage["variant"])
            for codec, folder in written.items():
                key = f"{codec} {width}x{height}"
                folders[key] = folder
                sources[key] = {"label": f"{CODECS[codec].label}, {width}x{height}",
                                "codec": codec, "size": [width, height]}
        footage = {"source": "synthetic", **footage}
    else:
        folders = {"given": videos}
        sources = {"given": {"label": str(videos), "codec": None, "size": None}}
        footage = {"source": str(videos), "videos": len(VideoFolder(videos))}
    records = {name: list(VideoFolder(folder)) for name, folder in folders.items()}
    stores = {name: work / "stores" / name.replace(" ", "_") for name in records}
    pieces = {}  # (codec, "decode" or store) -> one timing; the round draws nothing here
    for name, found in records.items():
        pieces[name, "decode"] = lambda _, found=found: decode_seconds(found)
        for store, settings in STORES.items():
            pieces[name, store] = (lambda _, found=found, out=stores[name] / store,
                                   settings=settings: prepare_seconds(found, out, **settings))
    timings = fastest(pieces, rounds=rounds)
    decode, prepare = {}, {}
    for name, found in records.items():
        frames, _ = store_figures(found, stores[name] / DEFAULT_STORE)
        seconds = timings[name, "decode"]
        decode[name] = {"frames_per_s": frames / seconds, "videos_per_s": len(found) / seconds}
        prepare[name] = {}
        for store in STORES:
            frames, bytes_per_frame = store_figures(found, stores[name] / store)
            seconds = timings[name, store]
            prepare[name][store] = {"frames_per_s": frames / seconds,
                                    "videos_per_s": len(found) / seconds,
                                    "bytes_per_frame": bytes_per_frame}
    # The loader and the step read the stores of the plan's first source.
    name = plan_sources({"sources": sources})[0]
    datasets = {store: pretext_dataset(config, records[name], FrameStore(stores[name] / store))
                for store in (DEFAULT_STORE, RAW_STORE)}
    if not len(datasets[DEFAULT_STORE]):
        raise RuntimeError(f"no video is long enough for {config.clip.shape} clips at speeds "
                           f"{list(config.pretext.speeds)}: write longer footage")
    timings = fastest({store: partial(loader_seconds, dataset, samples=loader_samples)
                       for store, dataset in datasets.items()}, rounds=rounds)
    loader = {store: {"samples_per_s": loader_samples / seconds,
                      "clips_per_s": loader_samples * config.pretext.num_clips / seconds}
              for store, seconds in timings.items()}
    sample = datasets[DEFAULT_STORE][0]
    device = training_device_type(config)
    batch = step_batch or (config.optim.batch_size if device == "cuda" else 1)
    step_config = override_config(config, [
        "data.dataset=folder", f"data.videos={folders[name]}",
        f"data.store={stores[name] / DEFAULT_STORE}", "data.val_fraction=0", "data.workers=0",
        f"optim.batch_size={batch}"])
    step = step_rate(step_config, steps=step_steps, rounds=step_rounds,
                     warmup=1 if device == "cpu" else 3)
    return {
        "meta": {"date": datetime.date.today().isoformat(), "commit": commit,
                 "command": command, "machine": f"{_cpu_name()}, {os.cpu_count()} CPUs",
                 "torch": torch.__version__, "load_average": list(load),
                 "load_average_end": list(os.getloadavg())},
        "footage": footage, "sources": sources,
        "config": {"name": config_name, "backbone": config.model.backbone,
                   "clip": config.clip.shape, "num_clips": config.pretext.num_clips,
                   "epochs": config.trainer.max_epochs, "batch_size": config.optim.batch_size},
        "decode": decode, "prepare": prepare, "loader": loader, "step": step,
        "flops_per_clip": flops_per_clip(config, sample),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=CONFIG, help="the pretraining config to plan")
    parser.add_argument("--videos", type=Path, default=None,
                        help="measure these videos (class folders) instead of writing footage")
    parser.add_argument("--size", type=int, nargs=2, action="append", default=None,
                        metavar=("W", "H"),
                        help="footage frame size; repeat it to measure several (default: "
                             + " and ".join(f"{w}x{h}" for w, h in FOOTAGE["sizes"]) + ")")
    parser.add_argument("--seconds", type=float, default=FOOTAGE["seconds"],
                        help="footage length")
    parser.add_argument("--fps", type=int, default=FOOTAGE["fps"], help="footage frame rate")
    parser.add_argument("--videos-per-codec", type=int, default=FOOTAGE["videos"])
    parser.add_argument("--rounds", type=int, default=5, help="best of this many rounds")
    parser.add_argument("--loader-samples", type=int, default=40,
                        help="pretext samples per loader round")
    parser.add_argument("--step-batch", type=int, default=None,
                        help="samples per train step (default: the config's on a GPU, 1 on "
                             "the CPU)")
    parser.add_argument("--step-steps", type=int, default=None,
                        help="steps per train-step round (default: 10 on a GPU, 1 on the CPU)")
    parser.add_argument("--step-rounds", type=int, default=None,
                        help="train-step rounds (default: 3 on a GPU, 2 on the CPU)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--markdown", type=Path, default=None, metavar="JSON",
                        help="print the report of a --json file, measure nothing")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="overrides of the config")
    args = parser.parse_args(argv)
    if args.markdown is not None:
        print(report(json.loads(args.markdown.read_text())))
        return
    quiet_dependencies()  # as the CLI: the measurements, not the libraries' notices

    config = load_config(args.config, [*args.overrides, "trainer.progress_bar=false"])
    on_gpu = training_device_type(config) == "cuda"
    command = " ".join(["python benchmarks/scale.py", *(argv if argv is not None
                                                        else sys.argv[1:])])
    footage = {"sizes": [list(size) for size in args.size or FOOTAGE["sizes"]],
               "seconds": args.seconds, "fps": args.fps,
               "videos": args.videos_per_codec, "variant": FOOTAGE["variant"]}
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(config, Path(tmp), videos=args.videos, footage=footage,
                         rounds=args.rounds, loader_samples=args.loader_samples,
                         step_batch=args.step_batch,
                         step_steps=args.step_steps or (10 if on_gpu else 1),
                         step_rounds=args.step_rounds or (3 if on_gpu else 2),
                         config_name=args.config, command=command)
    if args.json is not None:
        write_json(args.json, result)
    print(report(result))


if __name__ == "__main__":
    main()
