"""`hypernerfgan bench`: the naive baseline computes the same field, bytes are counted once, and a real run of the
tiny method fills every figure of the table and the JSON."""

from __future__ import annotations

import gc
import gzip
import json
import re
import time
import weakref
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch.autograd import DeviceType
from torch.autograd.profiler_util import FunctionEvent

from hypernerfgan_ns.fields.target_field import TargetField
from hypernerfgan_ns.method_configs import METHODS, method_config
from hypernerfgan_ns.networks.discriminator import Discriminator
from hypernerfgan_ns.networks.generator import Generator
from hypernerfgan_ns.scripts.bench import (
    DEFAULT_AUGMENT_PROBABILITY,
    BatchPreparationTimer,
    BenchError,
    Benchmark,
    BenchResult,
    BenchSettings,
    OperationCounter,
    SavedTensorBytes,
    device_busy_seconds,
    field_flops_per_point,
    field_points_per_iteration,
    field_points_per_render,
    flop_counter,
    mlp_points_per_iteration,
    naive_field_forward,
    naive_target_fields,
    waits_for_device,
)
from hypernerfgan_ns.scripts.cli import parse, run
from nerfstudio.field_components.field_heads import FieldHeadNames
from tests.helpers import micro_config, points_queried

NUM_IMAGES = 16
"""Built-in images rendered for the benchmark runs: a benchmark does not need the whole set."""


@pytest.fixture
def generator() -> Generator:
    """A small generator with a skip layer and the density prior, so that every branch of the field runs."""
    torch.manual_seed(0)
    return Generator(
        num_hidden_layers=3, hidden_width=16, skip_layer=1, num_octaves=4, latent_dim=8, w_dim=8, mapping_layers=2,
        mapping_lr_multiplier=0.01, w_avg_beta=0.995, fmm_rank=2, density_prior_radius=0.6, density_prior_slope=10.0,
    )


def test_the_naive_baseline_computes_the_same_field_and_gradients(generator: Generator) -> None:
    latents = torch.randn(3, generator.latent_dim)
    positions = torch.rand(3, 50, 3) * 2 - 1
    outputs = {}
    forwards = {"batched": generator.field, "naive": lambda *a: naive_field_forward(generator.field, *a)}
    for name, forward in forwards.items():
        generator.zero_grad()
        result = forward(positions, generator.object_weights(latents))
        (result[FieldHeadNames.RGB].sum() + result[FieldHeadNames.DENSITY].sum()).backward()
        outputs[name] = (result, [p.grad.clone() for p in generator.parameters() if p.grad is not None])
    (batched, batched_grads), (naive, naive_grads) = outputs["batched"], outputs["naive"]
    for head in (FieldHeadNames.RGB, FieldHeadNames.DENSITY):
        torch.testing.assert_close(naive[head], batched[head], atol=1e-5, rtol=1e-5)
    assert len(naive_grads) == len(batched_grads) > 0
    for naive_grad, batched_grad in zip(naive_grads, batched_grads):
        torch.testing.assert_close(naive_grad, batched_grad, atol=1e-4, rtol=1e-4)


def test_the_flop_counter_counts_every_layer_of_a_field_with_a_skip(generator: Generator) -> None:
    """The layer after the skip accumulates its second matmul in place (`baddbmm_`), which torch's counter alone
    misses: the bench's counts the field's forward as its layers' multiply-adds, skip included."""
    field = generator.field
    assert field.skip_layer is not None
    weights = generator.object_weights(torch.randn(2, 8))
    positions = torch.rand(2, 50, 3) * 2 - 1
    with flop_counter() as flops:
        field(positions, weights)
    assert flops.get_total_flops() == field_flops_per_point(field) * 2 * 50


def test_naive_fields_are_swapped_in_only_inside_the_block(generator: Generator) -> None:
    field: TargetField = generator.field
    with naive_target_fields([field]):
        assert "forward" in vars(field), "the instance evaluates the naive way"
    assert "forward" not in vars(field), "the class's batched forward is back"


def test_operations_are_counted_forward_and_backward() -> None:
    x = torch.randn(10, requires_grad=True)
    with OperationCounter() as counter:
        (x * 2).sum().backward()
    forward_only = OperationCounter()
    with forward_only:
        with torch.no_grad():
            (x * 2).sum()
    assert counter.count > forward_only.count >= 2


def test_the_bytes_moved_are_each_operations_tensors_in_and_out_and_views_move_none() -> None:
    x, y = torch.randn(1000), torch.randn(1000)
    bias = torch.randn(10)
    with OperationCounter() as counter:
        x.view(10, 100).t()  # views: no data moves
    assert counter.count == 2 and counter.bytes_moved == 0
    with OperationCounter() as counter:
        x + y  # reads two, writes one
    assert counter.bytes_moved == 3 * 4000
    with OperationCounter() as counter:
        torch.relu_(x)  # in place: read and written
    assert counter.bytes_moved == 2 * 4000
    with OperationCounter() as counter:
        x.view(100, 10) + bias.expand(100, 10)  # an expanded bias is read once: its 40 bytes, not 4,000
    assert counter.count == 3 and counter.bytes_moved == 4000 + 40 + 4000


def test_host_waits_are_reads_of_device_values_only() -> None:
    """`.item()` of a CPU tensor costs the host nothing; of an accelerator's tensor (a meta tensor stands in for
    one here) it waits for the device, and so do `torch.equal` and `nonzero`. Arithmetic never waits."""
    on_cpu, on_device = torch.ones(3), torch.ones(3, device="meta")
    for func in (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default):
        assert waits_for_device(func, (on_device,)) and not waits_for_device(func, (on_cpu,))
    assert waits_for_device(torch.ops.aten.equal.default, (on_cpu, on_device))
    assert not waits_for_device(torch.ops.aten.add.Tensor, (on_device, on_device))
    with OperationCounter() as counter:
        float(on_cpu.sum())
    assert counter.count == 2 and counter.host_waits == 0


def test_host_waits_count_copies_between_host_and_device_that_block() -> None:
    """torch synchronises the device's stream after a copy between host and device unless it is `non_blocking`: a
    `.tolist()` or `.cpu()` of a device tensor, a small `torch.tensor(..., device=cuda)`. A meta tensor stands in for
    an accelerator's."""
    on_cpu, on_device = torch.ones(3), torch.ones(3, device="meta")
    to_copy, copy_ = torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default
    cpu, device = torch.device("cpu"), torch.device("meta")
    assert waits_for_device(to_copy, (on_device,), {"device": cpu})  # .cpu(), .tolist()
    assert waits_for_device(to_copy, (on_cpu,), {"device": device})  # .to(device)
    assert not waits_for_device(to_copy, (on_cpu,), {"device": device, "non_blocking": True})  # pinned batches
    assert not waits_for_device(to_copy, (on_device,), {"dtype": torch.float16})  # a cast on the device
    assert not waits_for_device(to_copy, (on_cpu,), {"device": cpu})
    assert waits_for_device(copy_, (on_cpu, on_device)) and waits_for_device(copy_, (on_device, on_cpu))
    assert not waits_for_device(copy_, (on_device, on_cpu, True))
    assert not waits_for_device(copy_, (on_device, on_device))
    with OperationCounter() as counter:
        on_cpu.to("meta")
        on_cpu.to("meta", non_blocking=True)
        on_device.half()
    assert counter.host_waits == 1


def test_device_operations_are_the_ones_that_compute_or_copy_on_an_accelerator() -> None:
    """Views launch nothing and the host's own work (random draws on CPU tensors) runs no kernel; a copy to the device
    is one of its operations (a meta tensor stands in for an accelerator's)."""
    on_device = torch.ones(4, device="meta")
    with OperationCounter() as counter:
        chosen = torch.rand(4) < 0.5  # the host's draws: 2 operations
        moved = chosen.to("meta")  # a copy: 1
        on_device.view(2, 2)  # a view: 1
        torch.where(moved, on_device * 2, on_device)  # 2 kernels
    assert counter.count == 6 and counter.device_operations == 3


def test_device_busy_time_is_the_union_of_the_accelerators_intervals() -> None:
    """Kernels back to back and a copy overlapping one count once; host events and idle gaps not at all."""

    def event(start_us: float, end_us: float, device_type: DeviceType) -> FunctionEvent:
        return FunctionEvent(0, "op", 0, start_us, end_us, device_type=device_type)

    events = [
        event(0, 100, DeviceType.CPU),  # the host, launching
        event(10, 20, DeviceType.CUDA),
        event(20, 30, DeviceType.CUDA),
        event(25, 40, DeviceType.CUDA),  # an asynchronous copy overlapping the kernel before it
        event(70, 80, DeviceType.CUDA),  # after 30 us idle, waiting for the host
    ]
    assert device_busy_seconds(events) == pytest.approx(40e-6)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        torch.ones(64, 64) @ torch.ones(64, 64)
    assert profile.events() and device_busy_seconds(profile.events()) is None, "a CPU profile has no device events"


def test_batch_preparation_time_counts_the_datamanagers_batch_calls_only() -> None:
    class SlowDataManager:
        def next_train(self, step: int) -> int:
            time.sleep(0.02)
            return step

        def next_train_rays(self, step: int) -> int:
            time.sleep(0.01)
            return -step

    datamanager = SlowDataManager()
    with BatchPreparationTimer(datamanager) as timer:
        assert datamanager.next_train(3) == 3 and datamanager.next_train_rays(3) == -3
        time.sleep(0.3)  # the rest of an iteration is not counted
    assert 0.03 <= timer.seconds < 0.2
    assert "next_train" not in vars(datamanager), "the datamanager's own methods are back"


def test_saved_bytes_count_each_storage_once() -> None:
    x = torch.randn(1000, requires_grad=True)
    y = torch.randn(1000, requires_grad=True)
    counter = SavedTensorBytes()
    with counter:
        loss = (x * y).sum()  # saves x and y
        again = (x * x).sum()  # saves x (twice): already counted
    assert counter.total_bytes == 2 * 1000 * 4
    (loss + again).backward()
    with SavedTensorBytes() as nothing:
        with torch.no_grad():
            (x * y).sum()
    assert nothing.total_bytes == 0, "no graph, nothing saved"


def test_counting_saved_bytes_keeps_no_storage_alive() -> None:
    """Each phase's saved tensors are freed after its backward while counting, as in training; a storage that takes
    a freed one's place (often at its address) is counted as the new storage it is."""
    x = torch.randn(1000, requires_grad=True)
    with SavedTensorBytes() as counter:
        for _ in range(3):
            hidden = x * 2  # not a leaf: its storage dies with the graph
            freed = weakref.ref(hidden.untyped_storage())
            (hidden * hidden).sum().backward()  # saves `hidden` (once) and frees it in the backward
            del hidden
            gc.collect()
            assert freed() is None, "the counter holds no storage"
    assert counter.total_bytes == 3 * 1000 * 4, "three storages, whatever their addresses"


def test_a_benchmark_of_the_tiny_method_measures_every_figure() -> None:
    bench = Benchmark(
        num_images=NUM_IMAGES, iterations=1, flops_repeats=1, settings=BenchSettings(recompute_ray_chunk=64)
    )
    kept = bench.measure("hypernerfgan-tiny", "savers-off", naive_baseline=True)
    recomputed = bench.measure("hypernerfgan-tiny", "recompute")
    config = bench.config("hypernerfgan-tiny", "savers-off", Path("unused"))
    assert kept.status == recomputed.status == "done"
    assert kept.precision == "fp32" and kept.recompute_ray_chunk is None and recomputed.recompute_ray_chunk == 64
    two_renders_of_the_batch = 2 * config.pipeline.datamanager.batch_size * 32**2 * 24
    assert kept.field_points_per_iteration == field_points_per_iteration(config) == two_renders_of_the_batch
    shared = bench.config("hypernerfgan-tiny", "shared-fakes", Path("unused"))
    assert field_points_per_iteration(shared) == two_renders_of_the_batch // 2, "one render shared by both phases"
    for result in (kept, recomputed):
        assert result.seconds_per_plain_iteration > 0 and result.seconds_per_r1_iteration > 0
        assert result.r1_interval == config.pipeline.loss.r1_interval == 16
        amortized = (15 * result.seconds_per_plain_iteration + result.seconds_per_r1_iteration) / 16
        assert result.seconds_per_iteration == pytest.approx(amortized)
        r1_ratio = result.seconds_per_r1_iteration / result.seconds_per_plain_iteration
        assert result.r1_cost_ratio == pytest.approx(r1_ratio)
        assert result.images_per_second > 0 and result.points_per_second > 0
        assert result.operations_per_iteration > 100
        assert 0 < result.batch_seconds_per_plain_iteration < result.seconds_per_plain_iteration
        assert result.field_flops_per_second > 0 and result.matmul_flops_per_second > 0
        assert result.cuda_max_memory_allocated_bytes is None and result.host_waits_per_iteration is None, "CPU run"
        assert result.device_busy_fraction is None, "CPU run"
        assert result.seconds_per_evaluation_view > 0 and result.evaluation_precision == "fp32", "the CPU renders fp32"
        assert result.flops_per_evaluation_view > 0
    # Recomputation runs the MLP's forward once more in the G phase's backward: more arithmetic, as the README says.
    assert 0 < kept.flops_per_iteration < recomputed.flops_per_iteration < 1.2 * kept.flops_per_iteration
    assert kept.naive_seconds_per_iteration > 0 and kept.naive_speedup is not None
    assert recomputed.naive_seconds_per_iteration is None
    # Recomputation keeps no target-MLP activations: the whole iteration saves far fewer bytes for backward.
    assert recomputed.saved_for_backward_bytes < 0.75 * kept.saved_for_backward_bytes


def test_field_points_are_the_samples_a_render_queries_with_importance_sampling(tmp_path: Path) -> None:
    """Each coarse and each importance sample is evaluated once; the MLP runs at those that can lie in the object
    sphere (the training capacities: of the coarse samples, and of the importance samples of the rays meeting it)."""
    config = micro_config(tmp_path)
    config.pipeline.model.num_importance_samples = 4
    pipeline = config.pipeline.setup(device="cpu", test_mode="val").train()
    capacity, importance = pipeline.model.training_query_capacity, pipeline.model.training_importance_capacity
    assert capacity is not None and capacity < 16 * 16 * 8
    assert importance is not None and importance < 16 * 16 * 4
    ray_bundle, latents = pipeline.datamanager.next_train_rays(0), torch.randn(4, 16)
    per_object = points_queried(pipeline.model.generator.field, lambda: pipeline.model(ray_bundle, latents=latents))
    assert per_object == capacity + importance
    assert field_points_per_render(config) == 4 * 16 * 16 * (8 + 4)
    trainer = SimpleNamespace(pipeline=pipeline, config=config)
    assert mlp_points_per_iteration(trainer, field_points_per_iteration(config)) == 2 * 4 * per_object


def test_a_growing_stage_is_measured_at_its_patch_size() -> None:
    """`growing-stage-x4`: the tiny preset's first stage of progressive growing, 8 x 8 whole images instead of
    32 x 32: 16 times fewer samples rendered, and the discriminator's 32-pixel block skipped."""
    bench = Benchmark(num_images=NUM_IMAGES, iterations=1, flops_repeats=1, evaluation_repeats=1)
    full, first_stage = (bench.measure("hypernerfgan-tiny", variant) for variant in ("preset", "growing-stage-x4"))
    assert first_stage.status == full.status == "done" and (first_stage.patch_size, full.patch_size) == (8, 32)
    assert first_stage.field_points_per_iteration * 16 == full.field_points_per_iteration
    assert 0 < first_stage.flops_per_iteration < full.flops_per_iteration / 4


def discriminator_widths(config: Any, resolution: int) -> list:
    """The channels of a discriminator built from `config`: its input layer's, then each block's output."""
    discriminator = Discriminator(config.pipeline.discriminator, resolution=resolution)
    return [discriminator.from_rgb.weight.shape[0]] + [block.skip.weight.shape[0] for block in discriminator.blocks]


def test_whole_images_are_patches_as_large_as_the_training_resolution() -> None:
    """`whole-images`: the GPU presets' crops become their whole 128 x 128 images; the tiny preset trains on whole
    images already, so its row is its preset."""
    bench = Benchmark(num_images=NUM_IMAGES)
    for method in METHODS:
        preset, whole = (bench.config(method, variant, Path("unused")) for variant in ("preset", "whole-images"))
        resolution = preset.pipeline.datamanager.dataparser.resolution
        assert whole.pipeline.datamanager.patch_size == resolution
        assert field_points_per_iteration(whole) * preset.pipeline.datamanager.patch_size**2 == (
            field_points_per_iteration(preset) * resolution**2
        )
    assert method_config("hypernerfgan").pipeline.datamanager.patch_size == 64, "the registered preset is unchanged"


def test_whole_images_with_half_the_discriminator_base_keep_the_crops_channels_at_their_side() -> None:
    """`whole-images-discriminator-base-x0.5`: the paper configuration on whole 128 x 128 images whose discriminator
    has 128 channels at 128 pixels and 256 at 64 (half the channels where its arithmetic is), 512 from 32 down, as
    on the crops."""
    bench = Benchmark(num_images=NUM_IMAGES)
    whole, halved = (
        bench.config("hypernerfgan", variant, Path("unused"))
        for variant in ("whole-images", "whole-images-discriminator-base-x0.5")
    )
    assert halved.pipeline.datamanager.patch_size == whole.pipeline.datamanager.patch_size == 128
    assert halved.pipeline.discriminator.channel_base * 2 == whole.pipeline.discriminator.channel_base
    assert discriminator_widths(halved, resolution=128) == [128, 256, 512, 512, 512, 512]
    assert method_config("hypernerfgan").pipeline.discriminator.channel_base == 32768, "the preset is unchanged"


def test_half_the_discriminator_base_halves_only_the_blocks_below_the_channel_cap() -> None:
    """`discriminator-base-x0.5`: the channels halve where `channel_base / resolution` is below `channel_max` and
    stay at `channel_max` elsewhere: on `hypernerfgan-lite` (256 channels at 32 pixels, 512 from 16 down) 128 at 32
    and 256 at 16."""
    bench = Benchmark(num_images=NUM_IMAGES)
    preset, halved = (
        bench.config("hypernerfgan-lite", variant, Path("unused")) for variant in ("preset", "discriminator-base-x0.5")
    )
    assert halved.pipeline.datamanager.patch_size == preset.pipeline.datamanager.patch_size == 32
    assert discriminator_widths(preset, resolution=32) == [256, 512, 512, 512]
    assert discriminator_widths(halved, resolution=32) == [128, 256, 512, 512]
    assert method_config("hypernerfgan-lite").pipeline.discriminator.channel_base == 8192, "the preset is unchanged"


def test_the_command_prints_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    output = tmp_path / "bench.json"
    run(parse([
        "bench", "--methods", "hypernerfgan-tiny", "--variants", "savers-off", "--naive-baseline", "hypernerfgan-tiny",
        "--iterations", "1", "--num-images", str(NUM_IMAGES), "--json", str(output),
    ]))
    report = json.loads(output.read_text())
    assert report["device"].startswith("CPU") and report["memory_cap_gib"] is None
    (row,) = report["rows"]
    assert (row["method"], row["variant"], row["status"]) == ("hypernerfgan-tiny", "savers-off", "done")
    assert row["naive_speedup"] > 0 and row["saved_for_backward_bytes"] > 0
    assert row["seconds_per_plain_iteration"] > 0 and row["seconds_per_r1_iteration"] > 0 and row["r1_cost_ratio"] > 0
    assert report["markdown"].startswith("| method | variant | precision | plain s | R1 s | R1/plain |")
    assert row["operations_per_iteration"] > 0 and row["batch_seconds_per_plain_iteration"] > 0
    assert row["bytes_moved_per_iteration"] > 1e6
    printed = capsys.readouterr().out
    assert "hypernerfgan-tiny" in printed and "faster" in printed


def test_a_profiled_row_writes_its_operations_by_time_and_its_timeline(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    output = tmp_path / "bench.json"
    run(parse([
        "bench", "--methods", "hypernerfgan-tiny", "--variants", "preset", "--naive-baseline", "--iterations", "1",
        "--num-images", str(NUM_IMAGES), "--json", str(output), "--profile-dir", str(profiles),
    ]))
    (row,) = json.loads(output.read_text())["rows"]
    table, trace = (Path(path) for path in row["profile_files"])
    assert table == profiles / "hypernerfgan-tiny_preset.txt"
    assert trace == profiles / "hypernerfgan-tiny_preset.trace.json.gz"
    text = table.read_text()
    assert text.startswith("One plain training iteration of hypernerfgan-tiny_preset, operations by their own host")
    ranked = re.findall(r"^\s*(aten::\S+)\s", text, flags=re.MULTILINE)
    assert len(ranked) >= 20 and "aten::baddbmm" in ranked, "the field's batched matmuls among the longest"
    events = json.loads(gzip.decompress(trace.read_bytes()))["traceEvents"]
    names = {event.get("name") for event in events}
    assert {"aten::convolution", "aten::baddbmm"} <= names, "the discriminator's and the field's operations"
    assert row["device_busy_seconds_per_plain_iteration"] is None, "no accelerator on the CPU"


def test_an_interrupted_command_reports_the_rows_it_measured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    measured = []
    output = tmp_path / "bench.json"

    def measure(self: Benchmark, method: str, variant: str, naive_baseline: bool = False) -> BenchResult:
        if measured:
            # The first row is on disk before the second starts: a process killed now (out of memory) keeps it.
            assert [row["variant"] for row in json.loads(output.read_text())["rows"]] == ["preset"]
            raise KeyboardInterrupt  # a time limit's SIGINT during the second row
        measured.append(BenchResult(method=method, variant=variant, seconds_per_plain_iteration=1.0))
        return measured[-1]

    monkeypatch.setattr(Benchmark, "measure", measure)
    run(parse(["bench", "--methods", "hypernerfgan-tiny", "--variants", "preset", "eval-fp32", "--json", str(output)]))
    (row,) = json.loads(output.read_text())["rows"]
    assert (row["variant"], row["seconds_per_plain_iteration"]) == ("preset", 1.0)


def test_a_row_that_fails_is_reported_and_the_next_rows_are_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backend without a kernel for one variant (as a GPU may lack one) ends that row only: a time-limited GPU
    call still measures the rows after it."""
    time_field = Benchmark.time_field

    def failing_on_channels_last(self: Benchmark, trainer: Any, result: BenchResult) -> None:
        if result.variant == "discriminator-channels-last":
            raise RuntimeError("no kernel for this layout\nsecond line")
        time_field(self, trainer, result)

    monkeypatch.setattr(Benchmark, "time_field", failing_on_channels_last)
    output = tmp_path / "bench.json"
    run(parse([
        "bench", "--methods", "hypernerfgan-tiny", "--variants", "discriminator-channels-last", "preset",
        "--naive-baseline", "--iterations", "1", "--num-images", str(NUM_IMAGES), "--json", str(output),
    ]))
    failed, done = json.loads(output.read_text())["rows"]
    assert (failed["status"], failed["message"]) == ("failed", "RuntimeError: no kernel for this layout")
    assert done["status"] == "done" and done["seconds_per_plain_iteration"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU-only refusal")
def test_simulating_gpu_memory_needs_a_gpu(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as refused:
        run(parse(["bench", "--methods", "hypernerfgan-tiny", "--simulate-memory-gb", "16"]))
    assert refused.value.code == BenchError.exit_code
    assert "no CUDA device" in capsys.readouterr().out


def test_timed_steps_separate_plain_and_r1_iterations() -> None:
    bench = Benchmark(warmup_iterations=2, iterations=3)

    class Trainer:
        class pipeline:  # noqa: N801  (what timed_steps reads of a trainer)
            r1_gamma = 1.0
            r2_gamma = 0.0

            class config:  # noqa: N801
                class loss:  # noqa: N801
                    r1_interval = 4

    ran = []
    bench.iteration = lambda trainer, step: ran.append(step)  # type: ignore[method-assign]
    plain, r1 = bench.timed_steps(Trainer())
    assert ran == [1, 2], "the plain kind's own warm-up (step 0, an R1 step, warmed up its kind)"
    assert plain == [3, 5, 6] and r1 == [4, 8, 12]
    Trainer.pipeline.r1_gamma = 0.0
    ran.clear()
    plain, r1 = bench.timed_steps(Trainer())
    assert ran == [1, 2] and plain == [3, 4, 5] and r1 == []
    Trainer.pipeline.r2_gamma = 1.0
    plain, r1 = bench.timed_steps(Trainer())
    assert plain == [3, 5, 6] and r1 == [4, 8, 12], "R2 alone makes regularised iterations too"


def test_simulated_memory_names_the_cuda_device_by_index(monkeypatch) -> None:
    """torch.cuda.set_per_process_memory_fraction rejects torch.device("cuda"), which has no index."""
    calls = []

    class Properties:
        total_memory = 140 * (1 << 30)

    def set_fraction(fraction, device):
        calls.append((fraction, torch.cuda._utils._get_device_index(device)))  # raises as torch does without index

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: Properties())
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", set_fraction)
    command = parse(["bench", "--simulate-memory-gb", "16"])
    assert command.cap_memory(torch.device("cuda")) == 16
    assert command.cap_memory(torch.device("cuda", 1)) == 16
    assert calls == [(pytest.approx(16 / 140), 0), (pytest.approx(16 / 140), 1)]
    with pytest.raises(BenchError, match="between 0"):
        parse(["bench", "--simulate-memory-gb", "200"]).cap_memory(torch.device("cuda"))


def test_bad_iteration_counts_are_refused() -> None:
    with pytest.raises(SystemExit) as refused:
        run(parse(["bench", "--iterations", "0"]))
    assert refused.value.code == BenchError.exit_code


def test_rows_start_at_the_augmentation_probability_asked_for() -> None:
    """At p = 0 no image is augmented and the augmentation costs nothing: the bench times training as it runs once
    ADA has raised p."""
    config = Benchmark().config("hypernerfgan-tiny", "preset", Path("unused"))
    assert config.pipeline.augment.initial_p == DEFAULT_AUGMENT_PROBABILITY > 0
    assert config.pipeline.augment.adaptive, "p adapts from there, as in training"
    for probability in (0.0, 0.3):
        config = Benchmark(augment_probability=probability).config("hypernerfgan", "preset", Path("unused"))
        assert config.pipeline.augment.initial_p == probability
    with pytest.raises(SystemExit) as refused:
        run(parse(["bench", "--augment-probability", "1.5"]))
    assert refused.value.code == BenchError.exit_code
