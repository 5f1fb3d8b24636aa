"""Stop signals: the first is recorded, a second stops the process at once, and a stopped
run exits as a shell reports the signal."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from playspeed.signals import STOP_SIGNALS, Preempted, SignalCatcher


def test_the_first_signal_is_recorded_and_handlers_are_put_back():
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    catcher = SignalCatcher()
    catcher.install()
    try:
        signal.raise_signal(signal.SIGUSR1)
        assert catcher.received == signal.SIGUSR1
    finally:
        catcher.restore()
    assert {signum: signal.getsignal(signum) for signum in STOP_SIGNALS} == before


def test_a_second_signal_stops_the_process_at_once(tmp_path):
    script = textwrap.dedent("""
        import signal
        from playspeed.signals import SignalCatcher
        catcher = SignalCatcher()
        catcher.install()
        signal.raise_signal(signal.SIGTERM)
        print("first recorded", catcher.received == signal.SIGTERM, flush=True)
        signal.raise_signal(signal.SIGINT)
        print("still running", flush=True)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout == "first recorded True\n"
    assert result.returncode == -signal.SIGINT


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGUSR1, 138),
                                              (signal.SIGTERM, 143)])
def test_a_stopped_run_says_where_and_exits_as_the_signal_would(signum, code):
    stop = Preempted(signum=signum, step=17, epoch=2, batch=5, batches=20,
                     checkpoint=Path("run/checkpoints/last.ckpt"))
    assert stop.exit_code == code
    assert str(stop) == (f"stopped by {signal.Signals(signum).name} at step 17 (epoch 3, "
                         "batch 5 of 20), saved in run/checkpoints/last.ckpt")
