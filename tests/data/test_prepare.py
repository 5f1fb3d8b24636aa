import json
import shutil

import av
import pytest

import playspeed.data.prepare as prepare
from playspeed.cli import main
from playspeed.data.datasets import UCF101
from playspeed.data.prepare import REPORT, prepare_dataset, prepare_store, records_to_prepare
from playspeed.data.store import FRAMES_DIR, INDEX, JOURNAL, FrameStore, frames_path
from playspeed.errors import PlayspeedError


def _snapshot(root):
    """Every file of a store but the run report, as bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != REPORT}


def _ucf(synth_root, **kwargs):
    return dict(videos=synth_root / "UCF-101", splits=synth_root / "ucfTrainTestlist", **kwargs)


def test_prepare_indexes_every_listed_video(synth_root, synth_store):
    store = FrameStore(synth_store)
    assert store.keys() == sorted(r.key for r in UCF101(**_ucf(synth_root), subset="all"))
    assert store.info(store.keys()[0]) == {"num_frames": 40, "fps": 25.0, "height": 128,
                                           "width": 171}
    report = json.loads((synth_store / REPORT).read_text())
    assert report["prepared"] == 12 and report["failed"] == [] and report["missing"] == []
    assert not (synth_store / JOURNAL).exists()


def test_interrupted_run_resumes_to_an_identical_store(synth_root, synth_store, tmp_path,
                                                       monkeypatch):
    records, _ = records_to_prepare("ucf101", **_ucf(synth_root))
    out = tmp_path / "store"
    calls = {"frames": 0}
    to_rgb = prepare.to_rgb

    def interrupted(frame, size):
        calls["frames"] += 1
        if calls["frames"] == 3 * 40 + 10:  # a third of the way into the fourth video
            raise KeyboardInterrupt
        return to_rgb(frame, size)

    monkeypatch.setattr(prepare, "to_rgb", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_store(records, out, progress=False)
    assert not (out / REPORT).exists()  # not finished
    # Only the three finished videos are visible, no partial file.
    assert FrameStore(out).keys() == [r.key for r in records[:3]]
    assert sorted(p.name for p in (out / FRAMES_DIR).rglob("*") if p.is_file()) == \
        sorted(frames_path(out, r.key).name for r in records[:3])

    monkeypatch.setattr(prepare, "to_rgb", to_rgb)
    report = prepare_store(records, out, progress=False)
    assert report.already_prepared == 3 and report.prepared == [r.key for r in records[3:]]
    assert _snapshot(out) == _snapshot(synth_store)


def test_killed_run_leftovers_are_recovered(synth_root, synth_store, tmp_path):
    """A SIGKILL skips all cleanup: the journal holds the finished videos (its last line
    maybe cut short), index.json lacks them, and a temporary file lies around."""
    out = tmp_path / "store"
    shutil.copytree(synth_store, out)
    index = json.loads((out / INDEX).read_text())
    videos = index.pop("videos")
    done = sorted(videos)[:4]
    (out / INDEX).write_text(json.dumps({**index, "videos": {}}))
    lines = [json.dumps({"key": key, **videos[key]}) for key in done]
    (out / JOURNAL).write_text("\n".join(lines) + "\n" + lines[0][:17])
    for key in sorted(videos)[4:]:
        frames_path(out, key).unlink()
    stale = frames_path(out, sorted(videos)[5]).with_name(".v.avi.frames.999.tmp")
    stale.write_bytes(b"half a video")

    assert FrameStore(out).keys() == done  # the journal counts while a run is unfinished
    report = prepare_dataset("ucf101", **_ucf(synth_root), out=out, progress=False)
    assert report.already_prepared == 4 and len(report.prepared) == 8
    assert not stale.exists() and not (out / JOURNAL).exists()
    assert _snapshot(out) == _snapshot(synth_store)


def test_rerun_changes_nothing_and_settings_must_match(synth_root, synth_store, tmp_path):
    out = tmp_path / "store"
    shutil.copytree(synth_store, out)
    times = {p: p.stat().st_mtime_ns for p in (out / FRAMES_DIR).rglob("*.frames")}
    report = prepare_dataset("ucf101", **_ucf(synth_root), out=out, progress=False)
    assert report.prepared == [] and report.already_prepared == 12 and report.num_warnings == 0
    assert {p: p.stat().st_mtime_ns for p in times} == times
    assert _snapshot(out) == _snapshot(synth_store)
    with pytest.raises(PlayspeedError, match="prepared with format jpeg quality 90, size "
                                             "128x171, this run asks for format raw"):
        prepare_dataset("ucf101", **_ucf(synth_root), out=out, fmt="raw", progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file.txt").write_text("x")
    with pytest.raises(PlayspeedError, match="exists and is not a frame store"):
        prepare_dataset("ucf101", **_ucf(synth_root), out=tmp_path / "other", progress=False)


@pytest.mark.slow
def test_parallel_workers_give_the_same_store(synth_root, synth_store, tmp_path):
    prepare_dataset("ucf101", **_ucf(synth_root), out=tmp_path / "store", workers=2,
                    progress=False)
    assert _snapshot(tmp_path / "store") == _snapshot(synth_store)


@pytest.fixture
def damaged(synth_root, tmp_path):
    """A folder of two good videos and every kind of bad one."""
    root = tmp_path / "videos" / "mixed"
    root.mkdir(parents=True)
    good = sorted((synth_root / "UCF-101").rglob("*.avi"))[:2]
    for path in good:
        shutil.copy(path, root / path.name)
    (root / "empty.avi").write_bytes(b"")
    (root / "garbage.avi").write_bytes(bytes(range(256)) * 40)
    (root / "notes.mp4").write_text("not a video\n")
    data = good[0].read_bytes()
    (root / "truncated.avi").write_bytes(data[: len(data) // 2])
    with av.open(str(root / "no_frames.avi"), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height = 64, 48
        container.start_encoding()  # headers, no frames
    return root.parent


def test_unreadable_videos_are_reported_and_the_rest_prepared(damaged, tmp_path, capsys):
    out = tmp_path / "store"
    assert main(["prepare", "--dataset", "folder", "--videos", str(damaged),
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    report = json.loads((out / REPORT).read_text())
    reasons = {entry["key"]: entry["reason"] for entry in report["failed"]}
    assert set(reasons) == {"mixed/empty.avi", "mixed/garbage.avi", "mixed/notes.mp4",
                            "mixed/no_frames.avi"}
    assert reasons["mixed/empty.avi"] == "empty file (0 bytes)"
    assert "cannot open video" in reasons["mixed/garbage.avi"]
    assert "no frames" in reasons["mixed/no_frames.avi"]
    store = FrameStore(out)
    assert "mixed/truncated.avi" in store and store.num_frames("mixed/truncated.avi") < 40
    assert [w["key"] for w in report["warnings"]] == ["mixed/truncated.avi"]
    assert len(store) == 3
    for key in reasons:
        assert f"warning: {damaged / key}: " in captured.err
    assert "3 videos prepared, 0 already there; 5 warnings" in captured.out


def test_nothing_preparable_is_an_error(tmp_path, capsys):
    (tmp_path / "videos" / "c").mkdir(parents=True)
    (tmp_path / "videos" / "c" / "bad.avi").write_bytes(b"\0" * 100)
    code = main(["prepare", "--dataset", "folder", "--videos", str(tmp_path / "videos"),
                 "--out", str(tmp_path / "store")])
    assert code == 2
    assert "no video could be prepared (1 unreadable" in capsys.readouterr().err


def test_missing_listed_videos_fail_or_warn(synth_root, tmp_path, capsys):
    splits = tmp_path / "lists"
    shutil.copytree(synth_root / "ucfTrainTestlist", splits)
    with open(splits / "trainlist02.txt", "a") as handle:
        handle.write("MoveLeft/v_MoveLeft_g09_c01.avi 1\r\n")
    args = ["prepare", "--dataset", "ucf101", "--videos", str(synth_root / "UCF-101"),
            "--splits", str(splits), "--out", str(tmp_path / "store")]
    assert main(args) == 2
    assert "trainlist02.txt:10: video 'MoveLeft/v_MoveLeft_g09_c01.avi' not found" in \
        capsys.readouterr().err
    assert main([*args, "--skip-missing"]) == 0
    captured = capsys.readouterr()
    assert "12 videos prepared, 0 already there; 1 warnings" in captured.out
    assert "warning: " in captured.err and "v_MoveLeft_g09_c01.avi" in captured.err
