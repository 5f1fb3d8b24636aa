"""The objective registry: classes per reading and limits that the samplers, heads, config
and metrics rely on."""

import pytest

from playspeed.config import load_config
from playspeed.errors import PlayspeedError
from playspeed.objectives import OBJECTIVES, get_objective

SETTINGS = {"speeds": [1, 2, 4, 8], "directions": [1, -1], "num_clips": 3}


@pytest.mark.parametrize("name, classes", [
    ("classify", {"speed": 4, "direction": 2}),
    ("speed", {"speed": 4}),
    ("direction", {"direction": 2}),
    ("sort", {"order": 6}),
    ("vcop", {"order": 6}),
    ("rotation", {"rotation": 4}),
    # classify's readings; its instance discrimination is scored apart
    ("speed_contrast", {"speed": 4, "direction": 2}),
])
def test_classes_per_reading(name, classes):
    objective = get_objective(name)
    assert objective.num_classes(**SETTINGS) == classes
    assert objective.per_clip == (name not in ("sort", "vcop"))
    assert objective.has_speed_head == (name in ("classify", "speed", "speed_contrast"))
    assert objective.contrast == (name == "speed_contrast")


def test_every_objective_is_a_valid_config_value_and_unknown_ones_are_named():
    for name in OBJECTIVES:
        assert load_config("pretrain/synthetic_cpu", [f"pretext.objective={name}"])
    with pytest.raises(PlayspeedError, match="pretext.objective is 'order'; expected one of "
                                             "classify, speed, direction, sort, vcop, rotation, "
                                             "speed_contrast"):
        load_config("pretrain/synthetic_cpu", ["pretext.objective=order"])
    with pytest.raises(ValueError, match="objective must be one of"):
        get_objective("order")


@pytest.mark.parametrize("overrides, message", [
    (["pretext.objective=speed", "pretext.num_clips=5"], "signed speeds speed draws \\(4\\)"),
    (["pretext.objective=direction", "pretext.directions=[1]"], "a single class"),
    (["pretext.objective=vcop", "pretext.num_clips=6"], "must be 2-5 for the vcop"),
    (["pretext.objective=vcop", "pretext.clip_gap=-1"], "clip_gap must be >= 0"),
    (["pretext.objective=speed_contrast", "pretext.num_clips=1"],
     "num_clips must be >= 2 for the speed_contrast objective"),
    (["pretext.contrast_temperature=0"], "contrast_temperature must be > 0"),
    (["pretext.contrast_momentum=1"], "contrast_momentum must be in \\[0, 1\\)"),
    (["pretext.contrast_queue=-1"], "contrast_queue must be >= 0"),
    (["pretext.contrast_weight=-0.5"], "contrast_weight must be >= 0"),
    (["pretext.contrast_dim=0"], "contrast_dim must be >= 1"),
    (["pretext.contrast_hidden=-1"], "contrast_hidden must be >= 0 or null"),
    (["pretext.contrast_reversed=both"],
     "contrast_reversed is 'both'; expected one of positive, negative"),
    (["pretext.contrast_shuffled=true", "clip.len=2"],
     "contrast_shuffled needs clip.len >= 3"),
])
def test_config_checks_per_objective(overrides, message):
    with pytest.raises(PlayspeedError, match=message):
        load_config("pretrain/synthetic_cpu", overrides)


def test_independent_draws_take_any_number_of_clips():
    # direction and rotation draw each clip's label on their own: 8 clips of 2 classes is fine
    assert load_config("pretrain/synthetic_cpu", ["pretext.objective=direction",
                                                  "pretext.num_clips=8"])


def test_published_clips_per_sample_where_they_differ():
    # the arrow of time and 3DRotNet classify one clip at a time; the rest use 3 (or N)
    assert {name: o.published_clips for name, o in OBJECTIVES.items() if o.published_clips} \
        == {"direction": 1, "rotation": 1}
    assert get_objective("classify").accuracy_rule() == \
        "a clip counts when its speed and direction are both right"
