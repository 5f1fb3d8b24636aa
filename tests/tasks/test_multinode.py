"""Multi-node DDP on CPU: two "nodes" of one process each, over gloo, each started with the
environment variables a cluster launcher sets, train as one process does on their global
batch: the same samples in every step, the same synchronised norm statistics, the same
weights; one summary line for the run.

The model is the synthetic CPU config's, with TGN: its synchronisation is playspeed's own and
runs over gloo. BatchNorm's is torch's ``nn.SyncBatchNorm``, which needs GPUs (on CPU, DDP
refuses it).
"""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from playspeed.rundir import LOCK_NAME, RANK_VARIABLES, is_rank_zero, run_dir_lock
from playspeed.tasks.data import EpochSampler
from playspeed.tasks.pretext import pretrain

NODES = 2
# What each launcher sets in the process it starts on node ``node`` (one process a node):
# Lightning's own LightningEnvironment (any cluster: the user exports these on each node),
# torchrun (TorchElasticEnvironment) and srun (SLURMEnvironment).
LAUNCHERS = {
    "env": lambda node, port: {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
                               "NODE_RANK": node, "LOCAL_RANK": "0",
                               "WORLD_SIZE": str(NODES)},
    "torchrun": lambda node, port: {"TORCHELASTIC_RUN_ID": "multinode-test",
                                    "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
                                    "RANK": node, "GROUP_RANK": node, "ROLE_RANK": node,
                                    "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                                    "WORLD_SIZE": str(NODES), "GROUP_WORLD_SIZE": str(NODES)},
    "slurm": lambda node, port: {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "pretrain",
                                 "SLURM_NTASKS": str(NODES), "SLURM_NNODES": str(NODES),
                                 "SLURM_NTASKS_PER_NODE": "1", "SLURM_NODELIST": "127.0.0.1",
                                 "SLURM_PROCID": node, "SLURM_NODEID": node,
                                 "SLURM_LOCALID": "0", "MASTER_PORT": port},
}
# Per process: one sample (3 clips) a step; the 1-process run takes NODES samples a step.
PER_PROCESS_BATCH = 1
# One epoch (3 steps of the 6 training videos, then a validation), with SGD (as the Kinetics
# config): its step is linear in the gradient, so the rounding in which the two runs differ
# stays at rounding (AdamW divides by the gradient's running size, which magnifies it where
# a gradient is near zero; and over more steps training amplifies it).
_TRAINING = ("trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1",
             "trainer.sync_norm=true", "trainer.accelerator=cpu", "trainer.devices=1",
             "optim.name=sgd", "optim.lr=0.05", "optim.momentum=0.9")


def _launched_env(variables: dict[str, str]) -> dict[str, str]:
    """This process's environment without any launcher's variables, plus ``variables``."""
    env = {name: value for name, value in os.environ.items()
           if name not in RANK_VARIABLES and not name.startswith(("SLURM_", "TORCHELASTIC_"))
           and name not in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE")}
    # One thread each: the two processes share this machine's cores.
    return {**env, **variables, "OMP_NUM_THREADS": "1"}


def _free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


# --- what the ranks decide alone ---------------------------------------------------------


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_only_node_0_speaks_and_locks_though_each_node_has_a_local_rank_0(
        launcher, tmp_path, monkeypatch):
    """Rank 0 of node 1 is local rank 0, not the run's rank 0: it neither prints the summary
    nor takes the run directory's lock (which node 0 holds on the shared filesystem)."""
    def launch(node):
        for name in [*RANK_VARIABLES, "TORCHELASTIC_RUN_ID"]:
            monkeypatch.delenv(name, raising=False)
        for name, value in LAUNCHERS[launcher](str(node), "29500").items():
            monkeypatch.setenv(name, value)

    launch(0)
    assert is_rank_zero()
    with run_dir_lock(tmp_path):
        held = (tmp_path / LOCK_NAME).read_text()
        launch(1)
        assert not is_rank_zero()
        with run_dir_lock(tmp_path):  # would raise "another run is writing here" if it tried
            assert (tmp_path / LOCK_NAME).read_text() == held


def test_the_shards_of_each_step_are_the_one_process_batch():
    """``EpochSampler`` gives rank r every N-th index of the epoch's shuffled order, so step
    k's shards of B samples together are the 1-process run's step k of N*B samples; with
    an epoch of a multiple of N*B samples, no rank pads its shard."""
    dataset = list(range(12))
    for epoch in range(3):
        one = EpochSampler(dataset, shuffle=True, seed=5)
        one.set_epoch(epoch)
        order = list(one)
        shards = []
        for rank in range(NODES):
            sampler = EpochSampler(dataset, shuffle=True, seed=5, num_replicas=NODES, rank=rank)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
        batch = 3
        for step in range(len(dataset) // (NODES * batch)):
            together = sorted(index for shard in shards
                              for index in shard[step * batch:(step + 1) * batch])
            assert together == sorted(order[step * NODES * batch:(step + 1) * NODES * batch])


# --- two nodes against one process ---------------------------------------------------------


@pytest.fixture(scope="module")
def one_process(tiny_config, tmp_path_factory):
    """The reference: one process taking the global batch (NODES samples) a step."""
    out = tmp_path_factory.mktemp("one_process")
    pretrain(tiny_config("pretrain", *_TRAINING, f"optim.batch_size={NODES * PER_PROCESS_BATCH}"),
             out)
    return out


@pytest.fixture(scope="module", params=sorted(LAUNCHERS))
def two_nodes(request, tiny_overrides, tmp_path_factory):
    """``python -m playspeed pretrain ... trainer.num_nodes=2`` started once per node as the
    launcher would: (exit statuses, stdout and stderr per node, run directory)."""
    launcher = request.param
    root = tmp_path_factory.mktemp(f"two_nodes_{request.param}")
    out = root / "run"
    argv = [sys.executable, "-m", "playspeed", "pretrain", "--config", "pretrain/synthetic_cpu",
            "--out", str(out), *tiny_overrides, *_TRAINING, "trainer.strategy=ddp",
            f"trainer.num_nodes={NODES}", f"optim.batch_size={PER_PROCESS_BATCH}"]
    port = _free_port()
    processes, logs = [], []
    for node in range(NODES):
        log = (root / f"node{node}.out", root / f"node{node}.err")
        with open(log[0], "w") as stdout, open(log[1], "w") as stderr:
            processes.append(subprocess.Popen(
                argv, env=_launched_env(LAUNCHERS[launcher](str(node), port)),
                stdout=stdout, stderr=stderr))
        logs.append(log)
    try:
        statuses = [process.wait(timeout=300) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    outputs = [(stdout.read_text(), stderr.read_text()) for stdout, stderr in logs]
    return statuses, outputs, out


def _final_state(run):
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


@pytest.mark.slow
def test_two_nodes_train_as_one_process_on_their_global_batch(two_nodes, one_process):
    statuses, outputs, out = two_nodes
    assert statuses == [0] * NODES, "\n".join(err[-3000:] for _, err in outputs)
    # The summary line comes from node 0 alone.
    assert [stdout.count("pretext accuracy") for stdout, _ in outputs] == [1] + [0] * (NODES - 1)
    assert not (out / LOCK_NAME).exists()  # node 0 released it; no other node took it

    mine, theirs = (json.loads((run / "metrics.json").read_text()) for run in (out, one_process))
    assert mine["protocol"]["effective_batch"] == theirs["protocol"]["effective_batch"] \
        == NODES * PER_PROCESS_BATCH
    assert mine["protocol"]["steps"] == theirs["protocol"]["steps"] == 3  # 6 videos, 2 a step
    assert mine["clips_seen"] == theirs["clips_seen"] == 6 * 3  # videos x clips

    # Every step's global batch is the 1-process batch (the same samples, drawn alike), and
    # the norm layers normalise over all of it: the running statistics and the weights after
    # 3 steps agree to float rounding (gloo's sums and the synchronised norms' per-rank
    # moments add in another order than one process: ~1e-7 here; unsynchronised norms,
    # trainer.sync_norm=false, differ by ~0.5 in the running variances).
    state, reference = _final_state(out), _final_state(one_process)
    assert state.keys() == reference.keys()
    norm_statistics = [key for key in reference if key.endswith(("running_mean", "running_var"))]
    assert len(norm_statistics) == 2 * 12  # of each TGN layer, per group and channel
    for key in reference:
        torch.testing.assert_close(state[key], reference[key], rtol=1e-5, atol=1e-6, msg=key)
    for name in ("train_loss", "val_loss"):
        assert mine[name] == pytest.approx(theirs[name], rel=1e-3), name
    assert mine["pretext_val_acc"] == theirs["pretext_val_acc"]
