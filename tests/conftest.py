"""Shared fixtures: coded in-memory videos, a tiny synthetic dataset and its frame store,
and tiny run configs. Small thread counts keep the suite fast and steady on 2 cores."""

from pathlib import Path

import numpy as np
import pytest
import torch

from playspeed.data.datasets import VideoRecord

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _restore_dependency_loggers():
    """The CLI quiets the framework's loggers for the process; a test leaves them as found
    (pytest already restores the warning filters)."""
    import logging

    from playspeed.console import NOTICE_LOGGERS

    levels = {name: logging.getLogger(name).level for name in NOTICE_LOGGERS}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


# --- coded in-memory videos for the sampling and dataset tests ---


class CodedVideos:
    """In-memory frame source whose pixels say where they come from.

    Frame ``i`` of every video has red ``= i`` everywhere (so videos hold at most 256
    frames), green ``=`` its column and blue ``=`` its row: any crop, flip or resize keeps
    the red code readable and shows in green/blue. Same interface as ``FrameStore``.
    """

    def __init__(self, lengths, *, height=24, width=32):
        self.lengths = dict(lengths)
        self.height, self.width = height, width
        self.reads = []  # every read: (key, list of frame indices)

    def num_frames(self, record):
        return self.lengths[record.key]

    def fps(self, record):
        return 25.0

    def read(self, record, frame_indices):
        indices = np.asarray(frame_indices, dtype=np.int64)
        assert indices.min() >= 0 and indices.max() < self.lengths[record.key], indices
        self.reads.append((record.key, indices.tolist()))
        frames = np.empty((len(indices), self.height, self.width, 3), dtype=np.uint8)
        frames[..., 0] = indices[:, None, None]
        frames[..., 1] = np.arange(self.width)[None, None, :]
        frames[..., 2] = np.arange(self.height)[None, :, None]
        return torch.from_numpy(frames)


@pytest.fixture
def coded_videos():
    """``make(lengths, labels=None) -> (records, source)``: one record per entry of
    ``lengths`` (frame counts), keys ``c0/v0.avi``, ``c1/v1.avi``, ..."""
    def make(lengths, labels=None, **source_kwargs):
        labels = labels if labels is not None else [i % 3 for i in range(len(lengths))]
        records = [VideoRecord(path=Path("/videos", key), label=label, key=key)
                   for key, label in ((f"c{i}/v{i}.avi", lab) for i, lab in enumerate(labels))]
        source = CodedVideos({r.key: n for r, n in zip(records, lengths, strict=True)},
                             **source_kwargs)
        return records, source

    return make


# --- tiny encoded videos: a synthetic UCF-101-layout dataset and its frame store ---


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """A tiny synthetic dataset in the UCF-101 layout: 3 classes x 4 videos (4 groups),
    40 frames of 64x48 at 25 fps. Read-only: copy it before changing anything."""
    from playspeed.data.synthetic import write_dataset

    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, num_classes=3, videos_per_class=4, size=(64, 48), frames=40)
    return root


@pytest.fixture(scope="session")
def synth_store(synth_root, tmp_path_factory):
    """``synth_root`` prepared into a JPEG frame store (128x171 frames). Read-only."""
    from playspeed.data.prepare import prepare_dataset

    out = tmp_path_factory.mktemp("store") / "store"
    prepare_dataset("ucf101", videos=synth_root / "UCF-101", splits=synth_root / "ucfTrainTestlist",
                    out=out, progress=False)
    return out


# --- tiny run configs for the training, evaluation and demo tests ---

TINY_OVERRIDES = (
    "data.workers=0", "data.val_fraction=0.34", "clip.len=8", "clip.size=32",
    "clip.resize=[40,53]", "clip.test_clips=2", "model.width=0.125", "pretext.speeds=[1,2,4]",
    "optim.batch_size=3", "optim.warmup_epochs=0", "trainer.max_epochs=2",
    "trainer.progress_bar=false", "trainer.precision=32-true",
    "trainer.memory_format=contiguous", "trainer.log_every_n_steps=1",
    "trainer.check_val_every_n_epoch=2",
)


@pytest.fixture(scope="session")
def tiny_overrides(synth_root, synth_store):
    """Overrides that point the synthetic CPU configs at ``synth_root`` / ``synth_store``
    and shrink them to run in seconds."""
    return [f"data.videos={synth_root / 'UCF-101'}",
            f"data.splits={synth_root / 'ucfTrainTestlist'}", f"data.store={synth_store}",
            *TINY_OVERRIDES]


@pytest.fixture(scope="session")
def tiny_config(tiny_overrides):
    """``tiny_config(kind, *overrides)``: the tiny ``kind`` ("pretrain" | "finetune") config."""
    from playspeed.config import load_config

    def make(kind: str, *overrides: str):
        return load_config(f"{kind}/synthetic_cpu", [*tiny_overrides, *overrides])

    return make


# --- tiny checkpoints for the retrieval, features, probe and speed tests (issue 6) ---


@pytest.fixture(scope="session")
def tiny_pretrain_ckpt(tiny_config, tmp_path_factory):
    """A classify pretrain checkpoint of the tiny config (trained for a few steps)."""
    from playspeed.tasks.pretext import pretrain

    out = tmp_path_factory.mktemp("tiny_pretrain")
    pretrain(tiny_config("pretrain", "trainer.max_epochs=1"), out)
    return out / "checkpoints" / "last.ckpt"


def save_untrained_checkpoint(config, path, *, task="pretrain", change=None, **extra):
    """A checkpoint of a freshly initialised task module, as training would store it
    (``hyper_parameters`` with the config and task, and the ``state_dict``); ``change(module)``
    may alter the module first."""
    from playspeed.config import config_to_dict

    if task == "pretrain":
        from playspeed.tasks.pretext import PlaybackSpeedPretraining as Module
    else:
        from playspeed.tasks.finetune import ActionRecognition as Module
    module = Module(config, **extra)
    if change is not None:
        change(module)
    torch.save({"hyper_parameters": {"config": config_to_dict(config), "task": task, **extra},
                "state_dict": module.state_dict()}, path)
    return Path(path)


# --- stop signals during training (issue 30) ---


@pytest.fixture
def signal_at_step(monkeypatch):
    """``signal_at_step(step, signum=SIGTERM)``: training runs started from now on receive
    ``signum`` once global step ``step`` is done, before the next step starts (as from a
    scheduler, within the process); ``signal_at_step(None)`` stops sending it."""
    import signal

    import lightning as L

    import playspeed.tasks.trainer as trainer_module

    make_trainer = trainer_module.make_trainer

    def arm(step, signum=signal.SIGTERM):
        class Send(L.Callback):
            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                if trainer.global_step == step:
                    signal.raise_signal(signum)

        def make(*args, **kwargs):
            trainer = make_trainer(*args, **kwargs)
            trainer.callbacks.append(Send())
            return trainer

        monkeypatch.setattr(trainer_module, "make_trainer", make_trainer if step is None else make)

    return arm


@pytest.fixture(scope="session")
def assert_same_run():
    """``assert_same_run(straight, resumed)``: two run directories hold the same training:
    final weights, ``metrics.json`` (clips seen, validation, epoch means) and every logged
    value at every step."""
    return _assert_same_run


def _assert_same_run(straight, resumed):
    from playspeed.report import read_run_logs

    def weights(run):
        return torch.load(Path(run) / "checkpoints" / "last.ckpt",
                          weights_only=True)["state_dict"]

    first, second = weights(straight), weights(resumed)
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(second[key], first[key], rtol=0, atol=0, msg=key)
    assert (Path(resumed) / "metrics.json").read_text() == \
        (Path(straight) / "metrics.json").read_text()
    assert read_run_logs(resumed) == read_run_logs(straight)


# --- files written whole (issue 30) ---


@pytest.fixture
def renamed_into_place(monkeypatch):
    """The paths files were renamed onto during the test (``os.replace``: the last move of
    an atomic write, :mod:`playspeed.io`)."""
    import os

    renamed = []
    replace = os.replace

    def spy(source, target, *args, **kwargs):
        renamed.append(Path(target))
        return replace(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "replace", spy)
    return renamed


_KILLED_WHILE_WRITING = """
import os, signal, sys
from playspeed.cli import main
# The first atomic write dies with all its bytes written, before they are renamed into place.
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="session")
def killed_while_writing():
    """``killed_while_writing(argv)``: run ``playspeed argv`` in a new process that is
    killed (SIGKILL) in its first file write; returns its exit status."""
    import subprocess
    import sys

    def run(argv):
        return subprocess.run([sys.executable, "-c", _KILLED_WHILE_WRITING, *map(str, argv)],
                              capture_output=True, timeout=300).returncode

    return run


@pytest.fixture(scope="session")
def untrained_checkpoint():
    """:func:`save_untrained_checkpoint`, for tests outside this file."""
    return save_untrained_checkpoint


@pytest.fixture(scope="session")
def tiny_settings():
    """:data:`TINY_OVERRIDES` alone (no dataset): the tiny sizes for a run on any data."""
    return list(TINY_OVERRIDES)


# --- tiny Kinetics- and SSv2-format datasets of real encoded videos (issue 29) ---

#: Kinetics labels (spaces, brackets, an apostrophe, as in the real ones) -> the synthetic
#: motion their clips show.
KINETICS_CLASSES = {"air drumming": "MoveLeft", "massaging person's head": "Grow",
                    "passing American football (in game)": "MoveRight"}
#: SSv2 templates (placeholders in brackets; one with commas, as in the real ones) -> motion.
SSV2_TEMPLATES = {"Pushing [something] from left to right": "MoveRight",
                  "Pushing [something] from right to left": "MoveLeft",
                  "Putting [something], [something] and [something] on the table": "Grow"}
TINY_VIDEO = {"size": (64, 48), "frames": 40}  # W x H, frames: enough for 8-frame clips at 4x


def _write_tiny_video(path, motion, seed, *, codec, options):
    """A 40-frame 64x48 synthetic video of ``motion``, encoded with ``codec``."""
    from playspeed.data.synthetic import draw_look, render
    from playspeed.data.video import write_video

    rng = np.random.default_rng(seed)
    look = draw_look(rng, TINY_VIDEO["size"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, render(motion, look=look, rng=rng, size=TINY_VIDEO["size"],
                             num_frames=TINY_VIDEO["frames"]), codec=codec, options=options)


def write_kinetics(root, *, train_per_class=4, val_per_class=2):
    """A Kinetics-400-format set under ``root`` in both folder layouts; returns its paths.

    ``annotations/train.csv`` (Kinetics-400's header with ``is_cc``, labels quoted),
    ``annotations/validate.csv`` (Kinetics-700's header, split "validate") and
    ``annotations/test.csv`` (no labels); H.264 clips ``<youtube_id>_<start:06d>_<end:06d>.mp4``
    in ``videos/train/<label, spaces as underscores>/`` (class folders, as mmaction2 renames
    them) and flat in ``videos/val/`` (as CVDF ships them). Each of train and validate lists
    one clip more that is not on disk (gone from YouTube): ``missing``.
    """
    root = Path(root)
    videos, annotations = root / "videos", root / "annotations"
    annotations.mkdir(parents=True, exist_ok=True)
    missing = []
    for split, per_class, csv_name in (("train", train_per_class, "train.csv"),
                                       ("validate", val_per_class, "validate.csv")):
        rows = []
        for label_index, (label, motion) in enumerate(sorted(KINETICS_CLASSES.items())):
            for clip in range(per_class):
                youtube_id = f"-{label_index}{split[0]}_{clip:07d}"  # 11 characters, '-' and '_'
                start = 10 * clip + 3
                name = f"{youtube_id}_{start:06d}_{start + 10:06d}.mp4"
                path = (videos / "train" / label.replace(" ", "_") / name if split == "train"
                        else videos / "val" / name)
                _write_tiny_video(path, motion, [label_index, clip, split == "train"],
                                  codec="libx264", options={"preset": "ultrafast"})
                rows.append([label, youtube_id, start, start + 10, split])
        rows.append([sorted(KINETICS_CLASSES)[0], f"gone{split[0]}_taken", 0, 10, split])
        missing.append(f"gone{split[0]}_taken_000000_000010.mp4")
        if split == "train":  # Kinetics-400 quotes the labels with spaces, adds is_cc
            lines = ["label,youtube_id,time_start,time_end,split,is_cc"] + [
                ",".join([f'"{row[0]}"' if " " in row[0] else row[0], *map(str, row[1:]), "0"])
                for row in rows]
        else:
            lines = ["label,youtube_id,time_start,time_end,split"] + [
                ",".join(map(str, row)) for row in rows]
        (annotations / csv_name).write_text("\n".join(lines) + "\n")
    (annotations / "test.csv").write_text("youtube_id,time_start,time_end,split\n"
                                          "testonly___,0,10,test\n")
    return {"videos": videos, "annotations": annotations, "missing": missing,
            "train": train_per_class * len(KINETICS_CLASSES),
            "test": val_per_class * len(KINETICS_CLASSES)}


def write_ssv2(root, *, train_per_class=4, val_per_class=2):
    """An SSv2-format set under ``root``; returns its paths.

    ``annotations/something-something-v2-{labels,train,validation,test}.json`` as
    released (labels: template -> index as a string; the split lists: ``id``, ``label``,
    ``template`` with bracketed placeholders, ``placeholders``; test: ``id`` only) and VP9
    videos ``20bn-something-something-v2/<id>.webm``. Train and validation each list one
    video more that is not on disk: ``missing``.
    """
    import json

    root = Path(root)
    videos, annotations = root / "20bn-something-something-v2", root / "annotations"
    annotations.mkdir(parents=True, exist_ok=True)
    templates = sorted(SSV2_TEMPLATES)
    labels = {t.replace("[", "").replace("]", ""): str(i) for i, t in enumerate(templates)}
    (annotations / "something-something-v2-labels.json").write_text(json.dumps(labels, indent=1))
    next_id, missing = 1, []
    for part, per_class in (("train", train_per_class), ("validation", val_per_class)):
        entries = []
        for index, template in enumerate(templates):
            for clip in range(per_class):
                things = ["a cup", "a pen", "a box"][: template.count("[something]")]
                filled = template
                for thing in things:
                    filled = filled.replace("[something]", thing, 1)
                entries.append({"id": str(next_id), "label": filled.lower(),
                                "template": template, "placeholders": things})
                _write_tiny_video(videos / f"{next_id}.webm", SSV2_TEMPLATES[template],
                                  [index, clip, part == "train", 7], codec="libvpx-vp9",
                                  options={"deadline": "realtime", "cpu-used": "8"})
                next_id += 1
        entries.append({"id": str(next_id), "label": "pushing a lid from left to right",
                        "template": templates[0], "placeholders": ["a lid"]})
        missing.append(f"{next_id}.webm")
        next_id += 1
        (annotations / f"something-something-v2-{part}.json").write_text(json.dumps(entries))
    (annotations / "something-something-v2-test.json").write_text(json.dumps([{"id": "999"}]))
    return {"videos": videos, "annotations": annotations, "missing": missing,
            "train": train_per_class * len(templates), "test": val_per_class * len(templates)}


@pytest.fixture(scope="session")
def kinetics_root(tmp_path_factory):
    """:func:`write_kinetics` into a session folder. Read-only: copy it to change it."""
    return write_kinetics(tmp_path_factory.mktemp("kinetics"))


@pytest.fixture(scope="session")
def ssv2_root(tmp_path_factory):
    """:func:`write_ssv2` into a session folder. Read-only: copy it to change it."""
    return write_ssv2(tmp_path_factory.mktemp("ssv2"))
