"""Per-video features: shapes, the weight-keyed cache, and ``extract`` over any videos,
including unreadable ones, its output written whole or not at all."""

import shutil
import signal

import numpy as np
import pytest
import torch

import playspeed.tasks.features as features_module
from playspeed.cli import main
from playspeed.data import RawVideos
from playspeed.errors import PlayspeedError
from playspeed.tasks.base import backbone_from_config
from playspeed.tasks.data import build_source, load_records
from playspeed.tasks.features import (
    FeatureCache,
    cached_video_features,
    clip_feature,
    extract,
    video_features,
    videos_to_extract,
)


@pytest.fixture
def tiny_backbone(tiny_config):
    torch.manual_seed(0)
    config = tiny_config("pretrain")
    return backbone_from_config(config).eval(), config


def test_clip_feature_shapes(tiny_backbone):
    backbone, config = tiny_backbone
    clips = torch.randn(2, 3, config.clip.len, config.clip.size, config.clip.size)
    with torch.no_grad():
        feature_map = backbone.forward_features(clips)
        maxpooled = clip_feature(backbone, clips, pooling="maxpool")
        pooled = clip_feature(backbone, clips, pooling="pooled")
    channels, frames, height, width = feature_map.shape[1:]
    # max-pool (1, 2, 2) with ceil: odd sizes keep their last row/column
    assert maxpooled.shape == (2, channels * frames * -(-height // 2) * -(-width // 2))
    assert pooled.shape == (2, backbone.feature_dim)


def test_video_features_keep_every_video_in_order(tiny_backbone):
    backbone, config = tiny_backbone
    records = load_records(config, "train")  # 9 videos in batches of 3, then of 4
    source = build_source(config)
    features, labels = video_features(backbone, records, source, config, num_clips=2,
                                      pooling="pooled")
    assert features.shape == (9, backbone.feature_dim)
    assert labels.tolist() == [r.label for r in records]
    from playspeed.config import override_config

    again, _ = video_features(backbone, records, source,
                              override_config(config, ["optim.batch_size=4"]), num_clips=2,
                              pooling="pooled")
    torch.testing.assert_close(again, features, rtol=1e-4, atol=1e-5)


def test_feature_cache_is_reused_only_when_nothing_changed(tiny_backbone, tmp_path, monkeypatch):
    backbone, config = tiny_backbone
    calls = []
    real = features_module.video_features

    def counting(*args, **kwargs):
        calls.append(kwargs["pooling"])
        return real(*args, **kwargs)

    monkeypatch.setattr(features_module, "video_features", counting)
    records = load_records(config, "test")
    source = build_source(config)
    cache = FeatureCache(tmp_path / "cache")

    def run(model=backbone, cfg=config, videos=records, pooling="pooled", num_clips=2):
        return cached_video_features(model, videos, source, cfg, num_clips=num_clips,
                                     pooling=pooling, cache=cache)

    first, labels = run()
    second, labels_again = run()  # same weights, settings and videos: served from the cache
    assert len(calls) == 1
    assert torch.equal(first, second) and torch.equal(labels, labels_again)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1

    # A fresh cache object over the same folder (another run) finds them too.
    cache = FeatureCache(tmp_path / "cache")
    run()
    assert len(calls) == 1

    changed = backbone_from_config(config).eval()
    changed.load_state_dict(backbone.state_dict())
    run(model=changed)  # an identical copy of the weights: still cached
    assert len(calls) == 1
    with torch.no_grad():
        next(changed.parameters()).add_(1e-3)  # changed weights: never the old features
    stale_check, _ = run(model=changed)
    assert len(calls) == 2 and not torch.equal(stale_check, first)
    with torch.no_grad():  # a changed buffer (running statistics) counts as a change too
        next(b for n, b in changed.named_buffers() if "running" in n).add_(1.0)
    run(model=changed)
    assert len(calls) == 3

    from playspeed.config import override_config

    run(pooling="maxpool")
    run(num_clips=3)
    run(cfg=override_config(config, ["clip.size=24"]))
    run(cfg=override_config(config, ["trainer.precision=bf16-mixed"]))
    run(videos=records[:2])
    assert len(calls) == 8
    run(cfg=override_config(config, ["optim.batch_size=2"]))  # batching changes nothing
    assert len(calls) == 8


def _write_corrupt_folder(synth_root, folder):
    """Good videos in two class folders and at the root, next to unreadable files."""
    videos = synth_root / "UCF-101"
    good = []
    for name in sorted(p.name for p in videos.iterdir())[:2]:
        (folder / name).mkdir(parents=True)
        for path in sorted((videos / name).glob("*.avi"))[:2]:
            shutil.copy(path, folder / name / path.name)
            good.append(folder / name / path.name)
    loose = next(videos.rglob("*.avi"))
    shutil.copy(loose, folder / "loose.avi")
    good.append(folder / "loose.avi")
    data = loose.read_bytes()
    corrupt = {
        folder / "garbage.avi": np.random.default_rng(0).bytes(4000),  # not a video at all
        folder / "empty.avi": b"",
        folder / good[0].parent.name / "header_only.avi": data[:600],  # cut in the header
    }
    for path, content in corrupt.items():
        path.write_bytes(content)
    return good, list(corrupt)


def test_extract_reports_unreadable_videos_and_extracts_the_others(
        tiny_pretrain_ckpt, synth_root, tmp_path):
    folder = tmp_path / "videos"
    good, corrupt = _write_corrupt_folder(synth_root, folder)
    logged = []
    out = tmp_path / "features.npz"
    summary = extract(tiny_pretrain_ckpt, videos=folder, out=out, log=logged.append,
                      overrides=["data.workers=2", "optim.batch_size=2"])
    assert summary["num_videos"] == len(good) and summary["num_failed"] == len(corrupt)
    assert sorted(path for path, _ in summary["failed"]) == sorted(map(str, corrupt))
    assert len(logged) == len(corrupt)
    assert all(line.startswith("warning: ") and "skipped" in line for line in logged)
    with np.load(out) as stored:
        assert stored["features"].shape[0] == len(stored["paths"]) == len(stored["labels"])
        assert sorted(stored["paths"].tolist()) == sorted(map(str, good))
        assert np.isfinite(stored["features"]).all()
        classes = stored["classes"].tolist()
        by_path = dict(zip(stored["paths"].tolist(), stored["labels"].tolist(), strict=True))
    assert by_path[str(folder / "loose.avi")] == -1  # no class folder
    for path in good[:-1]:
        assert classes[by_path[str(path)]] == path.parent.name


def test_extract_skips_a_video_that_fails_while_decoding(tiny_pretrain_ckpt, synth_root,
                                                         tmp_path, monkeypatch):
    """A file that opens but whose frames fail to decode is skipped like an unreadable one."""
    folder = tmp_path / "videos"
    good, corrupt = _write_corrupt_folder(synth_root, folder)
    for path in corrupt:
        path.unlink()
    broken = good[1]
    read = RawVideos.read

    def failing_read(self, record, frame_indices):
        if record.path == broken:
            raise PlayspeedError(f"{record.path}: cannot decode (test)")
        return read(self, record, frame_indices)

    monkeypatch.setattr(RawVideos, "read", failing_read)
    logged = []
    summary = extract(tiny_pretrain_ckpt, videos=folder, out=tmp_path / "f.npz",
                      log=logged.append)
    assert summary["failed"] == [(str(broken), f"{broken}: cannot decode (test)")]
    with np.load(tmp_path / "f.npz") as stored:
        assert sorted(stored["paths"].tolist()) == sorted(str(p) for p in good if p != broken)
        assert len(stored["features"]) == len(good) - 1


def test_extract_does_not_hide_a_programming_error(tiny_pretrain_ckpt, synth_root, tmp_path,
                                                   monkeypatch):
    """Only decode and I/O errors make a video 'unreadable'; a bug (here a TypeError in the
    frame source) stops the run with its traceback instead of skipping every video."""
    folder = tmp_path / "videos"
    _write_corrupt_folder(synth_root, folder)

    def broken_read(self, record, frame_indices):
        raise TypeError("a bug, not a bad video")

    monkeypatch.setattr(RawVideos, "read", broken_read)
    with pytest.raises(TypeError, match="a bug"):
        extract(tiny_pretrain_ckpt, videos=folder, out=tmp_path / "f.npz", log=lambda line: None)
    assert not (tmp_path / "f.npz").exists()


def test_extract_from_a_list_file_matches_the_folder(tiny_pretrain_ckpt, synth_root, tmp_path):
    folder = tmp_path / "videos"
    good, corrupt = _write_corrupt_folder(synth_root, folder)
    listing = folder / "list.txt"
    listing.write_text(f"\n{good[1].relative_to(folder)}\n{good[0]}\n")
    records = videos_to_extract(listing)
    assert [r.path for r in records] == [good[1], good[0]]
    extract(tiny_pretrain_ckpt, videos=listing, out=tmp_path / "list.npz")
    extract(tiny_pretrain_ckpt, videos=folder, out=tmp_path / "all.npz", log=lambda _: None)
    with np.load(tmp_path / "list.npz") as listed, np.load(tmp_path / "all.npz") as everything:
        rows = {p: i for i, p in enumerate(everything["paths"].tolist())}
        assert listed["paths"].tolist() == [str(good[1]), str(good[0])]
        assert listed["labels"].tolist() == [-1, -1]  # a list names no classes
        for i, path in enumerate(listed["paths"].tolist()):
            np.testing.assert_allclose(listed["features"][i], everything["features"][rows[path]],
                                       rtol=1e-4, atol=1e-5)


def test_extract_command(tiny_pretrain_ckpt, synth_root, tmp_path, capsys):
    folder = tmp_path / "videos"
    good, corrupt = _write_corrupt_folder(synth_root, folder)
    out = tmp_path / "out" / "features.npz"
    assert main(["extract", "--ckpt", str(tiny_pretrain_ckpt), "--videos", str(folder),
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"features of {len(good)} videos written to {out}" in captured.out
    assert f"{len(corrupt)} could not be read" in captured.out
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == len(corrupt) and all(w.startswith("warning: ") for w in warnings)
    assert sorted(w.split(": ")[1] for w in warnings) == sorted(map(str, corrupt))
    with np.load(out) as stored:
        assert len(stored["paths"]) == len(good)


@pytest.mark.parametrize("videos, message", [
    ("{tmp}/nowhere", "no such folder or list file"),
    ("{tmp}/only_corrupt", "none of the 2 videos could be read"),
    ("{tmp}/no_videos", "no video found"),
    ("{tmp}/bad_list.txt", "not found"),
])
def test_extract_command_errors(tiny_pretrain_ckpt, tmp_path, capsys, videos, message):
    (tmp_path / "only_corrupt").mkdir()
    (tmp_path / "only_corrupt" / "a.avi").write_bytes(b"not a video")
    (tmp_path / "only_corrupt" / "b.mp4").write_bytes(b"")
    (tmp_path / "no_videos").mkdir()
    (tmp_path / "no_videos" / "notes.txt").write_text("hello")
    (tmp_path / "bad_list.txt").write_text("missing.avi\n")
    code = main(["extract", "--ckpt", str(tiny_pretrain_ckpt), "--videos",
                 videos.format(tmp=tmp_path), "--out", str(tmp_path / "f.npz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and message in err[-1]
    assert not (tmp_path / "f.npz").exists()


def test_extract_command_missing_checkpoint(tmp_path, capsys):
    assert main(["extract", "--ckpt", str(tmp_path / "none.ckpt"), "--videos", str(tmp_path),
                 "--out", str(tmp_path / "f.npz")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'none.ckpt'}: no such checkpoint"



def test_extract_writes_its_output_whole(tiny_pretrain_ckpt, synth_root, tmp_path,
                                         renamed_into_place):
    folder = min((synth_root / "UCF-101").iterdir())
    extract(tiny_pretrain_ckpt, videos=folder, out=tmp_path / "f.npz", log=lambda line: None)
    assert renamed_into_place == [tmp_path / "f.npz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.npz"]  # no temporary file left


@pytest.mark.slow
def test_a_kill_during_extract_leaves_no_file_under_its_name(tiny_pretrain_ckpt, synth_root,
                                                             tmp_path, killed_while_writing):
    out = tmp_path / "f.npz"
    status = killed_while_writing(["extract", "--ckpt", tiny_pretrain_ckpt, "--videos",
                                   min((synth_root / "UCF-101").iterdir()), "--out", out])
    assert status == -signal.SIGKILL
    assert not out.exists()
