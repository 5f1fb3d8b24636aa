"""Atomic writes: whole files, with the permissions an ordinary write would give."""

import os
import stat

from playspeed.io import atomic_write_text, write_json


def test_atomic_files_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a" / "card.md", "# card\n")
        write_json(tmp_path / "metrics.json", {"top1": 1.0})
    finally:
        os.umask(mask)
    assert (tmp_path / "a" / "card.md").read_text() == "# card\n"
    for path in (tmp_path / "a" / "card.md", tmp_path / "metrics.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
