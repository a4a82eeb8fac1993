"""The model: a new generator renders an object-sized blob; the viewed object is model state."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
import torchvision

from hypernerfgan_ns.data.dataset_presets import DatasetPreset
from hypernerfgan_ns.errors import ConfigError
from hypernerfgan_ns.method_configs import METHODS, hypernerfgan_tiny
from hypernerfgan_ns.model_components.ray_samplers import FAR_PLANE_DELTA, merged_samples
from hypernerfgan_ns.models import hypernerfgan as hypernerfgan_module
from hypernerfgan_ns.scripts.bench import OperationCounter
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.field_components.field_heads import FieldHeadNames
from tests.conftest import make_model
from tests.helpers import samples_per_ray_queried


def tiny_model(preset: DatasetPreset):
    config = hypernerfgan_tiny.config.pipeline.model
    scene_box = SceneBox(aabb=torch.tensor([[-1.0] * 3, [1.0] * 3]))
    return config.setup(scene_box=scene_box, num_train_data=1, metadata={"dataset_preset": preset})


def test_new_tiny_generator_renders_an_object_sized_blob_on_white(preset: DatasetPreset, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = tiny_model(preset).eval()
    camera = preset.camera_prior.cameras(preset.camera_prior.orbit_poses(8)[:1], resolution=64)
    start = time.perf_counter()
    outputs = model.get_outputs_for_camera(camera)
    seconds = time.perf_counter() - start
    rgb, accumulation = outputs["rgb"], outputs["accumulation"][..., 0]
    torchvision.utils.save_image(rgb.permute(2, 0, 1), tmp_path / "new_tiny_generator.png")

    assert rgb.shape == (64, 64, 3) and seconds < 5.0
    corners = torch.stack([rgb[0, 0], rgb[0, -1], rgb[-1, 0], rgb[-1, -1]])
    assert torch.allclose(corners, torch.ones_like(corners), atol=1e-3), "the background must be white"
    covered = (accumulation > 0.5).float().mean()
    assert 0.03 < covered < 0.6, f"the object covers {covered:.0%} of the image"
    centre = rgb[24:40, 24:40]
    assert (1 - centre).abs().mean() > 0.1, "the centre must show the object, not the background"
    assert centre.std() > 0.005, "the object must not be a uniform colour"


def test_rgba_is_the_objects_own_colour_with_its_opacity_the_white_background_taken_out(preset: DatasetPreset) -> None:
    """What `ns-render --rendered-output-names rgba` writes and `ns-export pointcloud` keeps points by: a ray that
    misses the object is transparent, not an opaque white pixel."""
    torch.manual_seed(0)
    model = tiny_model(preset).eval()
    camera = preset.camera_prior.cameras(preset.camera_prior.orbit_poses(8)[:1], resolution=32)
    outputs = model.get_outputs_for_camera(camera)
    rgba = model.get_rgba_image(outputs)
    colour, opacity = rgba[..., :3], rgba[..., 3:]
    assert rgba.shape == (32, 32, 4) and torch.equal(opacity, outputs["accumulation"])
    assert float(opacity[0, 0]) < 1e-3 and float(opacity.max()) > 0.9, "the background is clear, the blob is not"
    assert torch.allclose(colour * opacity + (1 - opacity), outputs["rgb"], atol=1e-5), "composited on white again"
    assert 0 <= float(colour.min()) and float(colour.max()) <= 1


def test_viewed_object_is_persistent_state(preset: DatasetPreset) -> None:
    model = make_model(preset)
    other = make_model(preset)
    model.set_viewed_object(model.latent_from_seed(7), seed=7, truncation=0.5)
    state = model.state_dict()
    assert {"viewed_latent", "viewed_seed", "viewed_truncation"} <= set(state)
    other.load_state_dict(state)
    assert int(other.viewed_seed) == 7 and float(other.viewed_truncation) == 0.5
    assert torch.equal(other.viewed_latent, model.latent_from_seed(7))


def test_a_seed_is_the_same_latent_everywhere(preset: DatasetPreset) -> None:
    model = make_model(preset)
    assert torch.equal(model.latent_from_seed(3), model.latent_from_seed(3))
    assert not torch.equal(model.latent_from_seed(3), model.latent_from_seed(4))


def test_renders_show_the_ema_generator_unless_told_to_show_the_trained_one(preset: DatasetPreset) -> None:
    """`render_with_ema` off (the `no-ema` study row) scores what training made, from the same training."""
    torch.manual_seed(0)
    model = make_model(preset).eval()
    with torch.no_grad():
        for parameter in model.generator.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))  # a trained generator away from its average
    latents = model.latents_from_seeds([0, 1])
    cameras = preset.camera_prior.cameras(preset.camera_prior.orbit_poses(2), resolution=16)
    averaged = model.render_latents(latents, cameras)["rgb"]
    model.config.render_with_ema = False
    trained = model.render_latents(latents, cameras)["rgb"]
    assert (trained - averaged).abs().max() > 1e-3, "the two generators differ, and so do their renders"
    model.generator_ema.load_state_dict(model.generator.state_dict())
    model.config.render_with_ema = True
    assert torch.equal(model.render_latents(latents, cameras)["rgb"], trained), "the trained generator's objects"


def test_camera_render_generates_the_weights_once_and_renders_in_chunks(preset: DatasetPreset) -> None:
    model = make_model(preset, eval_num_rays_per_chunk=100).eval()
    calls = []
    original = model.generator_ema.object_weights
    model.generator_ema.object_weights = lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs)
    camera = preset.camera_prior.cameras(preset.camera_prior.orbit_poses(1), resolution=32)
    outputs = model.get_outputs_for_camera(camera)
    assert len(calls) == 1  # 1024 rays in 11 chunks, one hypernetwork pass
    assert outputs["rgb"].shape == (32, 32, 3) and outputs["depth"].shape == (32, 32, 1)


def test_views_rendered_together_equal_views_rendered_one_at_a_time(preset: DatasetPreset) -> None:
    torch.manual_seed(0)
    model = make_model(preset, eval_num_rays_per_chunk=3 * 16 * 16).eval()  # three 16x16 views per pass
    prior = preset.camera_prior
    latents = torch.randn(5, model.config.latent_dim)
    cameras = prior.cameras(prior.sample_poses(5, torch.Generator().manual_seed(0)), resolution=16)
    one_at_a_time = [model.render_latent(latents[i : i + 1], cameras[i : i + 1]) for i in range(5)]
    passes = []
    original = model.render_rays
    model.render_rays = lambda *args, **kwargs: passes.append(1) or original(*args, **kwargs)
    together = model.render_latents(latents, cameras)
    assert len(passes) == 2  # views 0-2, then 3-4
    for name in ("rgb", "accumulation", "depth"):
        assert together[name].shape[:3] == (5, 16, 16)
        expected = torch.stack([outputs[name] for outputs in one_at_a_time])
        assert torch.allclose(together[name], expected, atol=1e-5), name
    assert not torch.allclose(together["rgb"][0], together["rgb"][1])  # each view is its own object

    model.config.eval_num_rays_per_chunk = 100  # a chunk smaller than a view: each view's rays in several passes
    passes.clear()
    split = model.render_latents(latents[:2], cameras[:2])
    assert len(passes) == 2 * 3 and torch.allclose(split["rgb"], together["rgb"][:2], atol=1e-5)
    with pytest.raises(ValueError, match="One latent per camera"):
        model.render_latents(latents[:2], cameras[:3])
    mixed_sizes = prior.cameras(prior.sample_poses(2), resolution=16)
    mixed_sizes.width = mixed_sizes.height = torch.tensor([[16], [8]])
    with pytest.raises(ValueError, match="share one image size"):
        model.render_latents(latents[:2], mixed_sizes)


def test_views_rendered_together_dispatch_fewer_operations_per_view(preset: DatasetPreset) -> None:
    model = make_model(preset, eval_num_rays_per_chunk=8 * 16 * 16).eval()
    prior = preset.camera_prior
    latents = torch.randn(8, model.config.latent_dim)
    cameras = prior.cameras(prior.sample_poses(8), resolution=16)
    with OperationCounter() as one_view:
        model.render_latents(latents[:1], cameras[:1])
    with OperationCounter() as eight_views:
        model.render_latents(latents, cameras)
    assert eight_views.count < 2 * one_view.count  # about the same operations for eight times the views


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_evaluation_renders_in_fp16_on_cuda_only_and_returns_fp32(
    preset: DatasetPreset, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    model = make_model(preset).eval()
    prior = preset.camera_prior
    latents = torch.randn(3, model.config.latent_dim)
    cameras = prior.cameras(prior.sample_poses(3, torch.Generator().manual_seed(0)), resolution=16)
    fp32 = model.render_latents(latents, cameras)
    model.config.eval_mixed_precision = True
    assert all(torch.equal(output, fp32[name]) for name, output in model.render_latents(latents, cameras).items())

    # What the option enters on CUDA, entered here on the CPU: the MLP's matmuls in fp16, the outputs in fp32.
    matmul_dtypes = []
    original_baddbmm = torch.baddbmm

    def baddbmm(*args: torch.Tensor) -> torch.Tensor:
        result = original_baddbmm(*args)
        matmul_dtypes.append(result.dtype)
        return result

    monkeypatch.setattr(torch, "baddbmm", baddbmm)
    with torch.autocast(device_type="cpu", dtype=torch.float16):
        fp16 = model.render_latents(latents, cameras)
    assert set(matmul_dtypes) == {torch.float16}
    for name in ("rgb", "accumulation"):
        assert fp16[name].dtype == torch.float32 and torch.allclose(fp16[name], fp32[name], atol=1e-2), name

    monkeypatch.setattr(type(model), "device", property(lambda self: torch.device("cuda")))
    autocast = model.evaluation_autocast()
    assert isinstance(autocast, torch.autocast) and autocast.device == "cuda" and autocast.fast_dtype == torch.float16
    model.config.eval_mixed_precision = False
    assert not isinstance(model.evaluation_autocast(), torch.autocast)


def test_presets_render_evaluations_in_the_precision_they_train_in() -> None:
    for spec in METHODS.values():
        assert spec.config.pipeline.model.eval_mixed_precision == spec.config.mixed_precision, spec.config.method_name


def test_training_forward_renders_a_batch_of_objects_grouped_by_camera(preset: DatasetPreset) -> None:
    model = make_model(preset).train()
    prior = preset.camera_prior
    cameras = prior.cameras(prior.sample_poses(3), resolution=16)
    bundle = cameras.generate_rays(camera_indices=torch.arange(3).view(3, 1, 1, 1).expand(3, 4, 4, 1),
                                   coords=torch.rand(3, 4, 4, 2) * 16).flatten()
    outputs = model(bundle, latents=torch.randn(3, model.config.latent_dim))
    assert outputs["rgb"].shape == (48, 3) and outputs["accumulation"].shape == (48, 1)
    assert "depth" not in outputs  # the discriminator sees colours: depth is for views
    outputs["rgb"].sum().backward()
    assert model.generator.field.layers[0].weight.grad is not None
    assert all(p.grad is None for p in model.generator_ema.parameters())
    shuffled = bundle[torch.randperm(48)]
    with pytest.raises(RuntimeError, match="grouped by object"):  # checked without waiting for a GPU
        model(shuffled, latents=torch.randn(3, model.config.latent_dim))
    with pytest.raises(ValueError, match="grouped by object"):
        model(bundle[:47], latents=torch.randn(3, model.config.latent_dim))


def test_a_faint_haze_in_the_object_sphere_renders_faint_in_training_and_evaluation(preset: DatasetPreset) -> None:
    """The sphere touches the far plane, so in training the last sample of a ray near the optical axis can lie inside
    it; its interval must end there, or the least density would make those pixels an opaque disk."""
    torch.manual_seed(0)
    model = make_model(preset)
    prior = preset.camera_prior
    camera = prior.cameras(prior.sample_poses(1), resolution=128)
    bundle = model.collider(camera.generate_rays(camera_indices=0).flatten())
    for training in (True, False):
        samples = model.sampler_coarse.train(training)(bundle)
        inside = samples.frustums.get_positions().norm(dim=-1, keepdim=True) <= prior.object_radius
        accumulation = samples.get_weights(1e-3 * inside.float()).sum(dim=-2)
        assert accumulation.max() < 0.01, f"haze of density 1e-3 rendered opaque (training={training})"


def test_importance_sampling_renders_with_both_passes(preset: DatasetPreset) -> None:
    model = make_model(preset, num_importance_samples=8).eval()
    camera = preset.camera_prior.cameras(preset.camera_prior.orbit_poses(1), resolution=8)
    outputs = model.get_outputs_for_camera(camera)
    assert {"rgb", "rgb_coarse", "accumulation", "depth"} <= set(outputs)


def test_an_opaque_far_plane_holds_for_the_importance_samples_too(
    preset: DatasetPreset, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_model(preset, num_importance_samples=8, bound_density_to_object=False, opaque_far_plane=True)
    rendered = []

    def recorded(*args):
        rendered.append(merged_samples(*args))
        return rendered[-1]

    monkeypatch.setattr(hypernerfgan_module, "merged_samples", recorded)
    camera = preset.camera_prior.cameras(preset.camera_prior.orbit_poses(1), resolution=4)
    model.eval().get_outputs_for_camera(camera)
    ((samples, _),) = rendered
    assert (samples.deltas[:, -1] == FAR_PLANE_DELTA).all() and (samples.deltas[:, :-1] < 1.0).all()


def test_importance_sampling_evaluates_each_sample_once_and_trains_through_all_of_them(
    preset: DatasetPreset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A training render queries the field at the coarse and the importance samples once each and composites them
    all, so the coarse samples' colours reach the image with their gradients; it equals one pass of the field over
    the merged samples."""
    torch.manual_seed(0)
    model = make_model(preset, num_coarse_samples=6, num_importance_samples=4, density_noise_std=0.0).train()
    queries, merges = [], []
    query_field = model.query_field

    def recorded_query(ray_samples, *args, **kwargs):
        queries.append((ray_samples, args, query_field(ray_samples, *args, **kwargs)))
        return queries[-1][-1]

    def recorded_merge(*args):
        merges.append(merged_samples(*args))
        return merges[-1]

    monkeypatch.setattr(model, "query_field", recorded_query)
    monkeypatch.setattr(hypernerfgan_module, "merged_samples", recorded_merge)
    prior = preset.camera_prior
    cameras = prior.cameras(prior.sample_poses(2), resolution=4)
    indices = torch.arange(2).view(2, 1, 1, 1).expand(2, 4, 4, 1)
    bundle = cameras.generate_rays(camera_indices=indices, coords=torch.rand(2, 4, 4, 2) * 4).flatten()
    outputs = model(bundle, latents=torch.randn(2, 128))

    (coarse, args, coarse_outputs), (importance, _, _) = queries
    assert (coarse.shape, importance.shape) == ((32, 6), (32, 4)), "each sample is queried once"
    assert "rgb_coarse" not in outputs, "nothing trains on the coarse pass's own image"
    (gradient,) = torch.autograd.grad(outputs["rgb"].sum(), coarse_outputs[FieldHeadNames.RGB])
    assert gradient.abs().sum() > 0, "the coarse samples are trained through"
    ((merged, _),) = merges
    with torch.no_grad():
        one_pass = query_field(merged, *args)
        weights = merged.get_weights(one_pass[FieldHeadNames.DENSITY])
        expected = model.renderer_rgb(rgb=one_pass[FieldHeadNames.RGB], weights=weights)
    assert torch.allclose(outputs["rgb"], expected, atol=1e-6)


def test_renders_outside_training_take_their_own_samples_per_ray(
    preset: DatasetPreset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`num_render_samples` changes what views, ns-eval and the curve render, never what training renders: a finer
    linspace over the same object, which draws it alike."""
    torch.manual_seed(0)
    default, finer = (make_model(preset, num_render_samples=count) for count in (None, 48))
    finer.load_state_dict(default.state_dict())
    default_counts, finer_counts = (samples_per_ray_queried(model, monkeypatch) for model in (default, finer))
    prior = preset.camera_prior
    camera = prior.cameras(prior.orbit_poses(8)[:1], resolution=16)
    views = [model.eval().get_outputs_for_camera(camera) for model in (default, finer)]
    assert default_counts + finer_counts == [16, 48] and (default.render_samples, finer.render_samples) == (16, 48)
    coarse, fine = (view["rgb"] for view in views)
    assert not torch.equal(coarse, fine) and (coarse - fine).abs().mean() < 0.02, "the same object, sampled finer"

    bundle = prior.cameras(prior.sample_poses(1), resolution=4).generate_rays(camera_indices=0).flatten()
    finer.train()(bundle, latents=torch.randn(1, 128))
    assert finer_counts[-1] == 16, "training keeps num_coarse_samples"
    with pytest.raises(ConfigError, match="num-render-samples"):
        make_model(preset, num_render_samples=1)


def test_recomputed_activations_give_the_same_outputs_and_gradients(preset: DatasetPreset) -> None:
    prior = preset.camera_prior
    cameras = prior.cameras(prior.sample_poses(2), resolution=8)
    bundle = cameras.generate_rays(camera_indices=torch.arange(2).view(2, 1, 1, 1).expand(2, 8, 8, 1),
                                   coords=torch.rand(2, 8, 8, 2) * 8).flatten()
    latents = torch.randn(2, 128)
    results = []
    for chunk in (None, 5):
        torch.manual_seed(0)
        # Without density noise: chunks draw the noise in other portions of the random stream than one big draw.
        model = make_model(preset, recompute_ray_chunk=chunk, density_noise_std=0.0).train()
        torch.manual_seed(1)  # same stratification in both runs
        rgb = model(bundle, latents=latents)["rgb"]
        rgb.square().sum().backward()
        results.append((rgb.detach(), model.generator.field.layers[0].weight.grad.clone()))
    (rgb_kept, grad_kept), (rgb_recomputed, grad_recomputed) = results
    assert torch.allclose(rgb_kept, rgb_recomputed, atol=1e-6)
    assert torch.allclose(grad_kept, grad_recomputed, atol=1e-5)
