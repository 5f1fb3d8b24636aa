"""The playback-speed detector on videos re-timed on purpose.

The windows and the flagging rule are checked with a fake predictor that reads the true
playback speed off coded frames (red = source frame index); the real model's check on a
synthetic video is a manual run (see ``playspeed.tasks.retime``)."""

import numpy as np
import pytest
import torch

from playspeed.cli import main
from playspeed.data import RawVideos, VideoRecord
from playspeed.tasks.retime import (
    RetimedSource,
    TrueSegment,
    parse_plan,
    retime_indices,
    retimed_synthetic,
    score_detection,
    source_frames_needed,
)
from playspeed.tasks.retime import main as retime_main
from playspeed.tasks.speed import (
    Segment,
    WindowPrediction,
    detect_speed,
    flag_segments,
    predict_windows,
    typical_window,
    window_starts,
)

SPEEDS, DIRECTIONS = [1, 2, 4, 8], [1, -1]


def test_window_starts_cover_the_video():
    assert window_starts(40, clip_len=16, stride=8) == [0, 8, 16, 24]
    assert window_starts(41, clip_len=16, stride=8) == [0, 8, 16, 24, 25]
    assert window_starts(16, clip_len=16, stride=8) == [0]
    with pytest.raises(Exception, match="one window needs 16"):
        window_starts(15, clip_len=16, stride=8)


def test_retime_indices():
    indices, segments = retime_indices([(1, 3), (4, 2), (-1, 3), (1, 2)])
    assert indices.tolist() == [0, 1, 2, 3, 7, 13, 12, 11, 14, 15]
    assert segments == [TrueSegment(0, 2, 1), TrueSegment(3, 4, 4), TrueSegment(5, 7, -1),
                        TrueSegment(8, 9, 1)]
    assert source_frames_needed([(1, 3), (4, 2), (-1, 3), (1, 2)]) == 16
    assert parse_plan("1:3,4:2,-1:3") == [(1, 3), (4, 2), (-1, 3)]
    with pytest.raises(Exception, match="non-zero speed"):
        retime_indices([(0, 3)])


def coded_predictor(clips: torch.Tensor) -> torch.Tensor:
    """The ideal model: reads each frame's source index (red) and returns the (speed,
    direction) of the window's median frame step, as probabilities ``B x S x D``."""
    codes = clips[:, 0, :, 0, 0].long()  # B x T (uint8 clips, channels first)
    steps = (codes[:, 1:] - codes[:, :-1]).median(dim=1).values
    joint = torch.full((len(clips), len(SPEEDS), len(DIRECTIONS)), 0.01)
    for row, step in enumerate(steps.tolist()):
        speed = min(SPEEDS, key=lambda s, step=step: abs(s - abs(step)))
        joint[row, SPEEDS.index(speed), DIRECTIONS.index(1 if step > 0 else -1)] = 1.0
    return joint / joint.sum((1, 2), keepdim=True)


def _detect(coded_videos, plan, *, clip_len=16, stride=8):
    records, source = coded_videos([256])
    retimed = RetimedSource(source, records[0], plan)
    predictions = predict_windows(coded_predictor, retimed, records[0], clip_len=clip_len,
                                  stride=stride, speeds=SPEEDS, directions=DIRECTIONS,
                                  batch_size=5)
    return predictions, retimed, flag_segments(predictions, clip_len=clip_len,
                                               num_frames=retimed.num_frames())


def _overlap(segment, truth):
    return min(segment.last_frame, truth.last_frame) - max(segment.first_frame,
                                                           truth.first_frame) + 1


@pytest.mark.parametrize("plan", [
    [(1, 32), (4, 24), (1, 24), (-1, 32), (1, 32)],  # separated by normal play
    [(1, 32), (4, 24), (-1, 32), (1, 32)],  # 4x straight into reversed
    [(1, 40), (-1, 40), (1, 24), (4, 28), (1, 20)],  # the other order
])
def test_both_retimed_segments_are_found(coded_videos, plan):
    clip_len, stride = 16, 8
    predictions, retimed, segments = _detect(coded_videos, plan, clip_len=clip_len,
                                             stride=stride)
    assert [p.start for p in predictions] == window_starts(retimed.num_frames(),
                                                           clip_len=clip_len, stride=stride)
    truths = [t for t in retimed.segments if t.signed_speed != 1]
    assert len(segments) == 2, segments
    score = score_detection(retimed.segments, segments)
    assert score["success"] and min(score["iou"]) > 0.7
    for truth in truths:
        kind = "reversed" if truth.signed_speed < 0 else "sped up"
        found = [s for s in segments if s.kind == kind]
        assert len(found) == 1, (kind, segments)
        segment = found[0]
        assert segment.signed_speed == truth.signed_speed
        assert _overlap(segment, truth) > 0
        # Windows centred in a segment flag it: the ends are off by at most a stride.
        assert abs(segment.first_frame - truth.first_frame) <= stride
        assert abs(segment.last_frame - truth.last_frame) <= stride


@pytest.mark.parametrize("signed", [4, -1])
def test_the_shortest_segment_found_is_about_one_window(coded_videos, signed):
    # With an ideal reader, a segment as long as a window (16 frames) is found exactly;
    # half a window is below the detector's resolution.
    for length, found in ((16, True), (8, False)):
        _, retimed, segments = _detect(coded_videos, [(1, 60), (signed, length), (1, 60)])
        score = score_detection(retimed.segments, segments)
        assert score["found"] == [found] and not score["false_alarms"]
        if found:
            assert score["iou"] == [1.0]


def test_a_normal_video_flags_nothing(coded_videos):
    _, _, segments = _detect(coded_videos, [(1, 200)])
    assert segments == []


def test_predict_windows_reads_each_batch_once(coded_videos):
    records, source = coded_videos([100])
    predictions = predict_windows(coded_predictor, source, records[0], clip_len=16, stride=4,
                                  speeds=SPEEDS, directions=DIRECTIONS, batch_size=8)
    assert [p.signed_speed for p in predictions] == [1] * len(predictions)
    assert all(p.confidence > 0.9 for p in predictions)
    # 22 windows in batches of 8: three reads, each of the frames its batch spans.
    assert [(reads[0], reads[-1]) for _, reads in source.reads] == [(0, 43), (32, 75),
                                                                    (64, 99)]


def _windows(kinds, *, stride=8):
    """Windows every ``stride`` frames read as n (+1x), f (+4x), 2 (+2x), r (-1x), R (-2x)."""
    table = {"n": (1, 1), "f": (4, 1), "2": (2, 1), "r": (1, -1), "R": (2, -1)}
    return [WindowPrediction(start=i * stride, speed=table[k][0], direction=table[k][1],
                             confidence=0.9, log2_speed=float(np.log2(table[k][0])),
                             p_reversed=0.9 if table[k][1] < 0 else 0.1)
            for i, k in enumerate(kinds)]


def test_flag_segments_rule():
    # A lone window is noise; sped-up and reversed runs are separate segments even when they
    # touch; ranges follow the windows' centres (16-frame windows every 8 frames: centres
    # at 7.5, 15.5, ...); the +2x window at the 4x run's edge is smoothed away.
    segments = flag_segments(_windows("nfnnff2rrRnn"), clip_len=16)
    assert [(s.kind, s.signed_speed) for s in segments] == [("sped up", 4), ("reversed", -1)]
    sped, reversed_ = segments
    assert (sped.first_frame, sped.last_frame) == (36, 51)  # windows 4-5
    assert (reversed_.first_frame, reversed_.last_frame) == (60, 83)  # windows 7-9
    assert sped.relative_speed > 2 and reversed_.p_reversed == pytest.approx(0.9)
    # Runs at the video's ends reach its first and last frames.
    segments = flag_segments(_windows("rrnnff"), clip_len=16, num_frames=60)
    assert [(s.first_frame, s.last_frame) for s in segments] == [(0, 19), (36, 59)]
    assert flag_segments(_windows("rrnnff"), clip_len=16, min_windows=3) == []
    assert flag_segments([], clip_len=16) == []


def test_speed_is_judged_against_the_video_itself():
    # A brisk scene reads +2x all along: nothing is flagged, and the typical window says 2x.
    brisk = _windows("2" * 12)
    assert flag_segments(brisk, clip_len=16) == []
    assert typical_window(brisk).speed == 2.0
    # A 4x stretch inside it is two octaves above the rest: flagged.
    segments = flag_segments(_windows("2222ffff2222"), clip_len=16)
    assert [(s.kind, s.first_frame, s.last_frame) for s in segments] == [("sped up", 36, 67)]
    # A stretch that reads +2x inside a +1x video is flagged too.
    assert [s.kind for s in flag_segments(_windows("nnnn2222nnnn"), clip_len=16)] == ["sped up"]


def test_an_undecided_direction_head_flags_nothing():
    # P(reversed) wobbling around 1/2 (a time-symmetric scene) is no evidence of reversal;
    # the argmax of each window would call half of them reversed.
    windows = [WindowPrediction(start=8 * i, speed=1, direction=-1 if i % 3 else 1,
                                confidence=0.5, log2_speed=0.1,
                                p_reversed=0.52 if i % 3 else 0.47) for i in range(20)]
    assert flag_segments(windows, clip_len=16) == []
    assert 0.47 <= typical_window(windows).p_reversed <= 0.52


def test_retimed_synthetic_video_has_the_planned_frames(tmp_path):
    plan = [(1, 8), (4, 6), (-1, 8)]
    truth = retimed_synthetic(tmp_path / "r.avi", name="FreeFall", plan=plan, size=(64, 48))
    assert truth == retime_indices(plan)[1]
    record = VideoRecord(path=tmp_path / "r.avi", label=-1, key="r.avi")
    assert RawVideos(resize=None).num_frames(record) == 22


def test_score_detection():
    truth = retime_indices([(1, 10), (4, 10), (1, 10), (-1, 10), (1, 10)])[1]
    flagged = flag_segments(_windows("nnrrnn", stride=5), clip_len=10)  # frames 12-21
    score = score_detection(truth, flagged)
    assert score["found"] == [False, False]  # a reversed flag over the 4x segment is no hit
    assert len(score["false_alarms"]) == 1 and not score["all_found"]
    flagged = flag_segments(_windows("nnffnnrrnn", stride=5), clip_len=10)
    score = score_detection(truth, flagged)
    assert score["success"] and min(score["iou"]) > 0.5
    # A flagged segment must match its truth closely, not just overlap it.
    wide = [Segment(0, 54, 4, "sped up"), Segment(30, 39, -1, "reversed")]
    score = score_detection(truth, wide)
    assert score["found"] == [True, True] and score["iou"] == [10 / 55, 1.0]
    assert not score["success"]


# --- detect_speed and the command with a real (tiny) checkpoint ---


def test_detect_speed_runs_along_a_video(tiny_pretrain_ckpt, synth_root, tmp_path):
    video = next((synth_root / "UCF-101").rglob("*.avi"))  # 40 frames; windows of 8
    result = detect_speed(tiny_pretrain_ckpt, video, out=tmp_path / "speed.png", stride=4)
    assert [w.start for w in result["windows"]] == window_starts(40, clip_len=8, stride=4)
    assert all(w.speed in (1, 2, 4) and w.direction in (1, -1) for w in result["windows"])
    assert all(0 < w.confidence <= 1 for w in result["windows"])
    assert result["num_frames"] == 40 and result["fps"] == 25
    assert (tmp_path / "speed.png").stat().st_size > 0


def test_speed_command(tiny_pretrain_ckpt, synth_root, tmp_path, capsys):
    video = next((synth_root / "UCF-101").rglob("*.avi"))
    out = tmp_path / "timeline.png"
    assert main(["speed", str(video), "--ckpt", str(tiny_pretrain_ckpt), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert sum(" frame " in line for line in printed) == len(window_starts(40, clip_len=8,
                                                                           stride=4))
    assert printed[-1] == f"plot written to {out}" and out.is_file()
    assert main(["speed", str(video), "--ckpt", str(tiny_pretrain_ckpt), "--out", str(out),
                 "--stride", "8", "--min-windows", "3"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert sum(" frame " in line for line in printed) == len(window_starts(40, clip_len=8,
                                                                           stride=8))
    assert main(["speed", str(video), "--ckpt", str(tiny_pretrain_ckpt),
                 "--min-windows", "0"]) == 2
    assert "min_windows must be >= 1" in capsys.readouterr().err


@pytest.fixture(scope="module")
def other_checkpoints(tiny_config, untrained_checkpoint, tmp_path_factory):
    """Untrained finetune, sort-objective and joint-head checkpoints."""
    save_untrained_checkpoint = untrained_checkpoint
    folder = tmp_path_factory.mktemp("other_ckpts")
    finetune = save_untrained_checkpoint(tiny_config("finetune"), folder / "finetune.ckpt",
                                         task="finetune", classes=["a", "b", "c"])
    sort = save_untrained_checkpoint(tiny_config("pretrain", "pretext.objective=sort"),
                                     folder / "sort.ckpt")
    joint = save_untrained_checkpoint(tiny_config("pretrain", "pretext.joint=true"),
                                      folder / "joint.ckpt")
    return {"finetune": finetune, "sort": sort, "joint": joint}


@pytest.mark.parametrize("case, message", [
    ("missing_ckpt", "no such checkpoint"),
    ("finetune", "a finetune checkpoint; this command needs a pretrain one"),
    ("sort", "sort checkpoint has no speed head"),
    ("missing_video", "no such video"),
    ("short_video", "one window needs 8"),
    ("not_a_video", "cannot open video"),
])
def test_speed_command_errors(tiny_pretrain_ckpt, other_checkpoints, synth_root, tmp_path,
                              capsys, case, message):
    from playspeed.data.video import write_video

    video = next((synth_root / "UCF-101").rglob("*.avi"))
    ckpt = other_checkpoints.get(case, tiny_pretrain_ckpt)
    if case == "missing_ckpt":
        ckpt = tmp_path / "missing.ckpt"
    elif case == "missing_video":
        video = tmp_path / "missing.avi"
    elif case == "short_video":
        video = tmp_path / "short.avi"
        write_video(video, [np.zeros((48, 64, 3), np.uint8)] * 5)
    elif case == "not_a_video":
        video = tmp_path / "junk.avi"
        video.write_bytes(b"junk" * 100)
    code = main(["speed", str(video), "--ckpt", str(ckpt), "--out", str(tmp_path / "p.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err and message in err
    assert not (tmp_path / "p.png").exists()


def test_joint_head_checkpoint_is_read_too(other_checkpoints, synth_root):
    video = next((synth_root / "UCF-101").rglob("*.avi"))
    result = detect_speed(other_checkpoints["joint"], video)
    assert len(result["windows"]) == len(window_starts(40, clip_len=8, stride=4))


def test_retime_command_checks_the_detector(tiny_pretrain_ckpt, tmp_path, capsys):
    out = tmp_path / "retimed.avi"
    code = retime_main([str(out), "--size", "64", "48", "--plan", "1:16,4:12,-1:16,1:12",
                        "--check", str(tiny_pretrain_ckpt)])
    printed = capsys.readouterr().out.splitlines()
    assert printed[:4] == ["true: frames 0-15 +1x", "true: frames 16-27 +4x",
                           "true: frames 28-43 -1x", "true: frames 44-55 +1x"]
    assert "found, " in printed[-1] and out.with_suffix(".png").is_file()
    assert code == (0 if "success" in printed[-1] else 1)


@pytest.mark.parametrize("argv, message", [
    (["--plan", "1:16,0:8"], "plan: each segment needs a non-zero speed"),
    (["--name", "Dance"], "unknown synthetic class 'Dance'"),
])
def test_retime_command_errors_are_one_line(tmp_path, capsys, argv, message):
    assert retime_main([str(tmp_path / "v.avi"), "--size", "64", "48", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err
