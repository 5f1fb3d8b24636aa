"""One writer per run directory: a second run is refused while the first lives, a lock left
by a killed process is taken over, other ranks of a distributed run leave the lock alone."""

import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from playspeed.cli import main
from playspeed.demo import run_demo
from playspeed.errors import PlayspeedError
from playspeed.rundir import LOCK_NAME, run_dir_lock


@pytest.fixture
def holder():
    """``holder(directory)``: another process that holds ``directory``'s lock (its Popen)."""
    processes = []

    def start(directory):
        script = textwrap.dedent("""
            import sys, time
            from playspeed.rundir import run_dir_lock
            with run_dir_lock(sys.argv[1]):
                print("held", flush=True)
                time.sleep(120)
        """)
        process = subprocess.Popen([sys.executable, "-c", script, str(directory)],
                                   stdout=subprocess.PIPE, text=True)
        processes.append(process)
        assert process.stdout.readline() == "held\n"
        return process

    yield start
    for process in processes:
        process.kill()
        process.wait()


def _error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_second_writer_is_refused_while_the_first_runs(holder, tiny_overrides, tmp_path,
                                                         capsys):
    run = tmp_path / "run"
    first = holder(run)
    argv = ["pretrain", "--config", "pretrain/synthetic_cpu", "--out", str(run),
            *tiny_overrides]
    assert main(argv) == 2
    line = _error_line(capsys)
    assert line.startswith(f"error: {run}: another run is writing here (process {first.pid} "
                           f"on host {socket.gethostname()}, since ")
    assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]  # nothing else written


def test_demo_and_compare_roots_are_locked_too(holder, tmp_path, capsys):
    holder(tmp_path / "demo")
    with pytest.raises(PlayspeedError, match="another run is writing here"):
        run_demo(tmp_path / "demo", log=lambda line: None)
    holder(tmp_path / "compare")
    assert main(["compare", "--out", str(tmp_path / "compare"), "--quick"]) == 2
    assert "another run is writing here" in _error_line(capsys)


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_note(holder, tmp_path):
    killed = holder(tmp_path)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    notes = []
    with run_dir_lock(tmp_path, note=notes.append):
        assert (tmp_path / LOCK_NAME).read_text().startswith(f"process {os.getpid()} ")
    assert len(notes) == 1
    assert notes[0].startswith(f"note: {tmp_path}: taking over from process {killed.pid} ")
    # A holder that ends normally leaves nothing to take over.
    assert not (tmp_path / LOCK_NAME).exists()
    with run_dir_lock(tmp_path, note=notes.append):
        pass
    assert len(notes) == 1


def test_a_run_that_wrote_nothing_leaves_no_directory(tmp_path):
    with run_dir_lock(tmp_path / "new"):
        assert (tmp_path / "new" / LOCK_NAME).is_file()
    with run_dir_lock(tmp_path / "kept"):
        (tmp_path / "kept" / "metrics.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["metrics.json"]


def test_one_process_may_take_its_own_lock_again(tmp_path):
    with run_dir_lock(tmp_path), run_dir_lock(tmp_path):
        held = (tmp_path / LOCK_NAME).read_text()
    assert held.startswith(f"process {os.getpid()} ")


@pytest.mark.parametrize("variable", ["LOCAL_RANK", "RANK", "SLURM_PROCID", "NODE_RANK"])
def test_other_ranks_of_a_distributed_run_leave_the_lock_alone(variable, holder, tmp_path,
                                                               monkeypatch):
    holder(tmp_path)  # rank 0 of the run
    monkeypatch.setenv(variable, "1")
    with run_dir_lock(tmp_path):
        pass
