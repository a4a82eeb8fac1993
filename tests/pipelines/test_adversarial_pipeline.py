"""The two phases: each one's gradients reach only the network it trains; R1 runs lazily; the logs are filled."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import pytest
import torch

from hypernerfgan_ns.cameras.camera_prior import look_at_origin_poses
from hypernerfgan_ns.errors import ConfigError
from hypernerfgan_ns.pipelines import adversarial_pipeline as pipeline_module
from hypernerfgan_ns.pipelines.adversarial_pipeline import FAKE_OPACITY, AdversarialPipeline
from hypernerfgan_ns.training.input_blur import blur_images
from tests.helpers import micro_config, points_queried


@pytest.fixture
def pipeline(tmp_path: Path) -> AdversarialPipeline:
    torch.manual_seed(0)
    config = micro_config(tmp_path)
    pipeline = config.pipeline.setup(device="cpu", test_mode="val")
    return pipeline.train()


def has_gradients(module: torch.nn.Module) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def recorded_renders(pipeline: AdversarialPipeline) -> List[Dict[str, torch.Tensor]]:
    """From now on, the outputs of each of the pipeline's patch renders, in order."""
    renders: List[Dict[str, torch.Tensor]] = []
    render = pipeline.render_patches

    def recording(*args: Any, **kwargs: Any) -> Dict[str, torch.Tensor]:
        renders.append(render(*args, **kwargs))
        return renders[-1]

    pipeline.render_patches = recording  # type: ignore[method-assign]
    return renders


def test_discriminator_phase_trains_only_the_discriminator(pipeline: AdversarialPipeline) -> None:
    losses, metrics = pipeline.get_discriminator_loss_dict(step=1)  # r1_interval = 2: no R1 at step 1
    assert set(losses) == {"discriminator"} and {"D(real)", "D(fake)"} <= set(metrics)
    sum(losses.values()).backward()
    assert has_gradients(pipeline.discriminator)
    assert not has_gradients(pipeline.model.generator)


def test_r1_is_added_every_interval_with_its_gain(pipeline: AdversarialPipeline) -> None:
    losses, metrics = pipeline.get_discriminator_loss_dict(step=2)
    assert set(losses) == {"discriminator", "r1"}
    interval = pipeline.config.loss.r1_interval
    expected = metrics["r1_penalty"] * pipeline.r1_gamma / 2 * interval
    assert torch.isclose(losses["r1"].detach(), expected)
    sum(losses.values()).backward()
    assert not has_gradients(pipeline.model.generator)


def test_generator_phase_trains_only_the_generator(pipeline: AdversarialPipeline) -> None:
    outputs, losses, metrics = pipeline.get_train_loss_dict(step=0)
    patch = pipeline.config.datamanager.patch_size
    assert outputs["rgb"].shape == (pipeline.batch_size, 3, patch, patch)
    assert outputs["rgb"].min() >= -1.0 and outputs["rgb"].max() <= 1.0
    assert set(losses) == {"generator"} and "augment_p" in metrics
    assert 0.0 < metrics[FAKE_OPACITY] < 1.0, "a fresh generator renders the density prior's blob, not all or nothing"
    losses["generator"].backward()
    assert has_gradients(pipeline.model.generator)
    assert not has_gradients(pipeline.discriminator)
    assert all(p.requires_grad for p in pipeline.discriminator.parameters()), "D is unfrozen after the phase"
    assert not has_gradients(pipeline.model.generator_ema)


def test_param_groups_name_the_two_optimizers(pipeline: AdversarialPipeline) -> None:
    groups = pipeline.get_param_groups()
    assert set(groups) == {"generator", "discriminator"}
    assert len(groups["generator"]) == len(list(pipeline.model.generator.parameters()))


def test_evaluation_reports_the_swd_curve_and_a_sample_grid(pipeline: AdversarialPipeline) -> None:
    _, losses, per_level = pipeline.get_eval_loss_dict(step=0)
    assert float(losses["swd"]) > 0 and per_level
    _, images = pipeline.get_eval_image_metrics_and_images(step=0)
    resolution = pipeline.config.datamanager.dataparser.resolution
    assert images["samples"].shape == (resolution, resolution * pipeline.config.sample_grid_seeds, 3)
    assert pipeline.training, "evaluation hands the pipeline back in training mode"


def test_the_swd_curve_renders_in_the_evaluation_precision(pipeline: AdversarialPipeline, monkeypatch) -> None:
    """What `eval_mixed_precision` enters on CUDA, entered here on the CPU: fp16 renders, SWD on fp32 patches."""
    model = pipeline.model
    monkeypatch.setattr(model, "evaluation_autocast", lambda: torch.autocast("cpu", dtype=torch.float16))
    dtypes = []
    render_rays = model.render_rays

    def recording(*args: Any) -> Dict[str, torch.Tensor]:
        dtypes.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return render_rays(*args)

    monkeypatch.setattr(model, "render_rays", recording)
    _, losses, _ = pipeline.get_eval_loss_dict(step=0)
    assert dtypes and set(dtypes) == {torch.float16}
    assert losses["swd"].dtype == torch.float32 and torch.isfinite(losses["swd"])


def test_the_swd_curve_scores_the_shown_generator(pipeline: AdversarialPipeline, monkeypatch) -> None:
    """The EMA, unless `render_with_ema` is off (the `no-ema` study row): then the trained generator, as the quality
    curve and the sample grid."""
    model = pipeline.model
    rendered_by = []
    render_rays = model.render_rays

    def recording(ray_bundle, generator, *args):
        rendered_by.append(generator)
        return render_rays(ray_bundle, generator, *args)

    monkeypatch.setattr(model, "render_rays", recording)
    pipeline.get_eval_loss_dict(step=0)
    monkeypatch.setattr(model.config, "render_with_ema", False)
    pipeline.get_eval_loss_dict(step=0)
    shown = [generator is model.generator_ema for generator in rendered_by]
    assert shown[0] and not shown[-1] and rendered_by[-1] is model.generator


def test_both_phases_run_in_fp16_autocast_with_a_grad_scaler(pipeline: AdversarialPipeline) -> None:
    """The dtype plumbing of mixed precision (what a T4 runs), exercised with CPU autocast."""
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    pipeline.grad_scaler = scaler
    with torch.autocast("cpu", dtype=torch.float16):
        d_losses, d_metrics = pipeline.get_discriminator_loss_dict(step=0)  # with R1 (step 0)
    assert "r1" in d_losses and all(torch.isfinite(value) for value in d_losses.values())
    scaler.scale(sum(d_losses.values())).backward()
    with torch.autocast("cpu", dtype=torch.float16):
        outputs, g_losses, _ = pipeline.get_train_loss_dict(step=0)
    assert outputs["rgb"].dtype == torch.float32 or outputs["rgb"].dtype == torch.float16
    scaler.scale(g_losses["generator"]).backward()
    for module in (pipeline.discriminator, pipeline.model.generator):
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
    weights = pipeline.model.generator.object_weights(torch.randn(2, pipeline.model.config.latent_dim))
    assert all(layer.dtype == torch.float32 for layer in weights.layers), "the hypernetwork stays in fp32"


def test_shared_fakes_render_once_per_iteration_and_train_the_generator_through_them(
    pipeline: AdversarialPipeline,
) -> None:
    pipeline.config.shared_fakes = True
    renders = recorded_renders(pipeline)

    d_losses, _ = pipeline.get_discriminator_loss_dict(step=1)
    sum(d_losses.values()).backward()
    assert has_gradients(pipeline.discriminator)
    assert not has_gradients(pipeline.model.generator), "the D phase reads the shared fakes detached"
    outputs, g_losses, _ = pipeline.get_train_loss_dict(step=1)
    assert len(renders) == 1 and outputs is renders[0], "the G phase trains through the D phase's render"
    pipeline.discriminator.zero_grad()
    g_losses["generator"].backward()
    assert has_gradients(pipeline.model.generator)
    assert not has_gradients(pipeline.discriminator)

    pipeline.get_discriminator_loss_dict(step=2)
    pipeline.get_train_loss_dict(step=2)
    pipeline.get_train_loss_dict(step=3)  # no D phase at step 3: its own render, not step 2's taken twice
    assert len(renders) == 3 and renders[2]["rgb"].requires_grad


def test_without_shared_fakes_each_phase_renders_its_own(pipeline: AdversarialPipeline) -> None:
    renders = recorded_renders(pipeline)
    pipeline.get_discriminator_loss_dict(step=1)
    outputs, _, _ = pipeline.get_train_loss_dict(step=1)
    assert len(renders) == 2 and not renders[0]["rgb"].requires_grad and outputs is renders[1]


@pytest.fixture
def relativistic(tmp_path: Path) -> AdversarialPipeline:
    """The micro pipeline with R3GAN's objective: the relativistic pairing loss, R1 and R2 at one weight."""
    torch.manual_seed(0)
    config = micro_config(tmp_path)
    config.pipeline.loss.objective = "relativistic"
    config.pipeline.loss.r2_gamma = None
    return config.pipeline.setup(device="cpu", test_mode="val").train()


def test_r2_penalises_the_fakes_with_r1s_weight_and_trains_only_the_discriminator(
    relativistic: AdversarialPipeline, monkeypatch
) -> None:
    assert relativistic.r2_gamma == relativistic.r1_gamma > 0
    evidence: List[torch.Tensor] = []
    monkeypatch.setattr(relativistic.augment, "accumulate", evidence.append)
    plain, plain_metrics = relativistic.get_discriminator_loss_dict(step=1)
    assert set(plain) == {"discriminator"}, "R2 is lazy, as R1"
    # ADA's overfitting statistic: how surely D ranks each real above its fake, the logits' level being free here
    (ranked,) = evidence
    assert torch.isclose(ranked.mean(), plain_metrics["D(real)"] - plain_metrics["D(fake)"], atol=1e-6)
    losses, metrics = relativistic.get_discriminator_loss_dict(step=2)
    assert set(losses) == {"discriminator", "r1", "r2"}
    interval = relativistic.config.loss.r1_interval
    assert torch.isclose(losses["r2"].detach(), metrics["r2_penalty"] * relativistic.r2_gamma / 2 * interval)
    assert float(metrics["r2_penalty"]) > 0 and not torch.isclose(metrics["r2_penalty"], metrics["r1_penalty"])
    sum(losses.values()).backward()
    assert has_gradients(relativistic.discriminator)
    assert not has_gradients(relativistic.model.generator)


def test_relativistic_generator_loss_pairs_its_fakes_with_the_discriminator_phase_reals(
    relativistic: AdversarialPipeline, monkeypatch
) -> None:
    relativistic.augment.p.zero_()  # no augmentation: the logits below are recomputable
    relativistic.get_discriminator_loss_dict(step=1)
    reals = relativistic._paired_reals[1]
    new_reals = relativistic.datamanager.sample_real_patches
    monkeypatch.setattr(relativistic.datamanager, "sample_real_patches", lambda *args, **kwargs: pytest.fail())
    outputs, losses, _ = relativistic.get_train_loss_dict(step=1)
    with torch.no_grad():
        fake_logits = relativistic.discriminator(outputs["rgb"])
        expected = torch.nn.functional.softplus(relativistic.discriminator(reals) - fake_logits).mean()
    assert torch.isclose(losses["generator"].detach(), expected, rtol=1e-5)
    losses["generator"].backward()
    assert has_gradients(relativistic.model.generator)
    assert not has_gradients(relativistic.discriminator), "the reals' logits are constants for the generator"

    monkeypatch.setattr(relativistic.datamanager, "sample_real_patches", new_reals)
    _, losses, _ = relativistic.get_train_loss_dict(step=2)  # no D phase at step 2: reals of its own
    assert torch.isfinite(losses["generator"])


def test_the_grad_scale_is_read_only_in_iterations_a_penalty_runs(
    relativistic: AdversarialPipeline, monkeypatch
) -> None:
    """Reading it waits for the device (`GradScaler.get_scale` is an `.item()`): a plain iteration must not."""
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    reads = []
    monkeypatch.setattr(scaler, "get_scale", lambda: reads.append(1) or 2.0**10)
    relativistic.grad_scaler = scaler
    relativistic.get_discriminator_loss_dict(step=1)
    assert reads == [], "no R1 or R2 at step 1"
    losses, _ = relativistic.get_discriminator_loss_dict(step=2)
    assert {"r1", "r2"} <= set(losses) and reads == [1], "read once for both penalties"


@pytest.fixture
def small_patches(tmp_path: Path) -> AdversarialPipeline:
    """The micro pipeline with 8 x 8 patches of its 16 x 16 images, so that patches lie anywhere in the frame."""
    return pipeline_from_seed(tmp_path, {"datamanager.patch_size": 8})


def whole_image_patch_pipeline(tmp_path: Path, name: str, value: str) -> AdversarialPipeline:
    """The micro pipeline with 8 x 8 patches spread over its whole 16 x 16 images (every other pixel), with the
    datamanager's option `name` set to `value`."""
    options = {"datamanager.patch_size": 8, "datamanager.whole_image_patches": True, f"datamanager.{name}": value}
    return pipeline_from_seed(tmp_path, options)


@pytest.fixture
def whole_image_patches(tmp_path: Path) -> AdversarialPipeline:
    """Rays at the coarse grid's pixel centres, real pixels read at the nearest photo pixel."""
    return whole_image_patch_pipeline(tmp_path, "scaled_real_patches", "nearest")


@pytest.fixture
def random_phase_patches(tmp_path: Path) -> AdversarialPipeline:
    """Rays through every other pixel's centre from a random first one."""
    return whole_image_patch_pipeline(tmp_path, "whole_image_patch_phase", "random")


@pytest.mark.parametrize("patches", ["small_patches", "whole_image_patches", "random_phase_patches"])
def test_training_renders_run_the_mlp_at_the_patch_capacity_with_the_same_images_and_gradients(
    patches: str, request: pytest.FixtureRequest
) -> None:
    pipeline: AdversarialPipeline = request.getfixturevalue(patches)
    model = pipeline.model
    model.config.density_noise_std = 0.0  # its draws follow the number of points queried
    capacity, points = model.training_query_capacity, 8 * 8 * 8
    assert capacity is not None and capacity < 0.9 * points
    ray_bundle, latents = pipeline.datamanager.next_train_rays(0), torch.randn(4, 16)
    results = []
    for queried_per_object, recompute_ray_chunk in ((capacity, None), (capacity, 5), (None, None)):
        model.training_query_capacity = queried_per_object
        model.config.recompute_ray_chunk = recompute_ray_chunk  # checkpointed chunks of the queried samples
        model.zero_grad(set_to_none=True)
        rendered = {}

        def render() -> None:
            torch.manual_seed(1)  # the same stratification
            rendered["rgb"] = model(ray_bundle, latents=latents)["rgb"]

        queried = points_queried(model.generator.field, render)
        assert queried == (queried_per_object or points), "samples per object the MLP runs at"
        rendered["rgb"].square().sum().backward()
        results.append((rendered["rgb"].detach(), [p.grad.clone() for p in model.generator.parameters()]))
    rgb_full, grads_full = results[-1]
    assert (rgb_full < 0.9).any(), "something is drawn"
    for rgb_packed, grads_packed in results[:-1]:
        assert torch.allclose(rgb_packed, rgb_full, atol=1e-6)
        for packed, full in zip(grads_packed, grads_full):
            assert torch.allclose(packed, full, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("patches", ["small_patches", "whole_image_patches", "random_phase_patches"])
def test_no_training_patch_holds_more_samples_in_the_sphere_than_the_capacity(
    patches: str, request: pytest.FixtureRequest
) -> None:
    pipeline: AdversarialPipeline = request.getfixturevalue(patches)
    model, capacity = pipeline.model, pipeline.model.training_query_capacity
    most = 0
    for step in range(40):
        samples = model.sampler_coarse(model.collider(pipeline.datamanager.next_train_rays(step)))
        inside = model.generator.field.may_have_density(samples.frustums.get_positions()).view(4, -1)
        most = max(most, int(inside.sum(dim=1).max()))
    # Not far below: the count takes a sample whose interval meets the sphere as inside (8 wide intervals here).
    assert capacity is not None and 0.8 * capacity <= most <= capacity


@pytest.fixture
def whole_images_with_importance(tmp_path: Path) -> AdversarialPipeline:
    """The micro pipeline (whole 16 x 16 images) with 4 importance samples per ray after its 8 coarse ones. (An
    8 x 8 patch can lie wholly inside the sphere's image, so on `small_patches` the importance capacity is all.)"""
    return pipeline_from_seed(tmp_path, {"model.num_importance_samples": 4})


def test_importance_samples_run_the_mlp_at_their_capacity_with_the_same_images_and_gradients(
    whole_images_with_importance: AdversarialPipeline,
) -> None:
    """The importance samples of the rays that miss the object sphere are not queried: the same render."""
    pipeline = whole_images_with_importance
    model = pipeline.model
    model.config.density_noise_std = 0.0
    coarse, importance = model.training_query_capacity, model.training_importance_capacity
    assert coarse is not None and importance is not None and importance < 0.9 * 16 * 16 * 4
    ray_bundle, latents = pipeline.datamanager.next_train_rays(0), torch.randn(4, 16)
    results = []
    for capacities in ((coarse, importance), (None, None)):
        model.training_query_capacity, model.training_importance_capacity = capacities
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the same stratification and importance draws
        rgb = model(ray_bundle, latents=latents)["rgb"]
        rgb.square().sum().backward()
        results.append((rgb.detach(), [p.grad.clone() for p in model.generator.parameters()]))
    (rgb_packed, grads_packed), (rgb_full, grads_full) = results
    assert (rgb_full < 0.9).any(), "something is drawn"
    assert torch.allclose(rgb_packed, rgb_full, atol=1e-6)
    for packed, full in zip(grads_packed, grads_full):
        assert torch.allclose(packed, full, atol=1e-6, rtol=1e-4)


def test_no_training_patch_has_more_rays_meeting_the_sphere_than_the_importance_capacity_holds(
    whole_images_with_importance: AdversarialPipeline,
) -> None:
    pipeline = whole_images_with_importance
    capacity, radius = pipeline.model.training_importance_capacity, pipeline.model.generator.field.object_radius
    most = 0
    for step in range(40):
        bundle = pipeline.model.collider(pipeline.datamanager.next_train_rays(step))
        # A ray meets the sphere between near and far where its point closest to the centre, clamped to that
        # span, lies inside.
        closest = (-(bundle.origins * bundle.directions).sum(-1, keepdim=True)).clamp(bundle.nears, bundle.fars)
        meets = (bundle.origins + bundle.directions * closest).norm(dim=-1) <= radius
        most = max(most, int(meets.view(4, -1).sum(dim=1).max()))
    assert capacity is not None and 0.8 * capacity <= 4 * most <= capacity, "4 importance samples per ray"


def test_rays_of_a_camera_off_the_prior_fail_loudly_instead_of_losing_samples(
    small_patches: AdversarialPipeline,
) -> None:
    prior = small_patches.model.dataset_preset.camera_prior
    closer = prior.cameras(look_at_origin_poses(torch.zeros(4), torch.zeros(4), radius=0.6 * prior.radius), 16)
    coords = (torch.stack(torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij"), -1) + 4.5).view(-1, 2)
    bundle = closer.generate_rays(
        camera_indices=torch.arange(4)[:, None, None].expand(4, 64, 1), coords=coords.expand(4, -1, -1)
    ).flatten()
    with pytest.raises(RuntimeError, match="not a prior camera"):
        small_patches.model(bundle, latents=torch.randn(4, 16))


def test_the_capacity_is_left_unset_where_no_patch_geometry_bounds_it(small_patches: AdversarialPipeline) -> None:
    assert small_patches.training_query_capacity() == small_patches.model.training_query_capacity
    small_patches.datamanager.config.patch_scale_annealing_images = 100  # scaled patches cover any square
    assert small_patches.training_query_capacity() is None
    small_patches.datamanager.config.patch_scale_annealing_images = 0
    capacity, samples = small_patches.training_query_capacity(), 8 * 8 * 8
    small_patches.model.config.train_query_min_saving = 1.0 - capacity / samples + 0.01  # leaves out too few
    assert small_patches.training_query_capacity() is None
    small_patches.model.config.train_query_min_saving = 0.1
    small_patches.model.config.train_query_inside_bound_only = False
    assert small_patches.training_query_capacity() is None


def pipeline_from_seed(tmp_path: Path, options: Dict[str, Any]) -> AdversarialPipeline:
    """The micro config's pipeline in training mode, built from seed 0, with `options` set on its config by dotted
    path ("discriminator.compile")."""
    torch.manual_seed(0)
    config = micro_config(tmp_path)
    for path, value in options.items():
        *parents, name = path.split(".")
        target = config.pipeline
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, name, value)
    return config.pipeline.setup(device="cpu", test_mode="val").train()


def losses_and_gradients(
    pipeline: AdversarialPipeline, steps: Sequence[int] = (2,)
) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """Both phases at each step (the micro config's r1_interval is 2: even steps are R1 ones), each loss
    backpropagated: the losses by name@step, and the parameters' gradients accumulated over them all."""
    torch.manual_seed(1)
    losses = {}
    for step in steps:
        d_losses, _ = pipeline.get_discriminator_loss_dict(step=step)
        sum(d_losses.values()).backward()
        _, g_losses, _ = pipeline.get_train_loss_dict(step=step)
        sum(g_losses.values()).backward()
        losses.update({f"{name}@{step}": loss for name, loss in {**d_losses, **g_losses}.items()})
    grads = {name: param.grad.clone() for name, param in pipeline.named_parameters() if param.grad is not None}
    return losses, grads


def assert_the_same_training(expected: Tuple[Dict, Dict], actual: Tuple[Dict, Dict]) -> None:
    """The same losses and gradients, to float rounding."""
    (losses, grads), (actual_losses, actual_grads) = expected, actual
    assert actual_losses.keys() == losses.keys()
    for name in losses:
        assert torch.allclose(losses[name], actual_losses[name], rtol=1e-5, atol=1e-6), name
    assert actual_grads.keys() == grads.keys()
    for name in grads:
        assert torch.allclose(grads[name], actual_grads[name], rtol=1e-3, atol=1e-6), name


def test_a_channels_last_discriminator_trains_with_the_same_losses_and_gradients(tmp_path: Path) -> None:
    """`--pipeline.discriminator.channels-last` through both phases with R1: the same losses and the same gradients
    as the NCHW discriminator, and its parameters keep their layout after an Adam step."""
    outcomes = []
    for channels_last in (False, True):
        pipeline = pipeline_from_seed(tmp_path, {"discriminator.channels_last": channels_last})
        outcomes.append(losses_and_gradients(pipeline))
        if channels_last:
            weight = pipeline.discriminator.blocks[0].conv0.weight
            torch.optim.Adam(pipeline.discriminator.parameters(), fused=False, foreach=True).step()
            assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert set(outcomes[0][0]) == {"discriminator@2", "r1@2", "generator@2"}
    assert_the_same_training(*outcomes)


def test_a_compiled_target_field_trains_with_the_same_losses_and_gradients(tmp_path: Path) -> None:
    """`--pipeline.model.compile-target-field` through both phases with R1, with and without recomputed activations:
    the eager run's losses and gradients, one graph per phase (the D phase's fakes render without grad), nothing
    added to the checkpoint, and the EMA generator and the renders outside training eager."""
    outcomes, checkpoint_keys = [], []
    for compile_field, recompute_ray_chunk in ((False, None), (True, None), (True, 64)):
        options = {"model.compile_target_field": compile_field, "model.recompute_ray_chunk": recompute_ray_chunk}
        options["model.density_noise_std"] = 0.0  # compiled code draws its own random numbers
        pipeline = pipeline_from_seed(tmp_path, options)
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        outcomes.append(losses_and_gradients(pipeline))
        checkpoint_keys.append(list(pipeline.state_dict()))
        counters = torch._dynamo.utils.counters
        assert counters["stats"]["unique_graphs"] == (2 if compile_field else 0)
        assert not counters["graph_break"]
        model = pipeline.model
        assert model.field_to_run(model.generator_ema) is model.generator_ema.field
        assert (model.field_to_run(model.generator) is model.generator.field) is not compile_field
        model.eval()
        assert model.field_to_run(model.generator) is model.generator.field
    assert checkpoint_keys[1] == checkpoint_keys[2] == checkpoint_keys[0]
    for compiled_outcome in outcomes[1:]:
        assert_the_same_training(outcomes[0], compiled_outcome)


def test_a_compiled_discriminator_trains_with_the_same_losses_and_gradients(tmp_path: Path) -> None:
    """`--pipeline.discriminator.compile`: a plain D phase and a G phase through compiled calls (a graph each: D's
    weights trained, then frozen), an R1 step eager (compiled code has no double backward), with the eager run's
    losses and gradients."""
    outcomes = []
    for compile_discriminator in (False, True):
        pipeline = pipeline_from_seed(tmp_path, {"discriminator.compile": compile_discriminator})
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        outcomes.append(losses_and_gradients(pipeline, steps=(1, 2)))  # a plain step, then an R1 one
        counters = torch._dynamo.utils.counters
        assert counters["stats"]["unique_graphs"] == (2 if compile_discriminator else 0)
        with torch.no_grad():  # as the relativistic G phase scores its reals: one more graph, for either layout
            rendered = torch.rand(4, 16, 16, 3).permute(0, 3, 1, 2)  # a rendered batch is a permuted view
            for images in (rendered, rendered.contiguous()):
                pipeline.discriminate(pipeline.discriminator, images)
        assert counters["stats"]["unique_graphs"] == (3 if compile_discriminator else 0)
        assert not counters["graph_break"]
    assert "r1@2" in outcomes[0][0]
    assert_the_same_training(*outcomes)


def test_a_target_field_that_does_not_compile_says_how_to_train_without_compiling(tmp_path: Path) -> None:
    """Without a working C++ compiler (or Triton on a GPU) the first training render stops with what to do."""
    config = micro_config(tmp_path)
    config.pipeline.model.compile_target_field = True
    pipeline = config.pipeline.setup(device="cpu", test_mode="val").train()
    torch._dynamo.reset()
    no_compiler = {"cpp.cxx": ("no-such-c++-compiler",), "fx_graph_cache": False}  # and no graph compiled before
    with torch._inductor.config.patch(no_compiler), pytest.raises(ConfigError, match="compile-target-field False"):
        pipeline.get_train_loss_dict(step=1)
    torch._dynamo.reset()


# ------------------------------------------------------------------------------------------- the discriminator's blur


def test_the_discriminator_sees_blurred_patches_until_the_blur_fades(tmp_path: Path, monkeypatch) -> None:
    """EG3D's input blur: fakes and reals blurred with the schedule's kernel in both phases (and R1's), before the
    augmentation; after the fade's images, the patches as they are."""
    pipeline = pipeline_from_seed(tmp_path, {"input_blur.initial_sigma": 1.0, "input_blur.fade_images": 8})
    blurred: List[Tuple[torch.Tensor, Any, torch.Tensor]] = []
    augmented: List[torch.Tensor] = []

    def recording_blur(images: torch.Tensor, kernel: Any) -> torch.Tensor:
        blurred.append((images, kernel, blur_images(images, kernel)))
        return blurred[-1][2]

    augment = pipeline.augment.forward
    monkeypatch.setattr(pipeline_module, "blur_images", recording_blur)
    monkeypatch.setattr(pipeline.augment, "forward", lambda images: augmented.append(images) or augment(images))
    renders = recorded_renders(pipeline)
    pipeline.get_discriminator_loss_dict(step=1)  # fakes and reals in one call
    pipeline.get_discriminator_loss_dict(step=2)  # R1: each alone
    pipeline.get_train_loss_dict(step=2)
    assert len(blurred) == len(augmented) == 4
    for (_, kernel, output), augment_input in zip(blurred, augmented):
        assert kernel is pipeline.input_blur_kernel and kernel is not None
        assert augment_input is output, "blurred first, then augmented"
    fakes = blurred[-1][0]
    assert fakes is renders[-1]["rgb"], "the G phase's fakes are blurred with their graph"
    assert not torch.allclose(blurred[-1][2], fakes), "and changed by it"

    pipeline.update_training_progress(step=1)  # 8 images seen: faded out
    assert pipeline.input_blur_kernel is None
    blurred.clear()
    pipeline.get_train_loss_dict(step=3)
    assert blurred[0][2] is blurred[0][0], "the patches as they are"


def test_a_blur_that_changes_no_pixel_trains_as_no_blur(tmp_path: Path) -> None:
    """A sigma so small that the kernel is a single 1: the same losses and gradients as without the blur, through a
    plain step and an R1 step (whose double backward runs through the blur)."""
    plain = losses_and_gradients(pipeline_from_seed(tmp_path, {}), steps=(1, 2))
    vanishing = pipeline_from_seed(tmp_path, {"input_blur.initial_sigma": 0.01, "input_blur.fade_images": 10**6})
    assert vanishing.input_blur_kernel is not None and vanishing.input_blur_kernel.shape[-1] == 3
    assert_the_same_training(plain, losses_and_gradients(vanishing, steps=(1, 2)))


def test_a_blur_wider_than_the_patches_is_refused_at_setup(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reaches 18 px.*--pipeline.input-blur.initial-sigma"):
        pipeline_from_seed(tmp_path, {"input_blur.initial_sigma": 6.0})


@pytest.mark.parametrize("objective", ["logistic", "relativistic"])
def test_a_scale_conditioned_discriminator_is_told_the_scale_of_every_patch_it_judges(
    tmp_path: Path, objective: str, monkeypatch
) -> None:
    """EpiGRAF's conditioning on GRAF's scaled patches: every call of the discriminator, plain and R1 steps of both
    phases, gets the scales of the patches it judges, and the scale mapping trains with the discriminator."""
    options = {
        "datamanager.patch_size": 8,
        "datamanager.patch_scale_annealing_images": 8,
        "discriminator.patch_scale_conditioning": True,
        "loss.objective": objective,
    }
    pipeline = pipeline_from_seed(tmp_path, options)
    told: List[torch.Tensor] = []
    forward = type(pipeline.discriminator).forward

    def recording(self, images, num_batches=1, fade=1.0, patch_scales=None):  # type: ignore[no-untyped-def]
        assert patch_scales is not None and patch_scales.shape == (images.shape[0],)
        told.append(patch_scales)
        return forward(self, images, num_batches, fade, patch_scales)

    monkeypatch.setattr(type(pipeline.discriminator), "forward", recording)
    for step in (1, 2):  # a plain step, then an R1 step (r1_interval = 2)
        losses, _ = pipeline.get_discriminator_loss_dict(step)
        sum(losses.values()).backward()
        embedding = pipeline.discriminator.patch_scale_embedding
        assert embedding is not None and has_gradients(embedding)
        pipeline.discriminator.zero_grad()
        pipeline.get_train_loss_dict(step)[1]["generator"].backward()
    scales = torch.cat(told)
    assert scales.min() >= 0.5 and scales.max() <= 1.0 and scales.min() < 0.99, "8 of 16 px: scales from 1/2 to 1"


def test_a_scale_conditioned_discriminator_needs_scaled_patches(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="patch-scale-annealing-images"):
        pipeline_from_seed(tmp_path, {"datamanager.patch_size": 8, "discriminator.patch_scale_conditioning": True})


def test_the_architecture_table_says_how_patches_are_scaled(small_patches: AdversarialPipeline, capsys) -> None:
    def table_text() -> str:  # the table's words in order, its cells' wrapped lines joined
        small_patches.describe()
        return " ".join(re.sub("[│┌┐└┘├┤┬┴┼─]", " ", capsys.readouterr().out).split())

    data = small_patches.datamanager.config
    data.whole_image_patches, data.scaled_real_patches = True, "nearest"
    assert "whole 16 px images at 8 px, real pixels read nearest" in table_text()
    data.whole_image_patch_phase = "random"
    assert "at 8 px, one pixel in 2 along each axis from a random first one per patch (real pixels" in table_text()
    data.whole_image_patch_phase = "centre"
    data.whole_image_patches, data.patch_scale_annealing_images, data.scaled_real_patches = False, 100, "bilinear"
    assert "from whole images to 8 px crops of 16 px over 100 images, real pixels read bilinear" in table_text()


def test_the_architecture_table_names_a_render_sample_count_apart_from_trainings(
    small_patches: AdversarialPipeline, capsys
) -> None:
    small_patches.describe()
    assert "renders" not in capsys.readouterr().out, "renders sample as training does"
    training = small_patches.model.config.num_coarse_samples
    small_patches.model.config.num_render_samples = 2 * training
    small_patches.describe()
    assert f"{2 * training} samples per ray (training: {training})" in capsys.readouterr().out
