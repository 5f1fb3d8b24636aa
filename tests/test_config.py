"""Config loading: YAML + dotted overrides, unknown keys and bad values named."""


import pytest

from playspeed.config import (
    builtin_config_dir,
    config_from_dict,
    config_to_dict,
    load_config,
    override_config,
    save_config,
)
from playspeed.errors import PlayspeedError


def test_defaults_are_method_defaults():
    config = load_config()
    assert config.clip.len == 16 and config.clip.size == 112
    assert config.clip.resize == [128, 171]
    assert config.pretext.speeds == [1, 2, 4, 8] and config.pretext.num_clips == 3
    assert config.model.frames_per_group == 4


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {backbone: c3d, norm: bn}\noptim: {lr: 0.5}\n")
    config = load_config(path, ["optim.lr=0.25", "trainer.devices=2", "clip.resize=[130,180]"])
    assert config.model.backbone == "c3d" and config.model.norm == "bn"
    assert config.optim.lr == 0.25
    assert config.trainer.devices == 2
    assert config.clip.resize == [130, 180]


@pytest.mark.parametrize(("override", "message"), [
    ("data.foo=1", "unknown config key 'data.foo'"),
    ("model.norm=layer", "model.norm is 'layer'"),
    ("model.input_mode=flow", "model.input_mode is 'flow'"),
    ("trainer.max_epochs=many", "trainer.max_epochs"),
    ("pretext.num_clips=9", "pretext.num_clips"),
    ("pretext.directions=[1,2]", "pretext.directions"),
    ("no_equals_sign", "expected key=value"),
    ("finetune.still_mix=1.0", "finetune.still_mix"),
    ("clip.camera_motion=1.0", "clip.camera_motion"),
    ("finetune.freeze_stages=-1", "finetune.freeze_stages"),
    ("finetune.label_fraction=0", "finetune.label_fraction"),
])
def test_bad_overrides_are_named(override, message):
    with pytest.raises(PlayspeedError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config(None, [override])


def test_unknown_key_in_yaml_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  backbone: r3d_18\n  depth: 50\n")
    with pytest.raises(PlayspeedError, match=r"bad.yaml: unknown config key 'model.depth'"):
        load_config(path)


def test_invalid_yaml_and_missing_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(PlayspeedError, match="broken.yaml: not valid YAML"):
        load_config(path)
    with pytest.raises(PlayspeedError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")


def test_builtin_configs_load_by_name_and_validate():
    names = sorted(builtin_config_dir().glob("*/*.yaml"))
    assert len(names) >= 14
    for path in names:
        load_config(path)
    assert load_config("pretrain/synthetic_cpu").clip.size == 40


def test_round_trip_through_dict_and_yaml(tmp_path):
    config = load_config(None, ["model.norm=gn", "seed=7"])
    assert config_from_dict(config_to_dict(config)) == config
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config


def test_override_config_keeps_other_values():
    config = load_config(None, ["model.width=0.5"])
    updated = override_config(config, ["data.videos=/data/ucf"])
    assert updated.model.width == 0.5 and updated.data.videos == "/data/ucf"
    assert config.data.videos is None


def test_config_names_match_the_model_registry():
    # config.py keeps its own lists so that validating a config needs no torch; they must
    # name exactly what the models accept.
    from playspeed import config
    from playspeed.models import backbone, list_backbones

    assert set(config.BACKBONES) == set(list_backbones())
    assert config.INPUT_MODES == backbone.INPUT_MODES
