"""`hypernerfgan bench`: what one training iteration of each method costs, measured, on this machine.

    hypernerfgan bench --json bench.json
    hypernerfgan bench --methods hypernerfgan --variants savers-on --simulate-memory-gb 16     # a T4 on a big GPU

For every method and variant (the memory savers off or on) it builds the real trainer (nerfstudio's pipeline,
optimizers and grad scaler, on the built-in data) and runs full GAN iterations: D phase, G phase, EMA and the
adaptive augmentation, from ADA's p at `--augment-probability` (at p = 0, where training starts, nothing is augmented).
Per row it reports

    plain s, R1 s         wall-clock of a plain iteration and of a lazy-R1 iteration (every `r1_interval`-th), each
                          timed over `iterations` iterations of its kind, and their ratio
    s/iter, images/s      the average iteration over a whole R1 interval (interval - 1 plain ones and one R1 one);
                          images = real images shown to D per second
    Mpoints/s             samples rendered per second (both phases' renders, or their shared one); the target MLP
                          runs at those that can lie inside the object sphere (`mlp_points_per_iteration` in
                          the JSON)
    ops/iter              tensor operations dispatched in one plain iteration (forward, backward, optimizers, EMA),
                          counted below autograd: the host's per-iteration work, which on a GPU is a fixed cost
                          of launches however small the batch; the same on any device
    device ops            of those, the ones that run on a GPU: its kernels and copies, not views (which launch
                          nothing) nor the host's own work on CPU tensors (a batch's random draws); "-" on the CPU
    GFLOP/iter            floating-point operations of the same plain iteration's matmuls and convolutions
                          (`torch.utils.flop_counter`): the arithmetic a compute-bound GPU spends its time on; the
                          same on any device
    GB moved              bytes the same iteration's operations read and write (each tensor's distinct bytes, in
                          and out; views move nothing): the least memory traffic of its kernels, what a card
                          with little bandwidth for its FLOP/s (a T4: 320 GB/s for 65 fp16 TFLOP/s) spends its
                          time on beside the arithmetic; the same on any device in the same precision. Neither
                          count is made where a network is compiled (`compiled-target-field`,
                          `compiled-discriminator`): compiled code runs eager under the counter
    batch ms              host milliseconds per plain iteration spent preparing its batches in the datamanager
                          (cameras drawn, their rays gathered from the table of pixel rays and rotated, real
                          crops, the copies to the device queued): time the host cannot spend launching kernels
    host waits/iter       operations in that iteration that read a value of an accelerator's tensor on the host
                          (`.item()`, `.tolist()`, `torch.equal`, `nonzero`, ...) or copy between host and device
                          without `non_blocking`: each makes the host wait for the device, so the next launches
                          cannot run ahead of it; "-" on the CPU, where nothing waits
    device busy           the share of a plain iteration's wall-clock during which the accelerator runs kernels or
                          copies (`torch.profiler`, the union of their intervals); the rest it waits for the host to
                          launch them: a batch too small to hide the fixed cost per operation. "-" on the CPU
    saved for backward    bytes of every tensor autograd keeps for the backward passes of one iteration, counted
                          once per storage with `torch.autograd.graph.saved_tensors_hooks`: the same on any device
    CUDA peak             `torch.cuda.max_memory_allocated` over the timed iterations (CUDA only)
    field FLOP/s          achieved FLOP/s of the batched target MLP on one batch of points, and as a fraction of a
                          plain matmul doing the same FLOPs (how close the field runs to what the device can do)
    eval ms/view          milliseconds per view of a new object rendered as the quality curve and ns-eval render
                          them (EMA generator, full resolution, several views per pass), in the row's evaluation
                          precision (`eval_mixed_precision`: fp16 on CUDA in the presets that train in it), and its
                          GFLOP (eval GFLOP/view), counted as above

With `--profile-dir`, each row's profiled plain iteration is also written out: its operations ranked by their own
time (GPU time on a GPU) and its timeline, which show where a GPU iteration's time goes and where the device waits.

And, in the same process, a naive baseline of the chosen methods: the same trainer with the target field evaluated
the way the reference implementation does, one object at a time in a Python loop with each point multiplied by its
object's full weight matrix (`torch.matmul(W, x.unsqueeze(-1))`), and the speed-up of ours over it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Literal, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from rich.markup import escape
from rich.table import Table
from torch import Tensor
from torch.autograd import DeviceType
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from hypernerfgan_ns.data.cache import atomic_output
from hypernerfgan_ns.engine.in_process import own_event_writers, release_memory
from hypernerfgan_ns.engine.trainer import HyperNeRFGANTrainer, HyperNeRFGANTrainerConfig
from hypernerfgan_ns.errors import HyperNeRFGANError
from hypernerfgan_ns.fields.target_field import ObjectWeights, TargetField
from hypernerfgan_ns.method_configs import METHODS, method_config
from hypernerfgan_ns.metrics.evaluation import GANEvaluationConfig, generated_image_batches
from hypernerfgan_ns.scripts.ablation_rows import ROWS
from hypernerfgan_ns.training.progressive_growing import ProgressiveGrowingConfig
from hypernerfgan_ns.utils.machine import cpu_description
from nerfstudio.engine.callbacks import TrainingCallbackLocation
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.scripts.train import _set_random_seed
from nerfstudio.utils.rich_utils import CONSOLE

GIB = float(1 << 30)
"""Bytes per GiB."""

DEFAULT_AUGMENT_PROBABILITY = 0.02
"""ADA's p in the timed iterations: the most it reaches in the first 10,000 images at its default reaction time. At
p = 0, where training starts, no image is augmented and the augmentation costs nothing."""


class BenchError(HyperNeRFGANError):
    """A benchmark that cannot run as asked."""


# ----------------------------------------------------------------------------------------------------------------------
# The variants.


@dataclass(frozen=True)
class BenchSettings:
    """What the variants are built from (the command's options)."""

    recompute_ray_chunk: int
    """Rays per object per recomputed chunk when a variant recomputes the target MLP's activations."""


@dataclass(frozen=True)
class BenchVariant:
    """A way of running a method: which memory savers are on."""

    description: str
    """What the variant changes, for the table's caption."""
    change: Callable[[HyperNeRFGANTrainerConfig, BenchSettings], None]
    """Edits a copy of the method's config in place."""


def keep_preset(config: HyperNeRFGANTrainerConfig, settings: BenchSettings) -> None:
    """The method as registered."""


def set_savers(mixed_precision: bool, recompute: bool) -> Callable[[HyperNeRFGANTrainerConfig, BenchSettings], None]:
    """fp16 autocast with the grad scaler (CUDA only: nerfstudio trains in fp32 on the CPU) on or off, and the
    target MLP's activations recomputed in the backward pass or kept."""

    def change(config: HyperNeRFGANTrainerConfig, settings: BenchSettings) -> None:
        config.mixed_precision = mixed_precision
        config.pipeline.model.recompute_ray_chunk = settings.recompute_ray_chunk if recompute else None

    return change


def native_double_backward(config: HyperNeRFGANTrainerConfig, settings: BenchSettings) -> None:
    """savers-off with the discriminator's convolutions left to PyTorch's derivatives (the R1 step's reference)."""
    set_savers(mixed_precision=False, recompute=False)(config, settings)
    config.pipeline.discriminator.fast_double_backward = False


def study_rows(*rows: str) -> Callable[[HyperNeRFGANTrainerConfig, BenchSettings], None]:
    """The changes of these `hypernerfgan ablate` rows, in order: the bench times what the study trains."""

    def change(config: HyperNeRFGANTrainerConfig, settings: BenchSettings) -> None:
        for row in rows:
            ROWS[row].change(config)

    return change


def evaluate_in_fp32(config: HyperNeRFGANTrainerConfig, settings: BenchSettings) -> None:
    """The method as registered with its evaluation views rendered in fp32: the reference for rendering them in the
    training's fp16."""
    config.pipeline.model.eval_mixed_precision = False


def discriminator_channels_last(config: HyperNeRFGANTrainerConfig, settings: BenchSettings) -> None:
    """The method as registered with the discriminator's blocks channels-last (NHWC), as StyleGAN2-ADA runs its fp16
    layers: what cuDNN's tensor-core convolutions save when no map is transposed around them."""
    config.pipeline.discriminator.channels_last = True


def growing_stage(downscale: int) -> Callable[[HyperNeRFGANTrainerConfig, BenchSettings], None]:
    """The method as registered, in the stage of progressive growing whose patches are `downscale` times smaller on a
    side, for the whole bench (the stage never ends): what an iteration of that stage costs."""

    def change(config: HyperNeRFGANTrainerConfig, settings: BenchSettings) -> None:
        config.pipeline.progressive_growing = ProgressiveGrowingConfig(
            start_downscale=downscale, images_per_stage=GROWING_STAGE_NEVER_ENDS, fade_images=0
        )

    return change


GROWING_STAGE_NEVER_ENDS = 1 << 60
"""Images per stage of the `growing-stage-...` variants: more than any bench shows."""

GROWING_BENCH_DOWNSCALES = (2, 4)
"""The `growing-stage-xD` variants: progressive growing's stages with patches 2 and 4 times smaller on a side."""

VARIANTS: Dict[str, BenchVariant] = {
    "preset": BenchVariant("the method as registered", keep_preset),
    "savers-off": BenchVariant("fp32, all activations kept", set_savers(mixed_precision=False, recompute=False)),
    "savers-on": BenchVariant(
        "fp16 autocast (CUDA) + recomputed target-MLP activations", set_savers(mixed_precision=True, recompute=True)
    ),
    "fp16": BenchVariant(
        "fp16 autocast (CUDA), all activations kept", set_savers(mixed_precision=True, recompute=False)
    ),
    "recompute": BenchVariant(
        "fp32, recomputed target-MLP activations", set_savers(mixed_precision=False, recompute=True)
    ),
    "pytorch-double-backward": BenchVariant(
        "fp32, all activations kept, the discriminator differentiated twice by PyTorch's own convolution derivatives",
        native_double_backward,
    ),
    "query-every-sample": BenchVariant(
        "the method as registered, the target MLP run at every sample in training, also outside the object sphere",
        study_rows("query-every-sample"),
    ),
    "eval-fp32": BenchVariant("the method as registered, evaluation views rendered in fp32", evaluate_in_fp32),
    "discriminator-channels-last": BenchVariant(
        "the method as registered, the discriminator's blocks channels-last (NHWC)", discriminator_channels_last
    ),
    # The warm-up iterations compile; the timed ones run compiled.
    "compiled-target-field": BenchVariant(
        "the method as registered, the training renders' target field compiled (torch.compile)",
        study_rows("compiled-target-field"),
    ),
    "compiled-discriminator": BenchVariant(
        "the method as registered, the discriminator's plain calls compiled (torch.compile)",
        study_rows("compiled-discriminator"),
    ),
    "shared-fakes": BenchVariant(
        "the method as registered, the G phase training through the D phase's fakes: one render per iteration",
        study_rows("shared-fakes"),
    ),
    "separate-fakes": BenchVariant(
        "the method as registered, each phase rendering its own fakes: two renders per iteration",
        study_rows("separate-fakes"),
    ),
    "relativistic": BenchVariant(
        "the method as registered, with R3GAN's objective: the G phase scores the D phase's reals too, R2 beside R1",
        study_rows("relativistic"),
    ),
    "discriminator-blur": BenchVariant(
        "the method as registered, with EG3D's blur of the discriminator's input (the study row's, not faded yet)",
        study_rows("discriminator-blur"),
    ),
    "importance-half": BenchVariant(
        "the method as registered, half its samples per ray placed by importance (pi-GAN's hierarchical sampling)",
        study_rows("importance-half"),
    ),
    "whole-images": BenchVariant(
        "the method as registered on whole images: patches as large as the training resolution",
        study_rows("whole-images"),
    ),
    # Half the channels at the high resolutions (the paper's 128- and 64-pixel blocks at 128 and 256 instead of 256 and
    # 512), so that whole images cost about the crops' arithmetic: the paper configuration's discriminator forward
    # takes 23.4 GFLOP per image with the half base on whole images, 33.0 on the crops, 63.3 on whole images at full.
    "whole-images-discriminator-base-x0.5": BenchVariant(
        "whole-images with the discriminator's channel_base halved: half its channels at the high resolutions",
        study_rows("whole-images", "discriminator-base-x0.5"),
    ),
    "discriminator-base-x0.5": BenchVariant(
        "the method as registered with the discriminator's channel_base halved: half its channels at the high "
        "resolutions",
        study_rows("discriminator-base-x0.5"),
    ),
    "whole-image-patches": BenchVariant(
        "the method as registered, each patch's rays spread over the whole image: every s-th pixel from a random "
        "first one, the real patches the same photo pixels",
        study_rows("whole-image-patches-random-phase"),
    ),
    **{
        f"growing-stage-x{downscale}": BenchVariant(
            f"the method as registered, in progressive growing's stage of patches {downscale}x smaller on a side",
            growing_stage(downscale),
        )
        for downscale in GROWING_BENCH_DOWNSCALES
    },
}
"""Every variant by name."""

VariantName = Literal[tuple(VARIANTS)]  # type: ignore[valid-type]
"""A registered variant (tyro lists them in --help)."""

MethodName = Literal[tuple(METHODS)]  # type: ignore[valid-type]
"""A registered HyperNeRFGAN method."""

BASELINE_VARIANT = "savers-off"
"""The naive baseline is compared with this variant of the same method: both keep every activation in fp32."""


# ----------------------------------------------------------------------------------------------------------------------
# Measuring.


HOST_READS = frozenset(
    [
        torch.ops.aten._local_scalar_dense.default,  # .item(), float(t), bool(t), if t: ...
        torch.ops.aten.equal.default,
        torch.ops.aten.is_nonzero.default,
        torch.ops.aten.nonzero.default,  # output size depends on the values
        torch.ops.aten.masked_select.default,
    ]
)
"""Operations whose result the host can only have once the device has computed their inputs."""


COPIES = frozenset([torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default])
"""Operations that may move a tensor between the host and an accelerator: `.to(device)`, `.cpu()`, `.tolist()` of a
device tensor, `dst.copy_(src)`."""


def waits_for_device(func: Any, args: Sequence[Any], kwargs: Optional[Dict[str, Any]] = None) -> bool:
    """Whether dispatching `func` on `args` makes the host wait for an accelerator (a CPU tensor is already there).

    Besides reads of device values, a copy between the host and the device waits unless it is `non_blocking`: torch
    synchronises the device's stream after it, in either direction, so a small `torch.tensor(..., device=cuda)` or
    `.tolist()` waits for all the work queued before it, as `.item()` does."""
    kwargs = kwargs or {}
    if func in HOST_READS:
        return any(isinstance(arg, Tensor) and arg.device.type != "cpu" for arg in args)
    if func not in COPIES:
        return False
    if func is torch.ops.aten._to_copy.default:
        source, target = args[0].device, kwargs.get("device") or args[0].device
        non_blocking = kwargs.get("non_blocking", False)
    else:  # copy_(self, src, non_blocking=False): into self
        target, source = args[0].device, args[1].device
        non_blocking = args[2] if len(args) > 2 else kwargs.get("non_blocking", False)
    return (torch.device(source).type == "cpu") != (torch.device(target).type == "cpu") and not non_blocking


def device_busy_seconds(events: Sequence[Any]) -> Optional[float]:
    """Seconds during which an accelerator ran something, from `torch.profiler` events: the union of the intervals of
    its kernels and copies (an asynchronous copy may overlap a kernel; the union counts that time once). None when
    the profile holds no accelerator event: a CPU run, or a profiler that cannot see the GPU (no CUPTI)."""
    intervals = sorted(
        (event.time_range.start, event.time_range.end)
        for event in events
        if event.device_type != DeviceType.CPU and event.time_range.end > event.time_range.start
    )
    if not intervals:
        return None
    busy_us, (current_start, current_end) = 0.0, intervals[0]
    for start, end in intervals[1:]:
        if start > current_end:  # an idle gap: the device waited for the host
            busy_us += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    return (busy_us + current_end - current_start) / 1e6


def is_view(func: Any) -> bool:
    """Whether an operation returns a view of an input (`view`, `expand`, `transpose`, ...): no data moves."""
    return any(value.alias_info is not None and not value.alias_info.is_write for value in func._schema.returns)


def distinct_bytes(tensor: Tensor) -> int:
    """The bytes of a tensor's distinct elements: a broadcast view (a bias expanded over a batch) counts its storage
    once, as a kernel reads it once from memory."""
    size = tensor.numel() * tensor.element_size()
    try:
        return min(size, tensor.untyped_storage().nbytes())
    except (RuntimeError, NotImplementedError):  # a tensor without a plain storage
        return size


def inplace_baddbmm_flop(
    self_shape: Sequence[int], batch1_shape: Sequence[int], batch2_shape: Sequence[int], *args: Any, **kwargs: Any
) -> int:
    """FLOPs of `baddbmm_` (in place), which `torch.utils.flop_counter` counts only out of place: the matmul's, as
    for `baddbmm` (the layer after the target MLP's skip accumulates its second matmul in place)."""
    batch, rows, inner = batch1_shape
    return 2 * batch * rows * inner * batch2_shape[-1]


def flop_counter() -> FlopCounterMode:
    """`FlopCounterMode` counting every matmul and convolution the project runs (with `inplace_baddbmm_flop`)."""
    return FlopCounterMode(display=False, custom_mapping={torch.ops.aten.baddbmm_: inplace_baddbmm_flop})


class OperationCounter(TorchDispatchMode):
    """Counts the tensor operations dispatched while active (below autograd, so backward's count too), those among
    them that make the host wait for an accelerator, those that run on one (not views, which launch nothing, nor the
    host's own work on CPU tensors, such as a batch's random draws), and the bytes the ones that are not views read and
    write (their tensors' distinct bytes, in and out: the least memory traffic of the kernels that run them)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.host_waits = 0
        self.device_operations = 0
        self.bytes_moved = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.count += 1
        self.host_waits += waits_for_device(func, args, kwargs)
        out = func(*args, **(kwargs or {}))
        if not is_view(func):
            tensors = [value for value in tree_flatten((args, kwargs, out))[0] if isinstance(value, Tensor)]
            self.bytes_moved += sum(map(distinct_bytes, tensors))
            self.device_operations += any(tensor.device.type != "cpu" for tensor in tensors)
        return out


class SavedTensorBytes:
    """Counts the bytes autograd saves for backward while active, each storage once.

    Storages are remembered by weak reference, so that counting keeps nothing alive: holding them would keep every
    phase's saved tensors in memory at once, the whole iteration's sum (7.5 GiB for the paper configuration's R1
    iteration on whole 128x128 images in fp32), where training frees each phase's after its backward, and a bench
    near a card's memory (`--simulate-memory-gb`) would run out in the counting iteration where training fits. A
    storage freed during the iteration may leave its address to a later one, which is then counted as the new
    storage it is (its remembered reference is dead); PyTorch keeps one Python object per live storage, so a live one
    is recognised as the same.
    """

    def __init__(self) -> None:
        self.total_bytes = 0
        self._storages: Dict[Tuple[str, int], weakref.ref] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor)

    def _pack(self, tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        key = (str(tensor.device), storage.data_ptr())
        remembered = self._storages.get(key)
        if remembered is None or remembered() is not storage:
            self._storages[key] = weakref.ref(storage)
            self.total_bytes += storage.nbytes()
        return tensor

    def __enter__(self) -> "SavedTensorBytes":
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._hooks.__exit__(*exc_info)


class BatchPreparationTimer:
    """Host seconds spent in the datamanager's batch methods while active: on a GPU, the part of an iteration's host
    time that goes to preparing its batches rather than to launching its kernels."""

    METHODS = ("next_train", "next_train_rays")
    """The datamanager methods the training phases call for their batches."""

    def __init__(self, datamanager: Any) -> None:
        self.datamanager = datamanager
        self.seconds = 0.0

    def _timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return timed

    def __enter__(self) -> "BatchPreparationTimer":
        for name in self.METHODS:
            setattr(self.datamanager, name, self._timed(getattr(self.datamanager, name)))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for name in self.METHODS:
            delattr(self.datamanager, name)


def synchronize(device: torch.device) -> None:
    """Waits for queued GPU work, so that wall-clock times are the work's."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(run: Callable[[], Any], device: torch.device, repeats: int, warm: bool = False) -> float:
    """Fastest wall-clock seconds of `run` over `repeats` calls after one untimed call (none if the caller has just
    run it: `warm`): the least disturbed by the rest of the machine, as peak-throughput measurements are."""
    if not warm:
        run()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def field_points_per_render(config: HyperNeRFGANTrainerConfig) -> int:
    """Samples one render of a batch of patches places (the target MLP runs at those that can be inside the object
    sphere: `mlp_points_per_iteration`).

    With importance sampling each coarse and each importance sample is evaluated once. Recomputed activations are not
    counted: they are the same points again.
    """
    data, model = config.pipeline.datamanager, config.pipeline.model
    samples = model.num_coarse_samples + model.num_importance_samples
    return data.batch_size * training_patch_size(config) ** 2 * samples


def training_patch_size(config: HyperNeRFGANTrainerConfig) -> int:
    """Side of the patches the bench's iterations train on: the method's, or its first growing stage's."""
    return config.pipeline.progressive_growing.first_patch_size(config.pipeline.datamanager.patch_size)


def field_points_per_iteration(config: HyperNeRFGANTrainerConfig) -> int:
    """Target-MLP points one iteration evaluates forwards: the D phase's and the G phase's renders, or the one render
    both phases share."""
    renders = 1 if config.pipeline.shared_fakes else 2
    return renders * field_points_per_render(config)


def mlp_points_per_iteration(trainer: HyperNeRFGANTrainer, field_points: int) -> int:
    """Of an iteration's `field_points` samples, the ones the target MLP runs at: each object's training capacities
    of coarse and of importance samples inside the object sphere when the model has them, else all of them."""
    model, config = trainer.pipeline.model, trainer.config
    renders = field_points // field_points_per_render(config)
    per_object = model.training_points_per_object(training_patch_size(config) ** 2)
    return renders * config.pipeline.datamanager.batch_size * per_object


def field_flops_per_point(field_module: TargetField) -> int:
    """Multiply-adds x 2 of the target MLP's layers for one point (the encoding and activations are negligible)."""
    return sum(2 * out_features * in_features for out_features, in_features in field_module.layer_shapes())


# ----------------------------------------------------------------------------------------------------------------------
# The naive baseline: the reference implementation's structure.


def naive_field_forward(
    field_module: TargetField,
    positions: Tensor,
    weights: ObjectWeights,
    density_noise_std: float = 0.0,
) -> Dict[FieldHeadNames, Tensor]:
    """`TargetField.forward` computed as the reference does: a Python loop over objects, and every point multiplied
    by its object's whole weight matrix (`torch.matmul(W, x.unsqueeze(-1))`, a batch of matrix-vector products
    with the matrix broadcast to every point). Same outputs, same parameters, the same gradients."""
    rgbs, densities = [], []
    last = len(field_module.layers) - 1
    for index in range(weights.num_objects):
        encoded = field_module.encoding(positions[index])
        h = encoded
        layers = zip(field_module.layers, weights.layers, field_module.layer_gains())
        for layer_index, (layer, weight, gain) in enumerate(layers):  # weights: [in, out], the gain folded in
            h = torch.matmul(weight[index].transpose(0, 1), h.unsqueeze(-1)).squeeze(-1) + layer.bias * gain
            if layer_index == last:
                break
            h = F.relu(h)
            if layer_index == field_module.skip_layer:
                h = torch.cat([encoded, h], dim=-1)
        outputs = field_module.output_heads(h, positions[index], density_noise_std)
        rgbs.append(outputs[FieldHeadNames.RGB])
        densities.append(outputs[FieldHeadNames.DENSITY])
    return {FieldHeadNames.RGB: torch.stack(rgbs), FieldHeadNames.DENSITY: torch.stack(densities)}


@contextlib.contextmanager
def naive_target_fields(fields: Sequence[TargetField]) -> Iterator[None]:
    """Makes the given target fields evaluate with `naive_field_forward` inside the block."""
    for field_module in fields:
        field_module.forward = lambda *args, _field=field_module, **kwargs: naive_field_forward(_field, *args, **kwargs)
    try:
        yield
    finally:
        for field_module in fields:
            del field_module.forward


# ----------------------------------------------------------------------------------------------------------------------
# Results.


@dataclass
class BenchResult:
    """One method and variant, measured."""

    method: str
    variant: str
    status: Literal["done", "out of memory", "failed"] = "done"
    precision: str = "fp32"
    """What the iterations really ran in (nerfstudio turns mixed precision off on the CPU)."""
    recompute_ray_chunk: Optional[int] = None
    batch_size: int = 0
    patch_size: int = 0
    samples_per_ray: int = 0
    iterations: int = 0
    """Timed iterations of each kind, plain and R1 (after the warm-up iterations)."""
    r1_interval: int = 1
    """Every this many iterations is a lazy-R1 one."""
    seconds_per_plain_iteration: Optional[float] = None
    """Mean seconds of an iteration without R1."""
    seconds_per_r1_iteration: Optional[float] = None
    """Mean seconds of an iteration with the lazy R1 penalty; None when R1 is off."""
    field_points_per_iteration: int = 0
    """Samples one iteration renders (both phases' renders, or their shared one)."""
    mlp_points_per_iteration: int = 0
    """Of those, the ones the target MLP runs at (`train_query_inside_bound_only`: those that can be inside the object
    sphere)."""
    operations_per_iteration: Optional[int] = None
    """Tensor operations dispatched in one plain iteration."""
    bytes_moved_per_iteration: Optional[int] = None
    """Bytes the same plain iteration's operations read and write (`OperationCounter`), in the row's precision on its
    device (fp32 on the CPU): the memory traffic a card with little bandwidth for its FLOP/s spends its time on."""
    flops_per_iteration: Optional[int] = None
    """Floating-point operations of one plain iteration's matmuls and convolutions (forward and backward)."""
    batch_seconds_per_plain_iteration: Optional[float] = None
    """Of a plain iteration, the host seconds spent preparing its batches in the datamanager."""
    host_waits_per_iteration: Optional[int] = None
    """Of its operations, the ones that make the host wait for the device; None on the CPU (nothing to wait for)."""
    device_operations_per_iteration: Optional[int] = None
    """Of its operations, the ones that run on the accelerator (its kernels and copies: not views, nor the host's own
    work on CPU tensors); None on the CPU, where every operation runs on the one device."""
    device_busy_seconds_per_plain_iteration: Optional[float] = None
    """Of a plain iteration, the seconds the accelerator ran kernels or copies (profiled); None on the CPU."""
    saved_for_backward_bytes: Optional[int] = None
    """Per iteration (both phases), measured in the first warm-up iteration."""
    cuda_max_memory_allocated_bytes: Optional[int] = None
    field_flops_per_second: Optional[float] = None
    matmul_flops_per_second: Optional[float] = None
    """A plain matmul doing the same FLOPs as the field's layers, on the same device and precision."""
    naive_seconds_per_iteration: Optional[float] = None
    """The naive baseline's seconds per plain iteration, for rows compared with it."""
    evaluation_precision: str = "fp32"
    """What the evaluation views were rendered in."""
    seconds_per_evaluation_view: Optional[float] = None
    """Seconds per view of a new object rendered as the quality curve and ns-eval render them."""
    flops_per_evaluation_view: Optional[int] = None
    """Floating-point operations of such a view's matmuls."""
    profile_files: List[str] = field(default_factory=list)
    """The profiled plain iteration's table of operations and its trace (`--profile-dir`)."""
    message: Optional[str] = None

    @property
    def seconds_per_iteration(self) -> Optional[float]:
        """Mean seconds per iteration over an R1 interval: interval - 1 plain iterations and one R1 iteration."""
        if self.seconds_per_plain_iteration is None:
            return None
        if self.seconds_per_r1_iteration is None:
            return self.seconds_per_plain_iteration
        plain = (self.r1_interval - 1) * self.seconds_per_plain_iteration
        return (plain + self.seconds_per_r1_iteration) / self.r1_interval

    @property
    def device_busy_fraction(self) -> Optional[float]:
        """The share of a plain iteration's wall-clock the accelerator was busy; the rest is host-bound time."""
        if self.device_busy_seconds_per_plain_iteration is None or not self.seconds_per_plain_iteration:
            return None
        return self.device_busy_seconds_per_plain_iteration / self.seconds_per_plain_iteration

    @property
    def r1_cost_ratio(self) -> Optional[float]:
        """An R1 iteration's seconds over a plain one's."""
        if self.seconds_per_r1_iteration is None or not self.seconds_per_plain_iteration:
            return None
        return self.seconds_per_r1_iteration / self.seconds_per_plain_iteration

    @property
    def images_per_second(self) -> Optional[float]:
        """Real images shown to the discriminator per second (one batch per iteration)."""
        return None if not self.seconds_per_iteration else self.batch_size / self.seconds_per_iteration

    @property
    def points_per_second(self) -> Optional[float]:
        """Samples rendered per second."""
        return None if not self.seconds_per_iteration else self.field_points_per_iteration / self.seconds_per_iteration

    @property
    def field_efficiency(self) -> Optional[float]:
        """Field FLOP/s as a fraction of the plain matmul's."""
        if self.field_flops_per_second is None or not self.matmul_flops_per_second:
            return None
        return self.field_flops_per_second / self.matmul_flops_per_second

    @property
    def naive_speedup(self) -> Optional[float]:
        """How many times faster a plain iteration is than the naive baseline's."""
        if self.naive_seconds_per_iteration is None or not self.seconds_per_plain_iteration:
            return None
        return self.naive_seconds_per_iteration / self.seconds_per_plain_iteration

    def as_json(self) -> Dict[str, Any]:
        derived = (
            "seconds_per_iteration", "r1_cost_ratio", "images_per_second", "points_per_second", "field_efficiency",
            "naive_speedup", "device_busy_fraction",
        )
        return {**dataclasses.asdict(self), **{name: getattr(self, name) for name in derived}}


def _number(value: Optional[float], format_spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value / scale, format_spec)


TABLE_COLUMNS = (
    "method", "variant", "precision", "plain s", "R1 s", "R1/plain", "s/iter", "images/s", "Mpoints/s", "ops/iter",
    "device ops", "GFLOP/iter", "GB moved", "batch ms", "host waits", "device busy", "saved GiB", "CUDA GiB", "GFLOP/s",
    "of matmul", "naive s/iter", "speed-up", "eval ms/view", "eval GFLOP/view",
)
"""Columns of the table. plain s, R1 s: seconds of a plain and of a lazy-R1 iteration; s/iter: their average over an R1
interval, from which images/s and Mpoints/s follow; ops/iter: tensor operations dispatched in a plain iteration, and
device ops those of them that run on a GPU (its kernels and copies); GFLOP/iter: its matmuls' and convolutions'
arithmetic; GB moved: the bytes its operations read and write (the least memory traffic of its kernels, in the row's
precision; neither count where the target field or the discriminator is compiled, since compiled code runs eager
under the counter); batch ms: host milliseconds of a plain iteration spent preparing its batches; host waits: how
many of the operations wait for the device (on a GPU); device busy: the share of a plain iteration the GPU runs
kernels or copies (the rest it waits for the host); saved GiB: bytes saved for backward per iteration (the R1 one);
CUDA GiB: peak allocated; GFLOP/s: the target MLP's, and what fraction of a plain matmul's it is; naive: the
reference structure's seconds per plain iteration, and our speed-up over it; eval ms/view, eval GFLOP/view: a view of
a new object rendered as the quality curve renders it, in the row's evaluation precision, and its arithmetic."""


def table_cells(result: BenchResult) -> List[str]:
    """A result's row of the table."""
    if result.status != "done":
        return [result.method, result.variant, result.precision, result.status] + ["-"] * (len(TABLE_COLUMNS) - 4)
    return [
        result.method,
        result.variant,
        result.precision,
        _number(result.seconds_per_plain_iteration, ".3f"),
        _number(result.seconds_per_r1_iteration, ".3f"),
        "-" if result.r1_cost_ratio is None else f"{result.r1_cost_ratio:.2f}x",
        _number(result.seconds_per_iteration, ".3f"),
        _number(result.images_per_second, ".2f"),
        _number(result.points_per_second, ".2f", 1e6),
        _number(result.operations_per_iteration, ",.0f"),
        _number(result.device_operations_per_iteration, ",.0f"),
        _number(result.flops_per_iteration, ",.0f", 1e9),
        _number(result.bytes_moved_per_iteration, ".1f", 1e9),
        _number(result.batch_seconds_per_plain_iteration, ".1f", 1e-3),
        _number(result.host_waits_per_iteration, "d"),
        _number(result.device_busy_fraction, ".0%"),
        _number(result.saved_for_backward_bytes, ".2f", GIB),
        _number(result.cuda_max_memory_allocated_bytes, ".2f", GIB),
        _number(result.field_flops_per_second, ".1f", 1e9),
        _number(result.field_efficiency, ".0%"),
        _number(result.naive_seconds_per_iteration, ".3f"),
        "-" if result.naive_speedup is None else f"{result.naive_speedup:.1f}x",
        _number(result.seconds_per_evaluation_view, ".1f", 1e-3),
        _number(result.flops_per_evaluation_view, ".1f", 1e9),
    ]


PROFILE_TABLE_ROWS = 40
"""Operations listed in a profile's table, those with the most time of their own first."""


def write_profile(profile: torch.profiler.profile, folder: Path, name: str, on_device: bool) -> List[str]:
    """A profiled iteration as `name.txt`, its operations ranked by their own time (on the GPU `on_device`, where the
    profile holds its kernels, else on the host), and `name.trace.json.gz`, its timeline for Perfetto
    (ui.perfetto.dev) or chrome://tracing: where a GPU iteration's time goes and where the device waits for the host.
    Returns the files' paths."""
    averages = profile.key_averages()
    sort_by = "self_device_time_total" if on_device else "self_cpu_time_total"
    folder.mkdir(parents=True, exist_ok=True)
    table, trace = folder / f"{name}.txt", folder / f"{name}.trace.json.gz"
    ranked = "GPU time" if on_device else "host time"
    heading = f"One plain training iteration of {name}, operations by their own {ranked} (torch.profiler)\n"
    table.write_text(heading + averages.table(sort_by=sort_by, row_limit=PROFILE_TABLE_ROWS) + "\n", encoding="utf8")
    profile.export_chrome_trace(str(trace))
    return [str(table), str(trace)]


def markdown_table(results: Sequence[BenchResult]) -> str:
    """The table as Markdown, for the README."""
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + " --- |" * len(TABLE_COLUMNS)]
    lines += ["| " + " | ".join(table_cells(result)) + " |" for result in results]
    return "\n".join(lines)


def device_description(device: torch.device) -> str:
    """The device in words, for the table's caption and the JSON."""
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        return f"{properties.name} ({properties.total_memory / GIB:.0f} GiB)"
    return f"CPU ({cpu_description()}, {torch.get_num_threads()} threads)"


# ----------------------------------------------------------------------------------------------------------------------
# The benchmark.


@dataclass
class Benchmark:
    """Builds each method's trainer and measures its iterations; see the module docstring."""

    data: Path = Path("cars")
    """Training images; only their loading differs between datasets, not an iteration's cost."""
    num_images: int = 64
    """Images of a built-in dataset to render (an iteration's cost does not depend on it)."""
    warmup_iterations: int = 1
    """Untimed plain iterations before the timed ones, after step 0 (an untimed lazy-R1 iteration, which counts the
    bytes saved for backward). Each kind needs its own: a plain iteration's D phase scores fakes and reals in one call
    of twice an R1 step's batch, whose kernels (oneDNN's primitives, cuDNN's algorithms) are chosen at their first
    call. Without it the first row of a process ran slower than the same configuration after it (14% over 20 plain
    iterations of `hypernerfgan-tiny` on 2 CPU cores)."""
    iterations: int = 2
    """Timed iterations per row."""
    flops_repeats: int = 5
    """Repeats of the field and matmul timings (the fastest is kept)."""
    evaluation_views: int = 8
    """Views of new objects per timed evaluation render (two passes of the paper configuration's 128x128 views)."""
    evaluation_repeats: int = 2
    """Repeats of the evaluation render after an untimed one that counts its FLOPs (the fastest is kept)."""
    settings: BenchSettings = field(default_factory=lambda: BenchSettings(recompute_ray_chunk=256))
    """What the variants are built from."""
    seed: int = 0
    """Seed of every row (as ns-train seeds)."""
    augment_probability: float = DEFAULT_AUGMENT_PROBABILITY
    """ADA's probability p at the first iteration (it adapts from there, as in training); see `BenchCommand`."""
    profile_dir: Optional[Path] = None
    """Where each row's profiled plain iteration is written (`write_profile`); None: profiled on a GPU only, for its
    busy time."""

    def config(self, method: str, variant: str, output_dir: Path) -> HyperNeRFGANTrainerConfig:
        """A method's config with the variant applied, training on `data`, logging under `output_dir`."""
        config = method_config(method)
        VARIANTS[variant].change(config, self.settings)
        parser = config.pipeline.datamanager.dataparser
        config.pipeline.datamanager.data = None
        parser.data = self.data
        parser.builtin_num_images = self.num_images
        parser.min_num_images = min(parser.min_num_images, self.num_images)
        config.output_dir = output_dir
        config.vis = "tensorboard"
        config.machine.seed = self.seed
        augment = config.pipeline.augment
        config.pipeline.augment = dataclasses.replace(augment, initial_p=min(self.augment_probability, augment.max_p))
        config.max_num_iterations = 1 + self.warmup_iterations + self.iterations
        config.quality_curve = dataclasses.replace(config.quality_curve, interval_images=0)  # timing, not scoring
        return config

    def measure(self, method: str, variant: str, naive_baseline: bool = False) -> BenchResult:
        """One row: warm-up (counting saved bytes), timed iterations, the field's FLOP/s, and the naive baseline."""
        with tempfile.TemporaryDirectory(prefix="hypernerfgan-bench-") as output_dir:
            config = self.config(method, variant, Path(output_dir))
            model_config, data_config = config.pipeline.model, config.pipeline.datamanager
            compiled = model_config.compile_target_field or config.pipeline.discriminator.compile
            result = BenchResult(
                method=method,
                variant=variant,
                recompute_ray_chunk=model_config.recompute_ray_chunk,
                batch_size=data_config.batch_size,
                patch_size=training_patch_size(config),
                samples_per_ray=model_config.num_coarse_samples + model_config.num_importance_samples,
                iterations=self.iterations,
                r1_interval=config.pipeline.loss.r1_interval,
                field_points_per_iteration=field_points_per_iteration(config),
            )
            CONSOLE.rule(f"[bold]{method}[/bold], {variant}: {escape(VARIANTS[variant].description)}")
            trainer: Optional[HyperNeRFGANTrainer] = None
            try:
                with own_event_writers(flush=False):
                    _set_random_seed(config.machine.seed)
                    trainer = config.setup(local_rank=0, world_size=1)
                    trainer.setup()
                    result.precision = "fp16" if trainer.mixed_precision else "fp32"
                    result.mlp_points_per_iteration = mlp_points_per_iteration(
                        trainer, result.field_points_per_iteration
                    )
                    result.saved_for_backward_bytes = self.count_saved_bytes(trainer)
                    plain_steps, r1_steps = self.timed_steps(trainer)
                    device = torch.device(trainer.device)
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                    with BatchPreparationTimer(trainer.pipeline.datamanager) as batches:
                        result.seconds_per_plain_iteration = self.time_iterations(trainer, plain_steps)
                    result.batch_seconds_per_plain_iteration = batches.seconds / len(plain_steps)
                    if r1_steps:
                        result.seconds_per_r1_iteration = self.time_iterations(trainer, r1_steps)
                    counter, flops = self.count_operations(trainer, plain_steps[0])
                    result.flops_per_iteration = flops
                    if not compiled:  # under a dispatch mode compiled code runs eager: the counts would be eager's
                        result.operations_per_iteration = counter.count
                        result.bytes_moved_per_iteration = counter.bytes_moved
                        if device.type != "cpu":
                            result.device_operations_per_iteration = counter.device_operations
                    if device.type != "cpu":
                        result.host_waits_per_iteration = counter.host_waits
                    if device.type == "cuda":
                        result.cuda_max_memory_allocated_bytes = torch.cuda.max_memory_allocated(device)
                    if device.type == "cuda" or self.profile_dir is not None:
                        profile = self.profile_iteration(trainer, plain_steps[0])
                        busy = device_busy_seconds(profile.events())
                        result.device_busy_seconds_per_plain_iteration = busy
                        if self.profile_dir is not None:
                            result.profile_files = write_profile(
                                profile, self.profile_dir, f"{method}_{variant}", on_device=busy is not None
                            )
                    self.time_field(trainer, result)
                    self.time_evaluation_views(trainer, result)
                    if naive_baseline and not model_config.compile_target_field:  # it replaces the eager field only
                        fields = [trainer.pipeline.model.generator.field, trainer.pipeline.model.generator_ema.field]
                        with naive_target_fields(fields):
                            result.naive_seconds_per_iteration = self.time_iterations(trainer, plain_steps)
            except torch.cuda.OutOfMemoryError as error:
                result.status, result.message = "out of memory", str(error).splitlines()[0]
                CONSOLE.print(f"[bold red]{method}, {variant}: out of memory[/bold red]")
            except Exception as error:  # noqa: BLE001 - one row's failure (a backend's missing kernel) ends that row
                # only: a time-limited GPU call still measures the rows after it.
                first_line = (str(error).strip().splitlines() or [""])[0]
                result.status, result.message = "failed", f"{type(error).__name__}: {first_line}"
                CONSOLE.print_exception()
                CONSOLE.print(f"[bold red]{method}, {variant}: failed ({escape(result.message)})[/bold red]")
            finally:
                trainer = None
                release_memory()
        return result

    @classmethod
    def count_saved_bytes(cls, trainer: HyperNeRFGANTrainer) -> int:
        """Runs one iteration (the first, a lazy-R1 step) and returns the bytes it saved for backward."""
        with SavedTensorBytes() as counter:
            cls.iteration(trainer, step=0)
        return counter.total_bytes

    @classmethod
    def count_operations(cls, trainer: HyperNeRFGANTrainer, step: int) -> Tuple[OperationCounter, int]:
        """The tensor operations dispatched by one iteration at `step`, counted, and its matmuls' and convolutions'
        floating-point operations."""
        with flop_counter() as flops, OperationCounter() as counter:
            cls.iteration(trainer, step)
        return counter, flops.get_total_flops()

    @classmethod
    def profile_iteration(cls, trainer: HyperNeRFGANTrainer, step: int) -> torch.profiler.profile:
        """One iteration at `step` under `torch.profiler`, with the GPU's kernels and copies on CUDA (after the timed
        iterations, so that the profiler's own host overhead does not enter the timings; kernel durations do not
        depend on it)."""
        device = torch.device(trainer.device)
        activities = [torch.profiler.ProfilerActivity.CPU]
        if device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as profile:
            cls.iteration(trainer, step)
            synchronize(device)
        return profile

    def timed_steps(self, trainer: HyperNeRFGANTrainer) -> Tuple[List[int], List[int]]:
        """The steps of the timed plain iterations and of the timed R1 iterations, after running the plain kind's
        warm-up iterations (the R1 kind was warmed up by step 0). With R1 off there are no R1 iterations; with R1
        every iteration (interval 1), every iteration is timed as a plain one."""
        interval = trainer.pipeline.config.loss.r1_interval
        with_r1 = max(trainer.pipeline.r1_gamma, trainer.pipeline.r2_gamma) > 0 and interval > 1
        needed = self.warmup_iterations + self.iterations
        candidates = range(1, 1 + 2 * needed + 1)
        plain = [step for step in candidates if not (with_r1 and step % interval == 0)][:needed]
        for step in plain[: self.warmup_iterations]:
            self.iteration(trainer, step)
        r1 = [interval * index for index in range(1, self.iterations + 1)] if with_r1 else []
        return plain[self.warmup_iterations :], r1

    def time_iterations(self, trainer: HyperNeRFGANTrainer, steps: Sequence[int]) -> float:
        """Mean seconds of full training iterations at the given steps."""
        device = torch.device(trainer.device)
        synchronize(device)
        start = time.perf_counter()
        for step in steps:
            self.iteration(trainer, step)
        synchronize(device)
        return (time.perf_counter() - start) / len(steps)

    @staticmethod
    def iteration(trainer: HyperNeRFGANTrainer, step: int) -> None:
        """The trainer's iteration at `step` as nerfstudio's loop runs it: callbacks before, the GAN iteration,
        callbacks after. The step decides whether R1 is applied (every `r1_interval`-th)."""
        for callback in trainer.callbacks:
            callback.run_callback_at_location(step, location=TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        trainer.train_iteration(step)
        for callback in trainer.callbacks:
            callback.run_callback_at_location(step, location=TrainingCallbackLocation.AFTER_TRAIN_ITERATION)

    def time_field(self, trainer: HyperNeRFGANTrainer, result: BenchResult) -> None:
        """Achieved FLOP/s of the batched target MLP on one batch of points, and of a plain matmul of the same FLOPs."""
        device = torch.device(trainer.device)
        generator = trainer.pipeline.model.generator
        batch = trainer.pipeline.batch_size
        points_per_object = field_points_per_render(trainer.config) // batch
        flops = field_flops_per_point(generator.field) * batch * points_per_object
        autocast = torch.autocast(device_type=device.type, enabled=trainer.mixed_precision)
        with torch.no_grad(), autocast:
            weights = generator.object_weights(torch.randn(batch, generator.latent_dim, device=device))
            positions = torch.rand(batch, points_per_object, 3, device=device) * 2 - 1
            field_seconds = best_seconds(lambda: generator.field(positions, weights), device, self.flops_repeats)
            # The machine's limit for these FLOPs: each layer as one plain matmul into a preallocated output. The
            # layers' inputs and outputs are the leading elements of one buffer each (contiguous, as a layer's are),
            # so that the reference holds two layers' activations, not all of them (on whole 128x128 images all
            # nine of the paper's MLP are 34 GiB in fp32, which ran a 24 GB machine out of memory; the two: 5 GiB).
            dtype = torch.float16 if trainer.mixed_precision else torch.float32
            points, shapes = batch * points_per_object, generator.field.layer_shapes()
            inputs = torch.randn(points * max(in_features for _, in_features in shapes), device=device, dtype=dtype)
            outputs = torch.empty(points * max(out_features for out_features, _ in shapes), device=device, dtype=dtype)
            operands = [
                (
                    inputs[: points * in_features].view(points, in_features),
                    torch.randn(in_features, out_features, device=device, dtype=dtype),
                    outputs[: points * out_features].view(points, out_features),
                )
                for out_features, in_features in shapes
            ]
            matmul_seconds = best_seconds(
                lambda: [torch.mm(x, w, out=out) for x, w, out in operands], device, self.flops_repeats
            )
        result.field_flops_per_second = flops / field_seconds
        result.matmul_flops_per_second = flops / matmul_seconds

    def time_evaluation_views(self, trainer: HyperNeRFGANTrainer, result: BenchResult) -> None:
        """Seconds and floating-point operations per view of new objects from prior cameras, rendered by
        `generated_image_batches` as the quality curve and ns-eval render them, in the model's evaluation precision."""
        pipeline, device = trainer.pipeline, torch.device(trainer.device)
        protocol = GANEvaluationConfig(num_generated=self.evaluation_views, batch_size=self.evaluation_views)
        autocast = pipeline.model.evaluation_autocast()
        result.evaluation_precision = "fp16" if isinstance(autocast, torch.autocast) else "fp32"

        def render() -> Tensor:
            return next(generated_image_batches(pipeline, protocol))

        pipeline.eval()
        try:
            with flop_counter() as flops:
                render()  # also the untimed first call
            seconds = best_seconds(render, device, self.evaluation_repeats, warm=True)
        finally:
            pipeline.train()
        result.seconds_per_evaluation_view = seconds / self.evaluation_views
        result.flops_per_evaluation_view = flops.get_total_flops() // self.evaluation_views


# ----------------------------------------------------------------------------------------------------------------------
# The command.


@dataclass
class BenchCommand:
    """Measure seconds, images/s, points/s, saved-for-backward bytes and CUDA memory of training iterations."""

    methods: Tuple[MethodName, ...] = tuple(METHODS)
    """Methods to measure."""
    variants: Tuple[VariantName, ...] = ("savers-off", "savers-on")
    """Variants of each method (the names above; each is described in `VARIANTS`)."""
    naive_baseline: Tuple[MethodName, ...] = ("hypernerfgan-lite",)
    """Methods also timed with the reference implementation's per-object, per-point structure (slow: on the CPU,
    keep it to the smaller methods), compared with their savers-off variant."""
    iterations: int = 2
    """Timed training iterations of each kind (plain and lazy-R1) per row."""
    warmup_iterations: int = 1
    """Untimed plain iterations before them, after an untimed lazy-R1 one that counts the bytes saved for backward:
    each kind's first iteration chooses kernels for its shapes."""
    recompute_ray_chunk: int = 256
    """Rays per object per recomputed chunk in the variants that recompute the target MLP's activations."""
    simulate_memory_gb: Optional[float] = None
    """Cap this process's CUDA memory at this many GiB (e.g. 16 for a T4) with
    torch.cuda.set_per_process_memory_fraction; a row that does not fit is reported as out of memory."""
    data: Path = Path("cars")
    """Training images (a built-in name, a folder, a zip); the cost of an iteration does not depend on them."""
    num_images: int = 64
    """Images rendered for a built-in dataset (a benchmark does not need the whole set)."""
    augment_probability: float = DEFAULT_AUGMENT_PROBABILITY
    """ADA's augmentation probability p at the start of each row (it adapts from there as in training: by a few
    thousandths over a row's iterations at most). What the augmentations cost depends on it, since a transform that no
    image of a batch draws costs nothing: 0.02 is as far as ADA moves p in the first 10,000 images at its default
    reaction time (`--pipeline.augment.adjustment-images`), 0 times iterations without augmentation."""
    json: Optional[Path] = None
    """Also write the results as JSON here."""
    profile_dir: Optional[Path] = None
    """Also write here, per row, one plain iteration profiled: its operations ranked by their own time (GPU time on a
    GPU, host time on the CPU; `METHOD_VARIANT.txt`) and its timeline (`METHOD_VARIANT.trace.json.gz`, for Perfetto
    or chrome://tracing)."""

    def main(self) -> List[BenchResult]:
        """Runs the benchmark, prints the table, writes the JSON."""
        if self.iterations < 1 or self.warmup_iterations < 1:
            raise BenchError("--iterations and --warmup-iterations must be at least 1 (the warm-up counts the bytes).")
        if not 0.0 <= self.augment_probability <= 1.0:
            raise BenchError(f"--augment-probability is a probability, in [0, 1]; got {self.augment_probability:g}.")
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        memory_cap = self.cap_memory(device)
        bench = Benchmark(
            data=self.data,
            num_images=self.num_images,
            warmup_iterations=self.warmup_iterations,
            iterations=self.iterations,
            settings=BenchSettings(recompute_ray_chunk=self.recompute_ray_chunk),
            augment_probability=self.augment_probability,
            profile_dir=self.profile_dir,
        )
        rows = [(method, variant) for method in self.methods for variant in dict.fromkeys(self.variants)]
        baseline_rows = [(method, BASELINE_VARIANT) for method in self.naive_baseline if method in self.methods]
        rows += [row for row in baseline_rows if row not in rows]
        caption = (
            f"One training iteration (D + G phase) on {device_description(device)}, torch {torch.__version__}; "
            f"{self.iterations} of each kind timed after warm-up (1 R1, {self.warmup_iterations} plain); "
            f"augmentation probability {self.augment_probability:g}"
            + (f"; CUDA memory capped at {memory_cap:g} GiB" if memory_cap else "")
        )
        results: List[BenchResult] = []
        # The report is written before the first row and replaced after each, so that it always holds what was
        # measured: a process interrupted or killed (out of memory) later keeps these rows.
        self.write_json(results, caption, device, memory_cap)
        try:
            for method, variant in rows:
                results.append(bench.measure(method, variant, naive_baseline=(method, variant) in baseline_rows))
                self.write_json(results, caption, device, memory_cap)
        except KeyboardInterrupt:  # e.g. a time limit's SIGINT: what was measured is still worth its table
            CONSOLE.print(f"[bold yellow]Interrupted[/bold yellow] after {len(results)} of {len(rows)} rows; "
                          "reporting those.")

        table = Table(title=caption)
        for column in TABLE_COLUMNS:
            text = column in ("method", "variant", "precision")
            table.add_column(column, justify="left" if text else "right", no_wrap=text)
        for result in results:
            table.add_row(*table_cells(result))
        CONSOLE.print(table)
        for result in results:
            if result.naive_speedup is not None:
                CONSOLE.print(
                    f"[bold]{result.method}[/bold]: batched generator {result.seconds_per_plain_iteration:.3f} s/iter, "
                    f"naive per-object per-point baseline {result.naive_seconds_per_iteration:.3f} s/iter: "
                    f"[bold]{result.naive_speedup:.1f}x faster[/bold]"
                )
        if self.json is not None:
            CONSOLE.print(f"[bold green]Wrote[/bold green] {self.json}")
        if self.profile_dir is not None and any(result.profile_files for result in results):
            CONSOLE.print(f"[bold green]Wrote[/bold green] each row's profiled iteration into {self.profile_dir}")
        return results

    def write_json(
        self, results: List[BenchResult], caption: str, device: torch.device, memory_cap: Optional[float]
    ) -> None:
        """The rows measured so far into `--json` (replaced whole), when it is given."""
        if self.json is None:
            return
        report = {
            "device": device_description(device),
            "torch": torch.__version__,
            "memory_cap_gib": memory_cap,
            "caption": caption,
            "settings": {"iterations": self.iterations, "warmup_iterations": self.warmup_iterations,
                         "recompute_ray_chunk": self.recompute_ray_chunk, "data": str(self.data),
                         "augment_probability": self.augment_probability},
            "rows": [result.as_json() for result in results],
            "markdown": markdown_table(results),
        }
        self.json.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(self.json) as temporary:
            temporary.write_text(json.dumps(report, indent=2) + "\n", encoding="utf8")

    def cap_memory(self, device: torch.device) -> Optional[float]:
        """Applies --simulate-memory-gb; returns the cap in GiB, or None."""
        if self.simulate_memory_gb is None:
            return None
        if device.type != "cuda":
            raise BenchError(
                "--simulate-memory-gb caps CUDA memory, and there is no CUDA device here. On the CPU, the bytes saved "
                "for backward (printed without it) are what a GPU would hold for the backward passes."
            )
        # torch.cuda's memory functions need the device's index; torch.device("cuda") has none.
        index = device.index if device.index is not None else torch.cuda.current_device()
        total = torch.cuda.get_device_properties(index).total_memory
        fraction = self.simulate_memory_gb * GIB / total
        if not 0 < fraction <= 1:
            raise BenchError(
                f"--simulate-memory-gb {self.simulate_memory_gb:g} is not between 0 and this GPU's "
                f"{total / GIB:.1f} GiB."
            )
        torch.cuda.set_per_process_memory_fraction(fraction, index)
        CONSOLE.print(
            f"CUDA memory capped at {self.simulate_memory_gb:g} GiB ({fraction:.1%} of {total / GIB:.1f} GiB)."
        )
        return self.simulate_memory_gb
