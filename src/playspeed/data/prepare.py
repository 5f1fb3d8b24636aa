"""``playspeed prepare``: decode every video once into a frame store, in parallel, resumably.

Each worker decodes one video, resizes its frames and writes its ``.frames`` file under a
temporary name, renaming it into place only when complete; the main process then appends
the video to the store's journal. A killed run therefore leaves only finished videos
visible, and a rerun skips them (same settings, same bytes: the store ends up identical).
Unreadable videos are reported with their reason and do not stop the others.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
from tqdm import tqdm

from playspeed.data.datasets import (
    SINGLE_SPLIT,
    VideoFolder,
    VideoRecord,
    build_records,
    split_numbers,
)
from playspeed.data.store import (
    FORMATS,
    FRAMES_DIR,
    INDEX,
    JOURNAL,
    frames_path,
    load_index,
    write_frames,
    write_index,
)
from playspeed.data.video import DEFAULT_RESIZE, open_video, output_size, stream_fps, to_rgb
from playspeed.errors import PlayspeedError

REPORT = "prepare_report.json"


@dataclass
class PrepareReport:
    """What one ``prepare`` run did. ``failed``/``warnings`` entries: key, path, reason."""

    store: Path
    requested: int
    prepared: list[str] = field(default_factory=list)
    already_prepared: int = 0
    failed: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def num_warnings(self) -> int:
        return len(self.failed) + len(self.warnings) + len(self.missing)

    @property
    def available(self) -> int:
        """How many of the requested videos the store now holds."""
        return len(self.prepared) + self.already_prepared

    def to_json(self) -> dict:
        return {"store": str(self.store), "requested": self.requested,
                "prepared": len(self.prepared), "already_prepared": self.already_prepared,
                "failed": self.failed, "warnings": self.warnings, "missing": self.missing}


@dataclass(frozen=True)
class _Job:
    path: Path
    key: str
    dest: Path
    fmt: str
    quality: int
    resize: tuple[int, int] | None
    short_side: int | None


def records_to_prepare(dataset: str, *, videos: str | os.PathLike,
                       splits: str | os.PathLike | None = None,
                       list_file: str | os.PathLike | None = None,
                       skip_missing: bool = False) -> tuple[list[VideoRecord], list[str]]:
    """Every video a store for ``dataset`` needs, and the listed-but-missing ones.

    With ``splits``, the videos named by any of the official split files present there
    (UCF-101, HMDB-51: train, test and unused, all splits; Kinetics: train.csv and the
    validation CSV; SSv2: the train and validation JSONs; test lists without labels are
    not read), each checked to exist; without (UCF-101, HMDB-51, folder), every video found
    under ``videos``.
    """
    if dataset == "folder" or (splits is None and dataset not in SINGLE_SPLIT):
        return list(VideoFolder(videos, list_file=list_file)), []
    records: dict[str, VideoRecord] = {}
    missing: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reported once, below, as the run's warnings
        for split in split_numbers(dataset, splits) or [1]:
            subset = build_records(dataset, videos=videos, splits=splits, split=split,
                                   subset="all", skip_missing=skip_missing)
            for record in subset:
                records.setdefault(record.key, record)
            for message in subset.missing:
                missing.setdefault(message.split(": ", 1)[-1], message)
    return [records[key] for key in sorted(records)], list(missing.values())


def prepare_dataset(dataset: str, *, videos: str | os.PathLike, out: str | os.PathLike,
                    splits: str | os.PathLike | None = None,
                    list_file: str | os.PathLike | None = None, skip_missing: bool = False,
                    **options) -> PrepareReport:
    """``playspeed prepare``: :func:`records_to_prepare` then :func:`prepare_store`
    (``options``: its keyword arguments)."""
    records, missing = records_to_prepare(dataset, videos=videos, splits=splits,
                                          list_file=list_file, skip_missing=skip_missing)
    if not records:
        raise PlayspeedError(f"{videos}: no videos to prepare")
    return prepare_store(records, out, missing=missing, **options)


def prepare_store(records: Sequence[VideoRecord], out: str | os.PathLike, *,
                  fmt: str = "jpeg", quality: int = 90,
                  resize: Sequence[int] | None = DEFAULT_RESIZE, short_side: int | None = None,
                  workers: int = 1, progress: bool = True, missing: Sequence[str] = (),
                  log: Callable[[str], None] | None = None) -> PrepareReport:
    """Decode ``records`` into the frame store ``out``; returns what was done.

    Frames are resized to ``resize`` (H, W), or to ``short_side`` keeping the aspect, and
    stored as JPEG (``quality``) or raw uint8. Videos already in the store are skipped;
    a store prepared with other settings is refused. ``log`` receives one line per
    problem as it happens; all of them also go to ``out/prepare_report.json``, written when
    the run completes (its presence marks a finished store).
    """
    if fmt not in FORMATS:
        raise PlayspeedError(f"store format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not 1 <= quality <= 100:
        raise PlayspeedError(f"JPEG quality must be in 1..100, got {quality}")
    if workers < 1:
        raise PlayspeedError(f"workers must be at least 1, got {workers}")
    root = Path(out)
    resize = None if short_side is not None or resize is None else tuple(int(v) for v in resize)
    settings = {"format": fmt, "quality": quality if fmt == "jpeg" else None,
                "resize": None if resize is None else list(resize), "short_side": short_side}
    done = _open_store(root, settings)
    # The report exists only once a run has finished, so it marks a complete store.
    (root / REPORT).unlink(missing_ok=True)

    unique = {record.key: record for record in records}
    todo = [unique[key] for key in sorted(unique)
            if key not in done or not frames_path(root, key).is_file()]
    report = PrepareReport(store=root, requested=len(unique),
                           already_prepared=len(unique) - len(todo), missing=list(missing))
    say = log or (lambda line: None)
    for message in report.missing:
        say(f"warning: {message}")
    jobs = [_Job(path=r.path, key=r.key, dest=frames_path(root, r.key), fmt=fmt,
                 quality=quality, resize=resize, short_side=short_side) for r in todo]
    try:
        with open(root / JOURNAL, "a", encoding="utf-8") as journal, \
                _Results(jobs, workers) as results:
            for result in tqdm(results, total=len(jobs), unit="video", disable=not progress,
                               desc="prepare"):
                key = result.pop("key")
                problem = result.pop("warning", None)
                if "error" in result:
                    report.failed.append({"key": key, "path": str(unique[key].path),
                                          "reason": result["error"]})
                    say(f"warning: {unique[key].path}: {result['error']} (not prepared)")
                    continue
                journal.write(json.dumps({"key": key, **result}, sort_keys=True) + "\n")
                journal.flush()
                done[key] = result
                report.prepared.append(key)
                if problem:
                    report.warnings.append({"key": key, "path": str(unique[key].path),
                                            "reason": problem})
                    say(f"warning: {unique[key].path}: {problem}")
    finally:
        # Fold the journal into index.json, also when interrupted, so that the index
        # alone describes the store whenever no run is in progress.
        write_index(root, settings, done)
        (root / JOURNAL).unlink(missing_ok=True)
    report.prepared.sort()
    (root / REPORT).write_text(json.dumps(report.to_json(), indent=1) + "\n", encoding="utf-8")
    return report


def _open_store(root: Path, settings: dict) -> dict[str, dict]:
    """The videos already in the store at ``root``, creating it if need be."""
    if (root / INDEX).is_file():
        existing, done = load_index(root)
        theirs = {k: existing.get(k) for k in settings}
        if theirs != settings:
            raise PlayspeedError(
                f"{root}: store was prepared with {_describe(theirs)}, this run asks for "
                f"{_describe(settings)}; use another --out or the same settings")
    else:
        if root.exists() and any(root.iterdir()):
            raise PlayspeedError(f"{root}: exists and is not a frame store; choose an empty "
                                 "or new --out folder")
        root.mkdir(parents=True, exist_ok=True)
        write_index(root, settings, {})
        done = {}
    # Temporary files of a killed run: never part of the store, safe to drop.
    for stale in (root / FRAMES_DIR).rglob(".*.tmp") if (root / FRAMES_DIR).is_dir() else ():
        stale.unlink(missing_ok=True)
    return done


def _describe(settings: dict) -> str:
    size = (f"short side {settings['short_side']}" if settings.get("short_side")
            else "size {}x{}".format(*(settings.get("resize") or ("?", "?"))))
    quality = f" quality {settings['quality']}" if settings.get("format") == "jpeg" else ""
    return f"format {settings.get('format')}{quality}, {size}"


class _Results:
    """Results of ``_prepare_one`` over ``jobs``, in this process or a spawn pool."""

    def __init__(self, jobs: list[_Job], workers: int) -> None:
        self.jobs, self.workers, self.pool = jobs, min(workers, max(1, len(jobs))), None

    def __enter__(self):
        if self.workers == 1:
            return map(_prepare_one, self.jobs)
        # spawn: a forked child could inherit locked OpenMP/torch thread state.
        self.pool = multiprocessing.get_context("spawn").Pool(self.workers)
        return self.pool.imap_unordered(_prepare_one, self.jobs)

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


def _prepare_one(job: _Job) -> dict:
    """Decode, resize and store one video; a dict of its index entry or of its error."""
    try:
        with open_video(job.path) as (container, stream):
            size = output_size(stream.height, stream.width, resize=job.resize,
                               short_side=job.short_side)
            declared, fps = stream.frames, stream_fps(stream)
            frames = (to_rgb(frame, size) for frame in container.decode(stream))
            count, height, width = write_frames(job.dest, frames, fmt=job.fmt,
                                                quality=job.quality)
    except PlayspeedError as err:
        return {"key": job.key, "error": str(err).removeprefix(f"{job.path}: ")}
    except av.FFmpegError as err:
        return {"key": job.key, "error": f"cannot decode ({err.strerror or err})"}
    except ValueError as err:  # write_frames: nothing decoded, or the frame size changed
        reason = "no frames decoded (empty video)" if str(err) == "no frames" else str(err)
        return {"key": job.key, "error": reason}
    except OSError as err:
        return {"key": job.key, "error": f"cannot read or write ({err})"}
    entry = {"key": job.key, "num_frames": count, "fps": round(fps, 6), "height": height,
             "width": width}
    if declared > 1 and count < declared - 1:
        entry["warning"] = (f"decoded {count} of the {declared} frames the file declares "
                            "(truncated?); prepared what was readable")
    return entry
