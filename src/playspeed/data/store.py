"""The frame store: every frame of every video, decoded once, readable in any order.

Layout of a store directory::

    index.json            format, frame size rule, and per video: num_frames, fps, height, width
    index.jsonl           videos finished by a run still in progress (merged into index.json
                          when the run ends; absent otherwise)
    index.shard-I-of-N.jsonl  the same for shard I of a sharded run (``prepare --shard I/N``),
                          one journal per shard so that no two machines write one file;
                          merged into index.json when the last shard finishes
    frames/<key>.frames   one file per video: all its frames and an offset table
    prepare_report.json   what the last completed ``prepare`` did, every unreadable or
                          missing video and why (absent while a run is unfinished)
    prepare_report.shard-I-of-N.json  what shard I did; written when it finishes, so it
                          marks a finished shard (``playspeed.data.prepare``)

Only a merge writes ``index.json`` (atomically); a reader takes it plus every journal, so
a store is readable at any moment, also while shards on several machines fill it.

A ``.frames`` file is a 32-byte header (magic, format, T, H, W, offset of the table),
the frames one after the other (JPEG images, or raw ``H x W x 3`` uint8), then ``T + 1``
little-endian uint64 byte offsets: frame ``i`` is ``bytes[offsets[i]:offsets[i + 1]]``.
Reading ``k`` JPEG frames is two small reads for the table plus ``k`` reads, never a decode
of the frames in between; a raw file is mapped and its ``k`` frames gathered in one copy.

Format, by measurement (``benchmarks/loader.py``: 171x128 frames of 320x240 synthetic
videos, 16-frame clips at speeds 1-8, one core): raw frames take 66 kB each and serve
~5000 clips/s, but all of UCF-101 (~2.5 M frames) would need ~160 GB; JPEG (quality 90,
4:2:0) takes ~4-5 kB a frame here (real footage: ~10x smaller than raw) and serves ~1000
clips/s, against ~25-65 clips/s for decoding the whole video per clip. JPEG is the
default; ``raw`` is there for the fastest reads where disk is plentiful.
"""

from __future__ import annotations

import json
import mmap
import os
import socket
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import simplejpeg
import torch

from playspeed.data.records import VideoRecord
from playspeed.errors import PlayspeedError

FORMATS = ("jpeg", "raw")
INDEX = "index.json"
JOURNAL = "index.jsonl"
SHARD_JOURNALS = "index.shard-*-of-*.jsonl"  # glob of shard_journal()
FRAMES_DIR = "frames"
SUFFIX = ".frames"
STORE_VERSION = 1
_TMP = ".tmp"
_READ_ATTEMPTS = 5  # load_index's tries: merges are rare and quick, one retry nearly always does

_MAGIC = b"PSFRAMES"
_HEADER = struct.Struct("<8sIIIIQ")  # magic, format code, T, H, W, offset of the offset table
_FORMAT_CODES = {name: code for code, name in enumerate(FORMATS)}


def shard_journal(shard: int, num_shards: int) -> str:
    """The journal file name of shard ``shard`` (0-based) of ``num_shards``."""
    return f"index.shard-{shard}-of-{num_shards}.jsonl"


def frames_path(root: str | os.PathLike, key: str) -> Path:
    """Where the frames of the video with store key ``key`` live."""
    return Path(root) / FRAMES_DIR / (key + SUFFIX)


def temporary_files(root: str | os.PathLike) -> dict[Path, str]:
    """The unfinished ``.frames`` files of killed runs (:func:`write_frames` names them
    ``.<name>.frames.<pid>.tmp``): path -> the store key of its video."""
    frames = Path(root) / FRAMES_DIR
    if not frames.is_dir():
        return {}
    found = {}
    for path in frames.rglob(f".*{SUFFIX}.*{_TMP}"):
        name = path.name[1:].rsplit(".", 2)[0]  # drop the dot, the pid and .tmp
        found[path] = (path.parent / name).relative_to(frames).as_posix()[: -len(SUFFIX)]
    return found


def write_frames(path: str | os.PathLike, frames: Iterable[np.ndarray], *, fmt: str = "jpeg",
                 quality: int = 90) -> tuple[int, int, int]:
    """Write ``H x W x 3`` uint8 RGB frames to a ``.frames`` file; returns (T, H, W).

    Streams to disk (a long video never sits in memory whole). The file appears at ``path``
    only once complete: it is written next to it under a temporary name, then renamed.
    Raises ValueError when ``frames`` is empty or the frame size changes.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{_TMP}")
    offsets, shape = [_HEADER.size], None
    try:
        with open(tmp, "wb") as out:
            out.write(bytes(_HEADER.size))  # the header is filled in once T is known
            for frame in frames:
                if shape is None:
                    shape = frame.shape
                elif frame.shape != shape:
                    raise ValueError(f"frame size changed from {shape} to {frame.shape}")
                if fmt == "jpeg":
                    # 4:2:0 chroma, as in the source videos: decodes ~1.8x faster than
                    # 4:4:4 and is 30% smaller, losing colour detail the video never had.
                    data = simplejpeg.encode_jpeg(np.ascontiguousarray(frame), quality=quality,
                                                  colorspace="RGB", colorsubsampling="420")
                else:
                    data = np.ascontiguousarray(frame, dtype=np.uint8).tobytes()
                out.write(data)
                offsets.append(offsets[-1] + len(data))
            if shape is None:
                raise ValueError("no frames")
            out.write(np.asarray(offsets, dtype="<u8").tobytes())
            out.seek(0)
            out.write(_HEADER.pack(_MAGIC, _FORMAT_CODES[fmt], len(offsets) - 1, shape[0],
                                   shape[1], offsets[-1]))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return len(offsets) - 1, shape[0], shape[1]


def read_frames(path: str | os.PathLike, frame_indices: Sequence[int]) -> np.ndarray:
    """Frames ``frame_indices`` (any order, repeats allowed) of a ``.frames`` file as
    uint8 ``T x H x W x 3``; each distinct frame is read and decoded once."""
    wanted = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
    if wanted.size == 0:
        raise ValueError("frame_indices is empty")
    fd = os.open(path, os.O_RDONLY)
    try:
        magic, code, count, height, width, table = _HEADER.unpack(
            os.pread(fd, _HEADER.size, 0))
        if magic != _MAGIC or code >= len(FORMATS):
            raise PlayspeedError(f"{path}: not a playspeed frames file")
        if wanted.min() < 0 or wanted.max() >= count:
            raise IndexError(f"{path}: frame indices must lie in [0, {count}), got "
                             f"{int(wanted.min())}..{int(wanted.max())}")
        if FORMATS[code] == "raw":
            return _gather_raw(fd, path, wanted, count=count, height=height, width=width,
                               table=table)
        offsets = np.frombuffer(os.pread(fd, 8 * (count + 1), table), dtype="<u8")
        unique, inverse = np.unique(wanted, return_inverse=True)
        out = np.empty((len(unique), height, width, 3), dtype=np.uint8)
        for row, i in enumerate(unique.tolist()):
            start, end = int(offsets[i]), int(offsets[i + 1])
            simplejpeg.decode_jpeg(os.pread(fd, end - start, start), colorspace="RGB",
                                   buffer=out[row])
    finally:
        os.close(fd)
    return out if np.array_equal(unique, wanted) else out[inverse]


def _gather_raw(fd: int, path: str | os.PathLike, wanted: np.ndarray, *, count: int,
                height: int, width: int, table: int) -> np.ndarray:
    """Frames ``wanted`` of a raw ``.frames`` file open as ``fd``, ``uint8 len(wanted) x H x
    W x 3``. Raw frames have one size, so the file is mapped and the frames gathered in one
    copy (a read per frame cost more than the copying at small frame sizes)."""
    frame_bytes = height * width * 3
    if table != _HEADER.size + count * frame_bytes or os.fstat(fd).st_size < table:
        raise PlayspeedError(f"{path}: damaged raw frames file (its header promises {count} "
                             f"frames of {height}x{width}; cut short or overwritten?)")
    with mmap.mmap(fd, table, access=mmap.ACCESS_READ) as mapped:
        frames = np.frombuffer(mapped, dtype=np.uint8, count=count * frame_bytes,
                               offset=_HEADER.size).reshape(count, height, width, 3)
        out = frames.take(wanted, axis=0)
        del frames  # the map cannot close while an array views it
    return out


def load_index(root: str | os.PathLike) -> tuple[dict, dict[str, dict]]:
    """A store's settings and its videos (key -> num_frames, fps, height, width).

    Videos that unfinished ``prepare`` runs or shards completed (the journals) count too;
    a line cut short by a killed run is ignored, its video simply gets prepared again.
    A merge that replaces index.json and then drops the journals while this reads is
    noticed (index.json changed underneath) and read again.
    """
    root = Path(root)
    for _ in range(_READ_ATTEMPTS):
        before = _identity(root / INDEX)
        index = _read_index(root)
        videos = dict(index.pop("videos", {}))
        for journal in [root / JOURNAL, *sorted(root.glob(SHARD_JOURNALS))]:
            videos.update(_read_journal(journal))
        if _identity(root / INDEX) == before:
            break
    return index, videos


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _read_index(root: Path) -> dict:
    try:
        with open(root / INDEX, encoding="utf-8") as handle:
            index = json.load(handle)
    except FileNotFoundError:
        raise PlayspeedError(f"{root}: not a frame store (no {INDEX}); build one with "
                             "'playspeed prepare'") from None
    except json.JSONDecodeError as err:
        raise PlayspeedError(f"{root / INDEX}: unreadable ({err})") from None
    if index.get("version") != STORE_VERSION:
        raise PlayspeedError(f"{root / INDEX}: store version {index.get('version')!r}, "
                             f"this playspeed reads version {STORE_VERSION}")
    return index


def _read_journal(path: Path) -> dict[str, dict]:
    """The entries of one journal (none if it is gone: merged meanwhile)."""
    videos = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                videos[entry.pop("key")] = entry
    except FileNotFoundError:
        pass
    return videos


def write_index(root: str | os.PathLike, settings: dict, videos: dict[str, dict], *,
                create: bool = False) -> None:
    """Write ``index.json`` atomically: sorted keys, so equal stores have equal indexes.

    ``create``: only if there is none yet (shards starting together on a new store); the
    one that comes second keeps the first one's.
    """
    root = Path(root)
    body = {**settings, "version": STORE_VERSION, "videos": dict(sorted(videos.items()))}
    # Host and process in the name: machines sharing the store never share a temporary file.
    tmp = root / f".{INDEX}.{socket.gethostname()}.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        if create:
            try:
                os.link(tmp, root / INDEX)  # atomic "create if absent", also over NFS
            except FileExistsError:
                pass
        else:
            os.replace(tmp, root / INDEX)
    finally:
        tmp.unlink(missing_ok=True)


class FrameStore:
    """Frame source over a prepared store directory.

    ``read(record, frame_indices)`` returns uint8 ``T x H x W x C`` (RGB) in the given
    order. Picklable and fork-safe: no file stays open between reads.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.settings, self._videos = load_index(self.path)

    def __repr__(self) -> str:
        return (f"FrameStore({str(self.path)!r}, {len(self)} videos, "
                f"format={self.settings.get('format')!r})")

    def __len__(self) -> int:
        return len(self._videos)

    def __contains__(self, record: VideoRecord | str) -> bool:
        return _key(record) in self._videos

    def keys(self) -> list[str]:
        return sorted(self._videos)

    def info(self, record: VideoRecord | str) -> dict:
        """``{"num_frames", "fps", "height", "width"}`` of a stored video."""
        key = _key(record)
        try:
            return self._videos[key]
        except KeyError:
            raise PlayspeedError(f"{self.path}: no video {key!r} in this store (prepare it "
                                 "with 'playspeed prepare')") from None

    def num_frames(self, record: VideoRecord | str) -> int:
        return int(self.info(record)["num_frames"])

    def fps(self, record: VideoRecord | str) -> float:
        return float(self.info(record)["fps"])

    def read(self, record: VideoRecord | str, frame_indices: Sequence[int]) -> torch.Tensor:
        """Frames ``frame_indices`` of one video as uint8 ``T x H x W x C``."""
        self.info(record)
        return torch.from_numpy(read_frames(frames_path(self.path, _key(record)), frame_indices))


def _key(record: VideoRecord | str) -> str:
    return record if isinstance(record, str) else record.key
