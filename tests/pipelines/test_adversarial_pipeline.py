"""The two phases: each one's gradients reach only the network it trains; R1 runs lazily; the logs are filled."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import pytest
import torch

from hypernerfgan_ns.pipelines.adversarial_pipeline import AdversarialPipeline
from tests.helpers import micro_config


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
