"""The two-phase GAN trainer: nerfstudio's Trainer with a GAN iteration, exact resume and graceful stops.

nerfstudio's `train_iteration` sums all losses and steps every optimizer. A GAN alternates two phases instead,
each zeroing, back-propagating and stepping only its own parameter group:

    D phase: pipeline.get_discriminator_loss_dict -> backward -> step ["discriminator"]
    G phase: pipeline.get_train_loss_dict         -> backward -> step ["generator"]
    then one grad-scaler update for the iteration.

Everything else (the loop, logging, the viewer, checkpoint files, named optimizers) is nerfstudio's. Added here:

- Non-finite losses or gradients skip the step and are counted; after `max_consecutive_skipped_steps` skipped
  iterations in a row, training stops with a clear message and the last checkpoint is left untouched.
  (With the fp16 grad scaler, an overflow is the scaler's business: it skips the step and lowers its scale.)
- A generator collapsed to empty scenes (every fake without density for `max_consecutive_empty_iterations`
  iterations: its ReLU density then passes no gradient, for good) is rewound: training goes back to the newest state
  from before the fakes emptied (a checkpoint, a copy kept in host memory every `collapse_rewind_interval` iterations,
  or the session's start) and on with other random numbers, up to `collapse_rewinds` times; the next collapse stops
  training, keeping that state as a checkpoint, with a message that says what to resume it with.
- A resumed run takes its optimizers' hyperparameters (learning rate, betas) from its configuration, their moment
  estimates from the checkpoint.
- Checkpoints also hold the random-number generators' states (each process's, under DDP), so a resumed run
  continues the same sequence of latents, cameras, crops and augmentations as an uninterrupted one.
- Ctrl-C, or the SIGTERM of a scheduler's time limit, finishes the current iteration, saves a checkpoint and exits
  (under DDP every process after the same iteration); a second one quits at once.
- `--max-num-iterations` counts the whole run's iterations, so a resumed run ends where an uninterrupted one would.
- Dataset and configuration errors are shown as a message, not a traceback, and leave no empty run folder behind.
- The quality curve (`metrics.quality_curve`): the EMA generator scored every N images into the run's
  metrics.jsonl, against a training clock that continues across resumed sessions.
"""

from __future__ import annotations

import functools
import io
import pickle
import random
import re
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, Union

import numpy as np
import torch
import torch.distributed as dist
import yaml
from rich.markup import escape
from torch import Tensor
from torch.amp import GradScaler
from torch.utils.tensorboard import SummaryWriter

from hypernerfgan_ns.data.cache import atomic_output
from hypernerfgan_ns.errors import (
    CheckpointError,
    ConfigError,
    GeneratorCollapsedError,
    HyperNeRFGANError,
    TrainingDivergedError,
    print_error,
)
from hypernerfgan_ns.metrics.quality_curve import (
    METRICS_FILENAME,
    QualityCurve,
    QualityCurveConfig,
    ScoringInterrupted,
    TrainingClock,
)
from hypernerfgan_ns.pipelines.adversarial_pipeline import FAKE_OPACITY, AdversarialPipeline
from hypernerfgan_ns.utils.config_compat import DefaultsForMissingFields
from hypernerfgan_ns.utils.config_diff import config_changes
from hypernerfgan_ns.utils.precision import GradScalerWithHostScale
from nerfstudio.engine.optimizers import Optimizers
from nerfstudio.engine.trainer import TRAIN_INTERATION_OUTPUT, Trainer, TrainerConfig
from nerfstudio.utils import comms, profiler, writer
from nerfstudio.utils.misc import step_check
from nerfstudio.utils.rich_utils import CONSOLE

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Signals that stop a run after its iteration, with a checkpoint: Ctrl-C, and the SIGTERM that a job scheduler's time
limit (SLURM, Kubernetes), `docker stop`, `timeout` or `kill` sends before it kills the process."""

REPEATED_STOP_SECONDS = 1.0
"""A stop signal this soon after the first is the same request delivered twice, not a second Ctrl-C: `timeout` sends
its signal to the command and then to its whole process group, so one time limit reaches the trainer twice at once."""

INTERRUPTED_EXIT_CODE = 128 + signal.SIGINT
"""Exit status after a Ctrl-C, as shells report it; after a SIGTERM, 128 + SIGTERM (`INTERRUPTED_EXIT_CODES`)."""

NO_REWIND = -2
"""`rewind_collapse`'s choice where neither a checkpoint nor a state in memory from before the collapse is kept."""

INTERRUPTED_EXIT_CODES = frozenset(128 + signum for signum in STOP_SIGNALS)
"""Exit statuses of a run stopped by one of `STOP_SIGNALS`."""

UNSUPPORTED_TRAINER_OPTIONS: Dict[str, Callable[[TrainerConfig], bool]] = {
    "--gradient-accumulation-steps": lambda config: bool(config.gradient_accumulation_steps),
    "--log-gradients": lambda config: bool(config.log_gradients),
}
"""nerfstudio's trainer options that its summed-loss iteration implements and the GAN iteration does not: refused
rather than ignored."""


@dataclass
class HyperNeRFGANTrainerConfig(DefaultsForMissingFields, TrainerConfig):
    """nerfstudio's trainer configuration plus the GAN's failure handling."""

    _target: Type = field(default_factory=lambda: HyperNeRFGANTrainer)
    max_consecutive_skipped_steps: int = 20
    """Stop training after this many iterations in a row whose step was skipped for non-finite values."""
    max_consecutive_empty_iterations: int = 50
    """Stop training after this many iterations in a row whose fakes were all empty (`empty_fakes_opacity`): the
    target field's density is a ReLU, so an empty generator gets no gradient and never changes again (a softplus
    density, `--pipeline.model.density-softplus-shift`, gets one that vanishes as fast as its density). 0: never."""
    empty_fakes_opacity: float = 1e-6
    """Fakes count as empty while their mean opacity is at most this: nothing an image could show (a ReLU's dead
    generator renders exactly 0, a softplus's one far less than this; healthy runs start at 0.03 to 0.12)."""
    collapse_rewinds: int = 3
    """After a collapse, go back to the newest state from before the fakes emptied (the last checkpoint written
    then, the copy kept by `collapse_rewind_interval`, or the start of this session) and train on from there with
    other random numbers, up to this many times in a session; checkpoints of the dead generator are deleted, and the
    next collapse stops training. Resumed as it was, a run repeats its iterations to the same collapse; with other
    random numbers, the measured one did not recur (docs/ablations.md). 0: stop at the first collapse."""
    collapse_rewind_interval: int = 500
    """Every this many iterations while the fakes render something, a copy of the training state is kept in host
    memory (replacing the one before; the size of a checkpoint), so that a collapse rewinds by at most this many
    iterations plus the ones that count it (`max_consecutive_empty_iterations`) instead of to the last checkpoint
    (`steps_per_save`: 2,000 iterations on the GPU presets). Not at a step that writes a checkpoint. A collapse that
    stops training writes the copy as a checkpoint, to resume from with a change. 0: checkpoints and the session's
    start only."""
    quality_curve: QualityCurveConfig = field(default_factory=QualityCurveConfig)
    """The EMA generator scored every N training images (SWD; FID and KID with Inception weights) into
    metrics.jsonl and tensorboard."""


def loss_and_gradients_are_finite(loss: Tensor, parameters: List[torch.nn.Parameter]) -> bool:
    """True if the loss and every parameter's gradient are free of NaN and infinity; one multi-tensor norm and one
    host synchronisation, not one per parameter."""
    gradients = [p.grad for p in parameters if p.grad is not None]
    norms = torch._foreach_norm(gradients) if gradients else []
    return bool(torch.stack([loss.detach().float().reshape(()), *[norm.float() for norm in norms]]).isfinite().all())


def random_states() -> Dict[str, Any]:
    """Every random-number generator training draws from, in a form `torch.load(weights_only=True)` accepts."""
    numpy_state = np.random.get_state()
    states: Dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "position": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def gathered_random_states(world_size: int) -> List[Dict[str, Any]]:
    """`random_states()` of every process, by rank; a collective under DDP (every process calls it)."""
    if world_size == 1:
        return [random_states()]
    gathered: List[Any] = [None] * world_size
    dist.all_gather_object(gathered, random_states())
    return gathered


def restore_random_states(states: Dict[str, Any]) -> None:
    """Inverse of `random_states`."""
    torch.set_rng_state(states["torch"])
    numpy_state = states["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def flush_event_files() -> None:
    """Writes tensorboard's pending events to disk: its writer queues them for a background thread and flushes every
    two minutes, so a session's last scalars could reach the file after a reader (a test, `hypernerfgan plot` in the
    same process, ablate's next row) looked."""
    for event_writer in writer.EVENT_WRITERS:
        if isinstance(event_writer, writer.TensorboardWriter):
            event_writer.tb_writer.flush()


def purge_logs_after(step: int) -> None:
    """Training went back to after iteration `step` (-1: before the first): tensorboard shows one trajectory, the one
    trained on. The dead branch's events not yet written are dropped, and each tensorboard writer goes on in a new
    event file opened with `purge_step`, which tensorboard reads as "discard what was logged from this step on".
    (Weights & Biases and Comet keep what they were sent.)"""
    writer.EVENT_STORAGE[:] = [event for event in writer.EVENT_STORAGE if event["step"] <= step]
    for event_writer in writer.EVENT_WRITERS:
        if isinstance(event_writer, writer.TensorboardWriter):
            log_dir = event_writer.tb_writer.log_dir
            event_writer.tb_writer.close()
            event_writer.tb_writer = SummaryWriter(log_dir=log_dir, purge_step=step + 1)


def plain_values(value: Any) -> Any:
    """`value` with every numpy scalar in its dicts, lists and tuples turned into the Python number it holds.
    nerfstudio's schedulers compute learning rates with numpy once past their warm-up, and torch puts them into the
    optimizer's and the scheduler's state dicts; `torch.load(weights_only=True)`, as ns-render and ns-eval load on
    torch >= 2.6, refuses a checkpoint holding one."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: plain_values(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_values(item) for item in value)
    return value


def checkpoint_contents(
    step: int,
    pipeline: AdversarialPipeline,
    optimizers: Optimizers,
    grad_scaler: GradScaler,
    skipped_steps: int,
    clock: TrainingClock,
    rank_random_states: List[Dict[str, Any]],
) -> Dict[str, Any]:
    """Everything a checkpoint holds; only tensors and plain values, so `torch.load(weights_only=True)` reads it."""
    return {
        "step": step,
        "pipeline": pipeline.state_dict(),
        "optimizers": {name: plain_values(state.state_dict()) for name, state in optimizers.optimizers.items()},
        "schedulers": {name: plain_values(state.state_dict()) for name, state in optimizers.schedulers.items()},
        "scalers": grad_scaler.state_dict(),
        "random_states": rank_random_states,
        "skipped_steps": skipped_steps,
        "clock": clock.state_dict(),
    }


def checkpoint_path(checkpoint_dir: Path, step: int) -> Path:
    """Where the checkpoint written after iteration `step` lies, named as nerfstudio names it (`--load-step`)."""
    return checkpoint_dir / f"step-{step:09d}.ckpt"


def write_checkpoint(checkpoint_dir: Path, step: int, contents: Dict[str, Any]) -> Path:
    """Writes `checkpoint_contents` as nerfstudio names a checkpoint, whole or not at all: a run killed while saving
    must not leave a cut-short latest checkpoint for --load-dir to pick."""
    path = checkpoint_path(checkpoint_dir, step)
    with atomic_output(path) as temporary:  # creates the folder
        torch.save(contents, temporary)
    return path


def saved_checkpoints(checkpoint_dir: Path) -> List[Path]:
    """The checkpoints `write_checkpoint` left in a folder, oldest first (their names sort by step); none if the folder
    is not there."""
    return sorted(checkpoint_dir.glob("step-*.ckpt")) if checkpoint_dir.is_dir() else []


CHECKPOINT_KEYS = ("step", "pipeline", "optimizers", "scalers", "random_states", "skipped_steps")
"""What every checkpoint of this trainer holds (`checkpoint_contents`)."""


def numpy_number_globals() -> List[Any]:
    """What `torch.load(weights_only=True)` needs to read a numpy number: its reconstructor (under numpy 1's module
    name and numpy 2's, since a file may come from either) and its dtypes. None of them runs code. Checkpoints written
    before `plain_values` by runs with a nerfstudio scheduler hold such numbers."""
    try:
        from numpy._core.multiarray import scalar  # numpy 2
    except ImportError:
        from numpy.core.multiarray import scalar  # numpy 1
    dtypes = [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith("DType")]
    names = ("numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar")
    return [*((scalar, name) for name in names), np.dtype, *dtypes]


def read_checkpoint(path: Path) -> Dict[str, Any]:
    """A checkpoint of this trainer, loaded on the CPU, or a CheckpointError that says what is wrong with the file."""
    try:
        with torch.serialization.safe_globals(numpy_number_globals()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as error:
        # torch's first sentence, without the paragraph on corrupt files it may go on with.
        reason = str(error).strip().splitlines()[0].split(". ")[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{path} cannot be read ({reason}): cut short or not a checkpoint. Resume from an earlier one with "
            "--load-step N (or --load-checkpoint PATH)."
        ) from error
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise CheckpointError(
            f"{path} is not a checkpoint of a HyperNeRFGAN run (it has no {', '.join(missing)}). Point --load-dir at "
            "the nerfstudio_models folder of a run of ns-train hypernerfgan, -lite or -tiny."
        )
    return state


def mismatch_message(path: Path, error: Exception, config: Optional[HyperNeRFGANTrainerConfig] = None) -> str:
    """What to do when a checkpoint's networks or optimizers are not the ones this run builds: torch's message is a
    screen of key names and shapes, so it is counted here, with one example of each kind, the method the
    checkpoint's run was started with and, given this run's `config`, the network options that run set otherwise
    (a preset whose default changed since the run began resumes with the old value given on the command line)."""
    text = str(error)
    differences = []
    shapes = re.findall(
        r"size mismatch for (\S+): copying a param with shape torch\.Size\((\[.*?\])\) from checkpoint, the shape in "
        r"current model is torch\.Size\((\[.*?\])\)",
        text,
    )
    if shapes:
        name, saved, built = shapes[0]
        differences.append(f"{len(shapes)} tensors of another shape (e.g. {name}: {saved} saved, {built} here)")
    for label, kind in (("Missing", "missing from it"), ("Unexpected", "that this run does not build")):
        listed = re.search(rf"{label} key\(s\) in state_dict: (.*)", text)
        keys = re.findall(r'"([^"]+)"', listed.group(1)) if listed else []
        if keys:
            differences.append(f"{len(keys)} tensors {kind} (e.g. {keys[0]})")
    if not differences:
        differences.append(text.strip().splitlines()[0] if text.strip() else type(error).__name__)
    config_path = path.parent.parent / "config.yml"
    config_text = config_path.read_text(encoding="utf8") if config_path.is_file() else ""
    method = re.search(r"^method_name: (\S+)", config_text, re.MULTILINE)
    started = f" ({config_path} says ns-train {method.group(1)})" if method else ""
    options = network_options_set_otherwise(config_text, config) if config is not None else []
    otherwise = f" Network options of that run that this one sets otherwise: {', '.join(options)}." if options else ""
    return (
        f"{path} does not fit the networks this run builds: {'; '.join(differences)}. Resume with the method and the "
        f"architecture options the run was started with{started}.{otherwise}"
    )


NETWORK_OPTION_GROUPS = ("model", "discriminator")
"""The pipeline's config groups whose options shape the networks a checkpoint holds (the generator's, the
discriminator's); a resumed run that differs from its checkpoint's run in one of them cannot load it."""


def network_options_set_otherwise(config_text: str, config: HyperNeRFGANTrainerConfig) -> List[str]:
    """The `--pipeline.model.*` and `--pipeline.discriminator.*` options that a run's config.yml (`config_text`) sets
    otherwise than this run's `config`, as "--option saved-value (here value)"; none where it cannot be read."""
    try:
        saved = yaml.load(config_text, Loader=yaml.Loader).pipeline
    except (yaml.YAMLError, AttributeError, ImportError, TypeError):  # not a HyperNeRFGAN config.yml we can read
        return []
    options = []
    for group in NETWORK_OPTION_GROUPS:
        saved_group, built_group = getattr(saved, group, None), getattr(config.pipeline, group)
        if type(saved_group) is not type(built_group):
            continue
        # Options newer than the saved run were filled with their defaults as it loaded (`DefaultsForMissingFields`).
        for name, (value, here) in config_changes(saved_group, built_group).items():
            if isinstance(value, (bool, int, float, str, type(None))):  # what a command line can give
                options.append(f"--pipeline.{group}.{name.replace('_', '-')} {value} (here {here})")
    return options


@dataclass(frozen=True)
class RewindPoint:
    """A training state kept in host memory for the collapse guard: `checkpoint_contents` after iteration `step`
    (-1: before the first), serialized, so that training's in-place updates leave it as it was."""

    step: int
    serialized: io.BytesIO
    """What `torch.save` wrote, kept in its buffer: its bytes copied out would double the host memory for a moment."""

    def contents(self) -> Dict[str, Any]:
        """The `checkpoint_contents`, loaded on the CPU."""
        self.serialized.seek(0)
        return torch.load(self.serialized, map_location="cpu", weights_only=True)


class HyperNeRFGANTrainer(Trainer):
    """Schedules the discriminator and generator phases; see the module docstring."""

    config: HyperNeRFGANTrainerConfig
    pipeline: AdversarialPipeline

    def __init__(self, config: HyperNeRFGANTrainerConfig, local_rank: int = 0, world_size: int = 1) -> None:
        with warnings.catch_warnings():
            # nerfstudio builds its grad scaler for the config's fp16 before it turns fp16 off on a CPU; the scaler
            # then turns itself off with a warning that is not the user's to act on.
            warnings.filterwarnings("ignore", message=".*GradScaler is enabled, but CUDA is not available")
            super().__init__(config, local_rank=local_rank, world_size=world_size)
            self.grad_scaler = GradScalerWithHostScale(enabled=self.use_grad_scaler)
        self.device_type = self.device.split(":")[0]
        if self.device_type == "cpu" and config.mixed_precision and local_rank == 0:
            curve = config.quality_curve
            CONSOLE.print(
                f"[bold yellow]{config.method_name} is sized for a GPU (it trains in fp16 there). On this CPU expect "
                "seconds to tens of seconds per iteration"
                + (
                    f", and minutes per quality-curve point ({curve.num_generated:,} samples each: "
                    "--quality-curve.num-generated, or --quality-curve.interval-images 0 for none)"
                    if curve.enabled
                    else ""
                )
                + ". hypernerfgan-tiny is the preset for a CPU."
            )
        if self.device_type == "cuda" and world_size > 1:
            # Each process's own GPU for NCCL's collectives (the random states' gather, barriers), which use the
            # current device; nerfstudio's launcher leaves every process on GPU 0.
            torch.cuda.set_device(self.device)
        self.skipped_steps = 0
        self.consecutive_skipped_steps = 0
        self.consecutive_empty_iterations = 0
        self.generator_collapsed = False
        self.last_healthy_checkpoint: Optional[Path] = None
        """The newest checkpoint written (or resumed from) while the fakes were not empty: the one to resume a
        collapsed run from, which saving keeps while the fakes are empty."""
        self.collapse_rewinds_done = 0
        self.rewind_point: Optional[RewindPoint] = None
        """The newest training state from before the fakes emptied that is kept in host memory: a new run's start, then
        one every `collapse_rewind_interval` iterations; where a collapse rewinds to when no checkpoint is newer."""
        self.fakes_empty_somewhere = False
        """Whether any process's fakes were empty in the last iteration (`agree_on_stopping`): no rewind point then."""
        self.viewer_scene_ready = False
        self.last_completed_step: Optional[int] = None
        self.interrupted = False
        self.stop_requested_at: Optional[float] = None
        """`time.monotonic()` of the first stop signal, which a repeat within `REPEATED_STOP_SECONDS` joins."""
        self.stop_signal = signal.SIGINT
        """The signal that stopped the run (under DDP a process may stop with the others without one: Ctrl-C's)."""
        self.clock = TrainingClock()
        self.quality_curve: Optional[QualityCurve] = None
        self.resumed_checkpoint: Optional[Path] = None
        self._resumed_step = -1
        self.stop_group: Optional[Any] = None
        """Under DDP, the CPU process group on which the processes agree to stop (`agree_on_stopping`)."""

    # ------------------------------------------------------------------ setup and the loop

    def setup(self, test_mode: str = "val") -> None:  # type: ignore[override]
        try:
            self.check_options()
            super().setup(test_mode=test_mode)  # type: ignore[arg-type]
        except HyperNeRFGANError as error:
            print_error(error)
            self.remove_unused_run_folder()
            raise SystemExit(error.exit_code) from None
        if self.world_size > 1 and dist.is_initialized():
            self.stop_group = dist.new_group(backend="gloo")  # every process calls it, in the same order
        if self.config.quality_curve.enabled and comms.is_main_process():
            self.setup_quality_curve()

    def check_options(self) -> None:
        """Refuses nerfstudio's options that the GAN iteration does not implement, rather than ignoring them."""
        ignored = [flag for flag, used in UNSUPPORTED_TRAINER_OPTIONS.items() if used(self.config)]
        if ignored:
            raise ConfigError(
                f"{' and '.join(ignored)}: not supported by HyperNeRFGAN's trainer, whose discriminator and generator "
                "phases each step their own optimizer once per iteration. Leave them out; for a larger batch per "
                "update raise --pipeline.datamanager.batch-size."
            )

    def remove_unused_run_folder(self) -> None:
        """After a failed start (a wrong --data path, an empty or unreadable folder), the run folder goes again if it
        holds only the config.yml ns-train wrote: each corrected retry would otherwise leave one more run without a
        checkpoint or a curve for the viewer, `ns-render` or `hypernerfgan plot outputs/...` to trip over. A folder
        with anything else in it is left alone, and so are the experiment and method folders holding other runs."""
        run = self.base_dir
        if not comms.is_main_process() or not run.is_dir() or [path.name for path in run.iterdir()] != ["config.yml"]:
            return
        (run / "config.yml").unlink()
        output_dir = self.config.output_dir.resolve()
        for folder in [run, *run.parents]:
            if folder.resolve() == output_dir or output_dir not in folder.resolve().parents or any(folder.iterdir()):
                break
            folder.rmdir()

    def setup_quality_curve(self) -> None:
        """Scores the EMA generator after the iterations that cross the curve's interval (main process only)."""
        curve = QualityCurve(self.config.quality_curve, self.pipeline, self.base_dir / METRICS_FILENAME, self.clock)
        if self.resumed_checkpoint is not None:
            # A resumed run's folder is new: its curve starts with the points of the run it continues.
            curve.continue_from(self.resumed_checkpoint.parent.parent / METRICS_FILENAME, self._start_step - 1)
        self.quality_curve = curve

    def eval_iteration(self, step: int) -> None:
        """nerfstudio's evaluations, then the quality curve's point when one is due.

        Here, in the loop's evaluation slot, and not in an after-iteration callback: nerfstudio times the callbacks
        as part of the iteration, so scoring there (seconds on a GPU, a minute on a CPU) showed as a slow training
        iteration in "Train Iter (time)", "Train Rays / Sec" and the ETA for the next 20 steps. nerfstudio's own
        evaluations run only with a logger (tensorboard, wandb, comet); the curve runs with the viewer alone too.
        After a Ctrl-C the point is left out: the stop was promised after the iteration.

        The loop also ends here after the run's last iteration: `--max-num-iterations` counts the whole run's
        iterations, so a resumed run ends where it would have without the interruption (nerfstudio 1.1.5 counts them
        anew from the checkpoint's step, nerfstudio#3096, which moved the curve's end and the budget of images)."""
        super().eval_iteration(step)
        if self.quality_curve is not None and not self.interrupted:
            self.quality_curve.after_iteration(step)
        self.agree_on_stopping()
        if self.generator_collapsed:
            if self.collapse_rewinds_done >= self.config.collapse_rewinds:
                self.save_rewind_point()  # the way on that the message names
            raise GeneratorCollapsedError(self.collapse_message(step))
        # A stop asked for while a collapse was rewound: the loop, entered again, began with stop_training unset.
        self.stop_training = self.stop_training or self.interrupted or step + 1 >= self.config.max_num_iterations
        if self.rewind_point_due(step):
            self.keep_rewind_point(step)

    def agree_on_stopping(self) -> None:
        """Under DDP, whether any process was asked to stop (or saw the generator collapse), decided by all of them
        at the same point of the same iteration. Ctrl-C reaches each process at its own moment (one may be a phase
        ahead of another); a process that stopped alone would leave the others waiting in a collective for ever. One
        all-reduce of three flags per iteration, over a CPU (gloo) group, so no GPU is waited for; the third, whether
        any process's fakes were empty, keeps the processes' rewind points at the same steps."""
        self.fakes_empty_somewhere = self.consecutive_empty_iterations > 0
        if self.stop_group is None:
            return
        flags = torch.tensor(
            [int(self.interrupted), int(self.generator_collapsed), int(self.fakes_empty_somewhere)], dtype=torch.int32
        )
        dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self.stop_group)
        self.interrupted = self.stop_training = bool(flags[0].item())
        self.generator_collapsed = bool(flags[1].item())
        self.fakes_empty_somewhere = bool(flags[2].item())

    def train(self) -> None:
        """nerfstudio's loop, with Ctrl-C and SIGTERM turned into "finish the iteration, save, exit"."""
        if self.resumed_checkpoint is not None and self._start_step >= self.config.max_num_iterations:
            CONSOLE.print(
                f"[bold yellow]{escape(str(self.resumed_checkpoint))} has trained {self._start_step:,} iterations, the "
                f"run's --max-num-iterations ({self.config.max_num_iterations:,}): nothing to train. Raise "
                "--max-num-iterations to train on."
            )
            return
        previous_handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
        self.stop_requested_at = None
        for signum in STOP_SIGNALS:
            signal.signal(signum, self.request_stop)
        self.clock.restart()
        try:
            if self.quality_curve is not None:
                self.quality_curve.start(self._start_step)  # the first point: minutes on a CPU
            self.agree_on_stopping()
            if self.interrupted:
                self.write_scalars_without_an_iteration()
                CONSOLE.print("Interrupted before the first iteration; nothing new to save.")
            else:
                self.train_rewinding_collapses()
        except TrainingDivergedError as error:
            print_error(error)
            raise SystemExit(error.exit_code) from None
        finally:
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
        if self.interrupted:
            raise SystemExit(128 + self.stop_signal)

    def train_rewinding_collapses(self) -> None:
        """nerfstudio's loop, entered again from an earlier step after each collapse it rewinds."""
        if self.rewinds_collapses() and self.resumed_checkpoint is None:
            self.keep_rewind_point(self._start_step - 1)
        while True:
            try:
                super().train()
                return
            except GeneratorCollapsedError:
                if self.collapse_rewinds_done >= self.config.collapse_rewinds or not self.rewind_collapse():
                    raise

    def _init_viewer_state(self) -> None:
        if not self.viewer_scene_ready:  # once, however often the loop is entered
            super()._init_viewer_state()
            self.viewer_scene_ready = True

    def request_stop(self, signum: int, frame: Any) -> None:
        """First Ctrl-C or SIGTERM: stop after the current iteration, abandoning a quality point being scored. A
        second one quits at once, as the default handlers do; one within `REPEATED_STOP_SECONDS` of the first is
        that first one again (`timeout` signals twice), which quit a run unsaved when it came while this ran."""
        now = time.monotonic()
        if self.stop_requested_at is not None:
            if now - self.stop_requested_at < REPEATED_STOP_SECONDS:
                return
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signum)
            return  # raise_signal runs the default handler before it returns: a KeyboardInterrupt, or the end
        self.stop_requested_at = now
        self.interrupted = True
        self.stop_signal = signal.Signals(signum)
        if self.stop_group is None:  # under DDP the processes stop together (`agree_on_stopping`)
            self.stop_training = True
        if signum == signal.SIGINT:
            CONSOLE.print(
                "[bold yellow]Stopping after this iteration and saving a checkpoint. "
                "Press Ctrl-C again to quit at once."
            )
        else:
            CONSOLE.print(
                f"[bold yellow]{self.stop_signal.name} (a time limit, docker stop or kill): stopping after this "
                "iteration and saving a checkpoint. A second one quits at once."
            )
        if self.quality_curve is not None and self.quality_curve.scoring:
            raise ScoringInterrupted

    def _after_train(self) -> None:
        # nerfstudio saves at `self.step`, which after an early stop is the step that never ran.
        if self.last_completed_step is not None:
            self.step = self.last_completed_step
        if self.quality_curve is not None and not self.interrupted and self.last_completed_step is not None:
            self.quality_curve.finish(self.last_completed_step)
        if self.last_completed_step is None:  # no iteration to run (--max-num-iterations 0, or resumed at the end)
            self.write_scalars_without_an_iteration()
        super()._after_train()
        flush_event_files()  # the session's last scalars (the curve's final point) are on disk when train() returns
        if self.interrupted:
            datamanager = self.config.pipeline.datamanager
            data = datamanager.data or datamanager.dataparser.data
            command = f"ns-train {self.config.method_name} --data {data} --load-dir {self.checkpoint_dir}"
            CONSOLE.print(
                f"Interrupted. Resume with: [bold]{escape(command)}[/bold] and the other options this run was "
                "started with."
            )

    @staticmethod
    def write_scalars_without_an_iteration() -> None:
        """Writes the scalars a session left pending without running an iteration (the curve's first point) to
        tensorboard and the other event writers. nerfstudio's `write_out_storage` fails then: its console writer
        prints the stats of the last iteration, and there is none. The session ends next (also where it was
        interrupted before its first iteration, which does not pass `_after_train`), so the files are flushed.
        Nothing is left for whatever trains next in this process."""
        for event_writer in writer.EVENT_WRITERS:
            if isinstance(event_writer, writer.LocalWriter):
                continue
            for event in writer.EVENT_STORAGE:
                getattr(event_writer, event["write_type"].value)(event["name"], event["event"], event["step"])
        writer.EVENT_STORAGE.clear()
        flush_event_files()

    def _train_complete_viewer(self) -> None:
        if not self.interrupted:
            super()._train_complete_viewer()

    # ------------------------------------------------------------------ one GAN iteration

    @profiler.time_function
    def train_iteration(self, step: int) -> TRAIN_INTERATION_OUTPUT:
        """D phase, G phase, one grad-scaler update; returns the summed loss and per-phase losses for the logs."""
        start = time.perf_counter()
        scale_before = self.grad_scaler.get_scale()  # read after the previous iteration's update: no new wait
        d_losses, d_metrics, d_finite = self.run_phase(
            ["discriminator"], lambda: self.pipeline.get_discriminator_loss_dict(step)
        )
        g_losses, g_metrics, g_finite = self.run_phase(
            ["generator"], lambda: self.pipeline.get_train_loss_dict(step)[1:]
        )
        self.grad_scaler.update()
        scale_after = self.grad_scaler.get_scale()  # the iteration's one wait for the device
        scaler_skipped = self.grad_scaler.is_enabled() and scale_after < scale_before
        if scaler_skipped:
            reason = (
                f"fp16 gradients overflowed at loss scale {scale_before:g}, so the grad scaler skipped the overflowing "
                f"network's update and lowered its scale to {scale_after:g} (expected now and then in "
                "mixed precision: the scaler probes for the largest scale that fits)"
            )
        else:
            reason = "non-finite loss or gradients, step skipped"
        self.account_for_skipped_step(step, skipped=scaler_skipped or not (d_finite and g_finite), reason=reason)
        self.account_for_empty_fakes(step, float(g_metrics[FAKE_OPACITY]))  # the scale's read waited for it
        if not scaler_skipped:
            self.optimizers.scheduler_step_all(step)
        self.last_completed_step = step

        loss_dict = {name: value.detach() for name, value in {**d_losses, **g_losses}.items()}
        metrics_dict = {**d_metrics, **g_metrics}
        images = self.pipeline.batch_size * self.world_size
        metrics_dict["images_per_second"] = torch.tensor(images / max(time.perf_counter() - start, 1e-9))
        metrics_dict["skipped_steps"] = torch.tensor(float(self.skipped_steps))
        loss = functools.reduce(torch.add, loss_dict.values())
        return loss, loss_dict, metrics_dict

    def run_phase(
        self, param_groups: List[str], compute_losses: Callable[[], Tuple[Dict[str, Tensor], Dict[str, Tensor]]]
    ) -> Tuple[Dict[str, Tensor], Dict[str, Tensor], bool]:
        """Zero, forward, backward and step the given parameter groups only.

        Returns the phase's losses and metrics and whether its step was taken with finite values.
        """
        self.optimizers.zero_grad_some(param_groups)
        with torch.autocast(device_type=self.device_type, enabled=self.mixed_precision):
            loss_dict, metrics_dict = compute_losses()
        loss = functools.reduce(torch.add, loss_dict.values())
        self.grad_scaler.scale(loss).backward()
        if self.grad_scaler.is_enabled():
            # The scaler unscales, finds any inf/NaN and then skips the step itself.
            self.optimizers.optimizer_scaler_step_some(self.grad_scaler, param_groups)
            return loss_dict, metrics_dict, True
        parameters = [p for group in param_groups for p in self.optimizers.parameters[group]]
        finite = loss_and_gradients_are_finite(loss, parameters)
        if finite:
            self.optimizers.optimizer_scaler_step_some(self.grad_scaler, param_groups)
        return loss_dict, metrics_dict, finite

    def account_for_skipped_step(self, step: int, skipped: bool, reason: str) -> None:
        """Counts skipped iterations and says why; too many in a row means training diverged."""
        if not skipped:
            self.consecutive_skipped_steps = 0
            return
        self.skipped_steps += 1
        self.consecutive_skipped_steps += 1
        CONSOLE.print(f"[yellow]Step {step}: {reason} ({self.skipped_steps} so far).")
        if self.consecutive_skipped_steps >= self.config.max_consecutive_skipped_steps:
            raise TrainingDivergedError(
                f"Training diverged: {self.consecutive_skipped_steps} iterations in a row up to step {step} produced "
                f"non-finite losses or gradients, so no update was applied. The last checkpoint in "
                f"{self.checkpoint_dir} is unchanged. Try a lower learning rate, a larger R1 gamma "
                f"(--pipeline.loss.r1-gamma), or full precision (--mixed-precision False)."
            )

    def account_for_empty_fakes(self, step: int, fake_opacity: float) -> None:
        """Counts iterations in a row whose fakes were empty. Such a generator is dead, not resting: the ReLU passes
        no gradient below zero (a softplus next to none), and Adam without momentum (beta1 = 0) then moves no
        weight."""
        if not fake_opacity <= self.config.empty_fakes_opacity:  # NaN too: that is the divergence check's business
            self.consecutive_empty_iterations = 0
            return
        if self.consecutive_empty_iterations == 0 and step == self._start_step:
            self.last_healthy_checkpoint = None  # the checkpoint this session resumed from renders nothing already
        self.consecutive_empty_iterations += 1
        limit = self.config.max_consecutive_empty_iterations
        if limit > 0 and self.consecutive_empty_iterations >= limit:
            self.generator_collapsed = True

    def empty_fakes(self) -> str:
        """What an empty fake is, for the messages."""
        return f"its fakes have rendered nothing visible (mean opacity at most {self.config.empty_fakes_opacity:g})"

    def collapse_message(self, step: int) -> str:
        """What collapsed, why training stops, and where to go on from (called on the last iteration counted)."""
        empty_since = step - self.consecutive_empty_iterations + 1
        quarter = self.optimizers.optimizers["generator"].param_groups[0]["lr"] / 4
        if self.last_healthy_checkpoint is not None:
            where = (
                "Resume from the last checkpoint written before it, which is kept: --load-checkpoint "
                f"{self.last_healthy_checkpoint},"
            )
        else:
            where = "No checkpoint of this session predates it: start again"
        rewinds = self.collapse_rewinds_done
        rewound = f" after {rewinds} rewind{'s' if rewinds != 1 else ''} with other random numbers" if rewinds else ""
        return (
            f"The generator collapsed to empty scenes: {self.empty_fakes()} for "
            f"{self.consecutive_empty_iterations} iterations in a row, since step {empty_since}, up to step "
            f"{step}. An empty generator gets no gradient through the target field's density (a ReLU; a softplus "
            f"gives next to none) and can never render anything again; training stops{rewound} rather than spend "
            f"more time. {where} with a change "
            f"(resumed as it "
            f"is, a run repeats its iterations exactly, to the same collapse): a lower learning rate for the generator "
            f"(a quarter: --optimizers.generator.optimizer.lr {quarter:g}) or adaptive augmentation that reacts faster "
            f"(--pipeline.augment.adjustment-images 5000). A collapse follows a discriminator that wins too fast: in "
            f"tensorboard, D(real) and D(fake) move far apart and fake_opacity falls just before it."
        )

    def rewind_collapse(self) -> bool:
        """Goes back to the newest state from before the fakes emptied (the last checkpoint written then, or the rewind
        point kept in memory) with other random numbers, for the loop to train on from there; False where there is
        neither. The main process, which writes the checkpoints, chooses; under DDP every process rewinds to its
        choice (their rewind points are taken at the same steps)."""
        collapsed_at = self.step
        empty_since = collapsed_at - self.consecutive_empty_iterations + 1
        kept = [] if self.last_healthy_checkpoint is None else [self.checkpoint_step(self.last_healthy_checkpoint)]
        if self.rewind_point is not None:
            kept.append(self.rewind_point.step)
        target = max(kept, default=NO_REWIND)
        if self.stop_group is not None:
            chosen = torch.tensor([target], dtype=torch.int64)
            dist.broadcast(chosen, src=0, group=self.stop_group)
            target = int(chosen.item())
        if target == NO_REWIND:
            return False
        if self.rewind_point is not None and target == self.rewind_point.step:
            state = self.rewind_point.contents()
            if target < 0:
                where = "the start of this session (no checkpoint was written before it)"
            else:
                interval = self.config.collapse_rewind_interval
                where = f"step {target} (the state kept in memory every {interval:,} iterations)"
        else:
            source = checkpoint_path(self.checkpoint_dir, target)
            if self.resumed_checkpoint is not None and target == self._resumed_step:
                source = self.resumed_checkpoint  # where the run this session resumed wrote it
            state = read_checkpoint(source)
            where = f"step {target} ({source})"
        self.collapse_rewinds_done += 1
        streams = np.random.SeedSequence([self.config.machine.seed, self.collapse_rewinds_done, comms.get_rank()])
        seed = int(streams.generate_state(1)[0])
        if comms.is_main_process():
            CONSOLE.print(
                f"[bold yellow]The generator collapsed to empty scenes: {self.empty_fakes()} "
                f"since step {empty_since}, up to step {collapsed_at}. Rewinding to {where} with other random numbers "
                f"(seed {seed}): rewind {self.collapse_rewinds_done} of {self.config.collapse_rewinds} "
                "(--collapse-rewinds)."
            )
            self.delete_checkpoints_after(target)
        self.restore_training_state(state, source=None)
        # Imported here: nerfstudio.scripts.train imports the method configs, and through them this module.
        from nerfstudio.scripts.train import _set_random_seed

        _set_random_seed(seed)
        self.consecutive_empty_iterations = self.consecutive_skipped_steps = 0
        self.generator_collapsed = False
        self.last_completed_step = target if target >= 0 else None
        purge_logs_after(target)
        if self.quality_curve is not None:
            self.quality_curve.rewind_to(target)
        return True

    def rewinds_collapses(self) -> bool:
        """Whether collapses are noticed and rewound: the condition for keeping any rewind point."""
        return self.config.collapse_rewinds > 0 and self.config.max_consecutive_empty_iterations > 0

    def rewind_point_due(self, step: int) -> bool:
        """Whether to keep the state after iteration `step` as the rewind point: every `collapse_rewind_interval`
        iterations of a run the collapse guard rewinds, while every process's fakes render something, except where a
        checkpoint is written after the same iteration or the run stops."""
        interval = self.config.collapse_rewind_interval
        return (
            interval > 0
            and self.rewinds_collapses()
            and step > 0
            and step % interval == 0
            and not step_check(step, self.config.steps_per_save)
            and not self.fakes_empty_somewhere
            and not self.stop_training
        )

    def keep_rewind_point(self, step: int) -> None:
        """Serializes the training state after iteration `step` into host memory, in place of the rewind point before
        it (released first: two copies of the paper's networks at once would be host memory for nothing). Every
        process keeps its own, with every process's random states, as a checkpoint holds them."""
        self.rewind_point = None
        contents = checkpoint_contents(
            step, self.pipeline, self.optimizers, self.grad_scaler, self.skipped_steps, self.clock,
            gathered_random_states(self.world_size),
        )
        serialized = io.BytesIO()
        torch.save(contents, serialized)  # a copy: training changes the tensors in place
        self.rewind_point = RewindPoint(step, serialized)

    def save_rewind_point(self) -> None:
        """Writes the rewind point as a checkpoint where it is newer than the last one written before the fakes
        emptied, so that a run the collapse stops can be resumed from it; the main process writes."""
        point = self.rewind_point
        newest = -1 if self.last_healthy_checkpoint is None else self.checkpoint_step(self.last_healthy_checkpoint)
        if point is None or point.step <= newest or not comms.is_main_process():
            return
        path = checkpoint_path(self.checkpoint_dir, point.step)
        with atomic_output(path) as temporary:
            temporary.write_bytes(point.serialized.getbuffer())
        self.last_healthy_checkpoint = path

    def checkpoint_step(self, path: Path) -> int:
        """The step of this run's checkpoint `path`: the one it resumed from, or one it wrote (`checkpoint_path`)."""
        if path == self.resumed_checkpoint:
            return self._resumed_step
        return int(path.stem.split("-")[-1])

    def delete_checkpoints_after(self, step: int) -> None:
        """Deletes this run's checkpoints written after `step`: each holds the dead generator, and --load-dir would
        resume the newest."""
        dead = [path for path in saved_checkpoints(self.checkpoint_dir) if self.checkpoint_step(path) > step]
        for path in dead:
            path.unlink()
        if dead:
            names = ", ".join(path.name for path in dead)
            CONSOLE.print(f"Deleted the collapsed generator's checkpoints: {names}.")

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, step: int) -> None:
        """nerfstudio's checkpoint plus every process's random-number-generator states and the skip counter. Every
        process calls it (nerfstudio's loop does); the main process writes."""
        rank_random_states = gathered_random_states(self.world_size)
        if not comms.is_main_process():
            return
        contents = checkpoint_contents(
            step, self.pipeline, self.optimizers, self.grad_scaler, self.skipped_steps, self.clock, rank_random_states
        )
        checkpoint_path = write_checkpoint(self.checkpoint_dir, step, contents)
        if self.consecutive_empty_iterations == 0:
            self.last_healthy_checkpoint = checkpoint_path
        if self.config.save_only_latest_checkpoint:  # of the checkpoints it names: not a .ckpt a user put there
            for old in saved_checkpoints(self.checkpoint_dir):
                if old not in (checkpoint_path, self.last_healthy_checkpoint):  # kept while the fakes are empty
                    old.unlink()

    def _load_checkpoint(self) -> None:
        """Resumes from `--load-dir` (latest or `--load-step`) or `--load-checkpoint`, exactly."""
        checkpoint_path = self.checkpoint_to_resume()
        if checkpoint_path is None:
            CONSOLE.print("No checkpoint to load, so training from scratch.")
            return
        state = read_checkpoint(checkpoint_path)
        self.restore_training_state(state, source=checkpoint_path)
        self.restore_rank_random_states(state["random_states"], state["step"])
        if "clock" in state:  # checkpoints written before the quality curve have no clock
            self.clock = TrainingClock.from_state_dict(state["clock"])
        self.resumed_checkpoint = self.last_healthy_checkpoint = checkpoint_path
        self._resumed_step = int(state["step"])
        CONSOLE.print(f"Resuming from {checkpoint_path} (step {state['step']}).")

    def restore_training_state(self, state: Dict[str, Any], source: Optional[Path]) -> None:
        """The networks, optimizers, schedulers, grad scaler and skip count of `checkpoint_contents`; training goes on
        after its step. `source`: the checkpoint file, for the message when its networks do not fit this run's."""
        self._start_step = state["step"] + 1
        try:
            self.pipeline.load_pipeline(state["pipeline"], state["step"])
            self.restore_optimizers(state["optimizers"])
        except (RuntimeError, ValueError, KeyError) as error:
            if source is None:
                raise
            raise CheckpointError(mismatch_message(source, error, self.config)) from error
        if self.config.load_scheduler:
            self.optimizers.load_schedulers(state["schedulers"])
        self.grad_scaler.load_state_dict(state["scalers"])
        self.skipped_steps = state["skipped_steps"]

    def restore_optimizers(self, saved: Dict[str, Any]) -> None:
        """Each optimizer's state (Adam's moment estimates, its step count) from the checkpoint, and its
        hyperparameters (learning rate, betas, epsilon) from this run's configuration.

        torch's `load_state_dict` would also bring back the saved hyperparameters and silently override the
        configured ones, so that resuming a run with a lower `--optimizers.generator.optimizer.lr` (the way out of a
        collapse) trained on at the old rate. A changed hyperparameter is said."""
        configured = {
            name: [{key: value for key, value in group.items() if key != "params"} for group in optimizer.param_groups]
            for name, optimizer in self.optimizers.optimizers.items()
        }
        self.optimizers.load_optimizers(saved)
        for name, optimizer in self.optimizers.optimizers.items():
            for group, wanted in zip(optimizer.param_groups, configured[name]):
                changed = [
                    f"{key} {group[key]} -> {value}"
                    for key, value in wanted.items()
                    if key in group and group[key] != value
                ]
                if changed:
                    CONSOLE.print(f"The {name} optimizer resumes with this run's {', '.join(changed)}.")
                group.update(wanted)

    def restore_rank_random_states(self, saved: Union[Dict[str, Any], List[Dict[str, Any]]], step: int) -> None:
        """This process's generators as the checkpoint left them (a checkpoint of one process holds one dict); a run
        resumed on another number of processes starts every process's streams anew, each its own."""
        rank_states = saved if isinstance(saved, list) else [saved]
        if len(rank_states) == self.world_size:
            restore_random_states(rank_states[comms.get_rank()])
            return
        seed = self.config.machine.seed + comms.get_rank() + (step + 1) * self.world_size
        CONSOLE.print(
            f"The checkpoint was written by {len(rank_states)} processes and is resumed by {self.world_size}: "
            f"each process's random numbers start anew (seed {seed}), so the run does not repeat an uninterrupted one."
        )
        # Imported here: nerfstudio.scripts.train imports the method configs, and through them this module.
        from nerfstudio.scripts.train import _set_random_seed

        _set_random_seed(seed)  # as nerfstudio's launcher seeds each process

    def checkpoint_to_resume(self) -> Optional[Path]:
        """The checkpoint named by the configuration, checked to exist."""
        if self.config.load_checkpoint is not None:
            path = Path(self.config.load_checkpoint)
        elif self.config.load_dir is not None:
            load_dir = Path(self.config.load_dir)
            checkpoints = saved_checkpoints(load_dir)
            if not checkpoints:
                models = load_dir / "nerfstudio_models"
                hint = (
                    f"It is a run folder: resume with --load-dir {models}"
                    if saved_checkpoints(models)
                    else "Point --load-dir at a run's nerfstudio_models folder"
                )
                raise CheckpointError(f"No checkpoint (step-*.ckpt) in {load_dir}. {hint}.")
            if self.config.load_step is None:
                path = checkpoints[-1]
            else:
                path = checkpoint_path(load_dir, self.config.load_step)
        else:
            return None
        if not path.is_file():
            raise CheckpointError(f"Checkpoint {path} does not exist.")
        return path
