"""Two-process DDP training on the CPU (gloo): both phases run and the replicas stay identical; progressive growing
trains, a resumed run gives each process its own random numbers back, a Ctrl-C or a collapse that one process
sees stops both, and a collapse rewound by both trains on.

nerfstudio's `ns-train --machine.num-devices N` launcher asserts CUDA before it starts any process, so this test
starts the two processes itself, the way that launcher does, and runs the same trainer in each.
"""

from __future__ import annotations

import json
import signal
import socket
from datetime import timedelta
from pathlib import Path
from typing import Tuple

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hypernerfgan_ns.engine.trainer import INTERRUPTED_EXIT_CODE, HyperNeRFGANTrainerConfig
from hypernerfgan_ns.errors import GeneratorCollapsedError
from hypernerfgan_ns.training.progressive_growing import ProgressiveGrowingConfig
from nerfstudio.scripts.train import _set_random_seed
from tests.helpers import latest_checkpoint, micro_config, replaced

WORLD_SIZE = 2
SHARED_FAKES = (False, True)
GROWING = ProgressiveGrowingConfig(start_downscale=4, images_per_stage=8, fade_images=4)


def growing_configs(output_dir: Path) -> Tuple[HyperNeRFGANTrainerConfig, HyperNeRFGANTrainerConfig]:
    """A run growing from 4-pixel patches (each stage leaves discriminator layers unused), and its resumption."""
    first = micro_config(output_dir / "growing", max_num_iterations=3)
    first.pipeline.progressive_growing = GROWING
    resumed = replaced(micro_config(output_dir / "growing", max_num_iterations=5, timestamp="resumed"),
                       load_dir=first.get_checkpoint_dir())
    resumed.pipeline.progressive_growing = GROWING
    return first, resumed


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


STOPS = ("ctrl-c", "collapse", "collapse-rewound")
"""Stops that one process sees first: a Ctrl-C (a terminal's reaches the processes at their own moments) and a
collapse to empty scenes (each process counts its own fakes' empty iterations), without rewinds and with one."""


def stop_seen_by_one_process(output_dir: Path, rank: int, stop: str) -> None:
    """A run in which only the second process sees the stop, during its second iteration; each process writes its
    last iteration and exit code."""
    config = micro_config(output_dir / stop, max_num_iterations=4, collapse_rewinds=int(stop == "collapse-rewound"))
    _set_random_seed(config.machine.seed + rank)
    trainer = config.setup(local_rank=rank, world_size=WORLD_SIZE)
    trainer.setup()
    train_iteration = trainer.train_iteration

    def iteration(step: int):
        if rank == 1 and step == 1 and trainer.collapse_rewinds_done == 0:
            if stop == "ctrl-c":
                trainer.request_stop(signal.SIGINT, None)
            else:
                trainer.generator_collapsed = True  # its count reached --max-consecutive-empty-iterations first
        return train_iteration(step)

    trainer.train_iteration = iteration  # type: ignore[method-assign]
    try:
        trainer.train()
        code = 0
    except SystemExit as stopped:
        code = int(stopped.code or 0)
    (output_dir / stop / f"rank{rank}.json").write_text(json.dumps([trainer.last_completed_step, code]))


def worker(rank: int, output_dir: Path, port: int) -> None:
    # A collective a process never joins fails after the timeout instead of hanging the suite.
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE, timeout=timedelta(seconds=60)
    )
    try:
        for stop in STOPS:
            stop_seen_by_one_process(output_dir, rank, stop)
        for shared_fakes in SHARED_FAKES:  # one process group for both loops: spawning costs more than training
            config = micro_config(output_dir / f"shared-{shared_fakes}", max_num_iterations=4)
            config.pipeline.shared_fakes = shared_fakes
            _set_random_seed(config.machine.seed + rank)  # as nerfstudio's launcher: each rank draws its own batches
            trainer = config.setup(local_rank=rank, world_size=WORLD_SIZE)
            trainer.setup()
            trainer.train()
            torch.save(trainer.pipeline.state_dict(), output_dir / f"shared-{shared_fakes}" / f"rank{rank}.pt")
        for config in growing_configs(output_dir):
            _set_random_seed(config.machine.seed + rank)
            trainer = config.setup(local_rank=rank, world_size=WORLD_SIZE)
            trainer.setup()
            if config.load_dir is not None:  # the resumed run: the generators as the checkpoint left them
                torch.save(torch.get_rng_state(), output_dir / "growing" / f"resumed-rank{rank}.pt")
            trainer.train()
    finally:
        dist.destroy_process_group()


def test_two_cpu_processes_train_identical_replicas(tmp_path: Path) -> None:
    """With each phase rendering its own fakes and with the G phase training through the D phase's (whose graph
    then spans the discriminator's DDP step)."""
    for stop in STOPS:
        micro_config(tmp_path / stop).save_config()
    for shared_fakes in SHARED_FAKES:
        micro_config(tmp_path / f"shared-{shared_fakes}").save_config()
    for config in growing_configs(tmp_path):
        config.save_config()
    mp.spawn(worker, args=(tmp_path, free_port()), nprocs=WORLD_SIZE, join=True)
    for shared_fakes in SHARED_FAKES:
        run = tmp_path / f"shared-{shared_fakes}"
        first, second = (torch.load(run / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE))
        assert first.keys() == second.keys()
        assert first.pop("_extra_state") == second.pop("_extra_state") == {"step": 3, "images_seen": 32}
        for key in first:
            assert torch.allclose(first[key].float(), second[key].float(), atol=1e-6), (shared_fakes, key)
        assert any(key.startswith("discriminator.") for key in first)
        assert float(first["augment.sign_count"]) == 0.0  # the last update (step 3) all-reduced and reset it

    # Ctrl-C seen by one process: both stop after the same iteration, save one checkpoint and exit as interrupted.
    stops = [json.loads((tmp_path / "ctrl-c" / f"rank{rank}.json").read_text()) for rank in range(WORLD_SIZE)]
    assert stops == [[1, INTERRUPTED_EXIT_CODE]] * WORLD_SIZE
    assert latest_checkpoint(micro_config(tmp_path / "ctrl-c").get_checkpoint_dir())["step"] == 1
    # A collapse seen by one process: both stop after the same iteration with the collapse's exit status, no save.
    stops = [json.loads((tmp_path / "collapse" / f"rank{rank}.json").read_text()) for rank in range(WORLD_SIZE)]
    assert stops == [[1, GeneratorCollapsedError.exit_code]] * WORLD_SIZE
    assert not any(micro_config(tmp_path / "collapse").get_checkpoint_dir().glob("*.ckpt"))
    # Rewound: both go back to the start together (no checkpoint was written) and train to the end.
    stops = [json.loads((tmp_path / "collapse-rewound" / f"rank{rank}.json").read_text()) for rank in range(WORLD_SIZE)]
    assert stops == [[3, 0]] * WORLD_SIZE
    assert latest_checkpoint(micro_config(tmp_path / "collapse-rewound").get_checkpoint_dir())["step"] == 3

    first, resumed = growing_configs(tmp_path)
    saved = latest_checkpoint(first.get_checkpoint_dir())  # written once, by the main process
    assert saved["step"] == 2 and len(saved["random_states"]) == WORLD_SIZE
    assert not torch.equal(saved["random_states"][0]["torch"], saved["random_states"][1]["torch"])
    for rank in range(WORLD_SIZE):
        restored = torch.load(tmp_path / "growing" / f"resumed-rank{rank}.pt", weights_only=True)
        assert torch.equal(restored, saved["random_states"][rank]["torch"]), f"rank {rank} resumed another's numbers"
    assert latest_checkpoint(resumed.get_checkpoint_dir())["step"] == 4
