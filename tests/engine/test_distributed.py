"""Two-process DDP training on the CPU (gloo): both phases run and the replicas stay identical.

nerfstudio's `ns-train --machine.num-devices N` launcher asserts CUDA before it starts any process, so this test
starts the two processes itself, the way that launcher does, and runs the same trainer in each.
"""

from __future__ import annotations

import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nerfstudio.scripts.train import _set_random_seed
from tests.helpers import micro_config

WORLD_SIZE = 2
SHARED_FAKES = (False, True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker(rank: int, output_dir: Path, port: int) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    try:
        for shared_fakes in SHARED_FAKES:  # one process group for both loops: spawning costs more than training
            config = micro_config(output_dir / f"shared-{shared_fakes}", max_num_iterations=4)
            config.pipeline.shared_fakes = shared_fakes
            _set_random_seed(config.machine.seed + rank)  # as nerfstudio's launcher: each rank draws its own batches
            trainer = config.setup(local_rank=rank, world_size=WORLD_SIZE)
            trainer.setup()
            trainer.train()
            torch.save(trainer.pipeline.state_dict(), output_dir / f"shared-{shared_fakes}" / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_cpu_processes_train_identical_replicas(tmp_path: Path) -> None:
    """With each phase rendering its own fakes and with the G phase training through the D phase's (whose graph
    then spans the discriminator's DDP step)."""
    for shared_fakes in SHARED_FAKES:
        micro_config(tmp_path / f"shared-{shared_fakes}").save_config()
    mp.spawn(worker, args=(tmp_path, free_port()), nprocs=WORLD_SIZE, join=True)
    for shared_fakes in SHARED_FAKES:
        run = tmp_path / f"shared-{shared_fakes}"
        first, second = (torch.load(run / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE))
        assert first.keys() == second.keys()
        for key in first:
            assert torch.allclose(first[key].float(), second[key].float(), atol=1e-6), (shared_fakes, key)
        assert any(key.startswith("discriminator.") for key in first)
        assert float(first["augment.sign_count"]) == 0.0  # the last update (step 3) all-reduced and reset it
