"""The target field: position only, objects independent in a batch, layout of the reference MLP."""

from __future__ import annotations

import inspect
from typing import Any, List

import pytest
import torch
import torch.utils.checkpoint

from hypernerfgan_ns.field_components.encodings import PositionalEncoding
from hypernerfgan_ns.field_components.fmm import FMMFactors, modulated_weight
from hypernerfgan_ns.fields.target_field import HIDDEN_ACTIVATION_GAIN, ObjectWeights, TargetField, skip_affine
from hypernerfgan_ns.models.hypernerfgan import HyperNeRFGANModel
from hypernerfgan_ns.utils.compiling import compiled
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.field_components.field_heads import FieldHeadNames
from tests.conftest import make_model
from tests.helpers import OperationNames, points_queried


def test_positional_encoding_layout_is_the_reference_one() -> None:
    encoding = PositionalEncoding(num_octaves=10)
    assert encoding.get_out_dim() == 63
    x = torch.tensor([[0.1, -0.2, 0.3]])
    encoded = encoding(x)
    assert torch.allclose(encoded[0, :3], x[0])
    assert torch.allclose(encoded[0, 3:6], torch.sin(x[0]))  # octave 0: sines, then cosines
    assert torch.allclose(encoded[0, 6:9], torch.cos(x[0]))
    assert torch.allclose(encoded[0, -3:], torch.cos(x[0] * 2**9))


def test_the_encoding_written_in_place_equals_the_differentiable_one_in_either_precision() -> None:
    """Rendered points need no gradient, so their sines and cosines are written straight into the encoding (in the
    target MLP's precision); points that need one take the general path. Both give the same channels, and the fp16
    encoding is the float32 one rounded once."""
    torch.manual_seed(0)
    encoding = PositionalEncoding(num_octaves=10)
    points = torch.rand(2, 300, 3) * 4 - 2
    differentiable = points.clone().requires_grad_()
    general = encoding(differentiable)
    for dtype, last_bit in ((torch.float32, 1e-6), (torch.float16, 1e-3)):  # a sine's last bit may differ
        written = encoding(points, dtype)
        assert written.dtype == dtype
        assert torch.allclose(written.float(), general.detach().to(dtype).float(), rtol=0, atol=last_bit)
    (gradient,) = torch.autograd.grad(general.sum(), differentiable)
    assert torch.isfinite(gradient).all() and gradient.abs().sum() > 0


def test_layer_shapes_with_skip_match_the_reference_mlp() -> None:
    field = TargetField(num_hidden_layers=8, hidden_width=128, skip_layer=4, num_octaves=10)
    shapes = field.layer_shapes()
    assert shapes[0] == (128, 63)
    assert shapes[5] == (128, 128 + 63)  # the layer after the 5th hidden layer sees the input again
    assert shapes[-1] == (4, 128) and len(shapes) == 9
    no_skip = TargetField(num_hidden_layers=4, hidden_width=128, skip_layer=None, num_octaves=10)
    assert all(in_features in (63, 128) for _, in_features in no_skip.layer_shapes())


def test_field_has_no_view_direction_input() -> None:
    parameters = inspect.signature(TargetField.forward).parameters
    assert list(parameters) == ["self", "positions", "weights", "density_noise_std"]


def test_colour_and_density_at_a_point_do_not_depend_on_the_ray_direction(small_model: HyperNeRFGANModel) -> None:
    small_model.eval()
    weights = small_model.generator.object_weights(torch.randn(1, small_model.config.latent_dim))
    point = torch.tensor([0.1, -0.2, 0.05])
    directions = torch.nn.functional.normalize(torch.randn(6, 3), dim=-1)
    distance = 4.0
    bundle = RayBundle(
        origins=point - directions * distance,
        directions=directions,
        pixel_area=torch.ones(6, 1),
        camera_indices=torch.zeros(6, 1, dtype=torch.long),
        nears=torch.full((6, 1), distance - 0.5),
        fars=torch.full((6, 1), distance + 0.5),
    )
    samples = small_model.sampler_coarse(bundle, num_samples=3)  # the middle sample is exactly `point`
    outputs = small_model.query_field(samples, small_model.generator, weights, density_noise_std=0.0)
    rgb, density = outputs[FieldHeadNames.RGB][:, 1], outputs[FieldHeadNames.DENSITY][:, 1]
    assert torch.allclose(samples.frustums.get_positions()[:, 1], point.expand(6, 3), atol=1e-5)
    assert torch.allclose(rgb, rgb[:1].expand_as(rgb), atol=1e-5)
    assert torch.allclose(density, density[:1].expand_as(density), atol=1e-4)


def test_objects_in_one_batch_equal_the_same_objects_alone(small_model: HyperNeRFGANModel) -> None:
    generator = small_model.generator.eval()
    latents = torch.randn(3, small_model.config.latent_dim)
    points = torch.rand(3, 50, 3) * 2 - 1
    together = generator.field(points, generator.object_weights(latents))
    for index in range(3):
        alone = generator.field(points[index : index + 1], generator.object_weights(latents[index : index + 1]))
        for name in (FieldHeadNames.RGB, FieldHeadNames.DENSITY):
            assert torch.allclose(together[name][index], alone[name][0], atol=1e-5)


def test_layers_of_one_shape_are_modulated_together_as_each_alone() -> None:
    """The paper's MLP (8 x 128, skip after 4): the six 128 x 128 layers in one stacked call, the same weights
    (transposed, times the ReLU gain on the hidden layers) and gradients as one call per layer."""
    torch.manual_seed(0)
    field = TargetField(num_hidden_layers=8, hidden_width=128, skip_layer=4, num_octaves=10)
    assert field.layer_groups() == [[0], [1, 2, 3, 4, 6, 7], [5], [8]]
    factors = [
        FMMFactors(left=torch.randn(2, out, 10, requires_grad=True), right=torch.randn(2, 10, inp, requires_grad=True))
        for out, inp in field.layer_shapes()
    ]
    together = field.object_weights(factors).layers
    alone = [
        (modulated_weight(layer.weight, f) * gain).transpose(1, 2)
        for layer, f, gain in zip(field.layers, factors, field.layer_gains())
    ]
    assert field.layer_gains()[-1] == 1.0 and field.layer_gains()[0] == HIDDEN_ACTIVATION_GAIN
    for joint, single in zip(together, alone):
        assert joint.shape == single.shape and torch.allclose(joint, single, atol=1e-6)
    cotangents = [torch.randn_like(weight) for weight in alone]
    inputs = [field.layers[1].weight, factors[1].left, factors[6].right]
    joint_gradients = torch.autograd.grad(together, inputs, cotangents)
    single_gradients = torch.autograd.grad(alone, inputs, cotangents)
    for joint, single in zip(joint_gradients, single_gradients):
        assert torch.allclose(joint, single, atol=1e-5)


def test_a_hidden_layer_shaped_like_the_output_layer_keeps_its_own_gain() -> None:
    """Hidden width 4 makes the hidden layers 4 x 4 like the output layer: grouped by shape and gain, the output
    layer stays apart and its weights unscaled."""
    field = TargetField(num_hidden_layers=3, hidden_width=4, skip_layer=None, num_octaves=1)
    assert field.layer_shapes()[1:] == [(4, 4)] * 3
    assert field.layer_groups() == [[0], [1, 2], [3]]
    factors = [FMMFactors(left=torch.randn(2, o, 2), right=torch.randn(2, 2, i)) for o, i in field.layer_shapes()]
    output_layer = field.object_weights(factors).layers[-1]
    assert torch.allclose(output_layer, modulated_weight(field.layers[-1].weight, factors[-1]).transpose(1, 2))


def test_the_layer_after_the_skip_is_the_concatenated_layer_and_saves_no_concatenation() -> None:
    """Split into the encoding's rows and the hidden rows, the layer after the skip computes what the reference's
    concatenated input does (values and gradients to float rounding), and nothing it saves for backward is as wide
    as that input: the field saves no concatenation of the encoding and the hidden activations."""
    torch.manual_seed(0)
    encoded, hidden = torch.randn(2, 50, 27), torch.randn(2, 50, 16, requires_grad=True)
    weights, bias = torch.randn(2, 27 + 16, 16, requires_grad=True), torch.randn(16, requires_grad=True)
    split = skip_affine(encoded, hidden, weights, bias)
    concatenated = torch.baddbmm(bias, torch.cat([encoded, hidden], dim=-1), weights)
    assert torch.allclose(split, concatenated, atol=1e-5)
    cotangent = torch.randn_like(split)
    for a, b in zip(
        torch.autograd.grad(split, [hidden, weights, bias], cotangent),
        torch.autograd.grad(concatenated, [hidden, weights, bias], cotangent),
    ):
        assert torch.allclose(a, b, atol=1e-4)

    field = TargetField(num_hidden_layers=3, hidden_width=16, skip_layer=1, num_octaves=4)
    assert field.layer_shapes()[2] == (16, 27 + 16)
    factors = [
        FMMFactors(left=torch.randn(2, o, 3, requires_grad=True), right=torch.randn(2, 3, i))
        for o, i in field.layer_shapes()
    ]
    saved_widths: List[int] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.dim() == 3 and tensor.shape[1] == 50:  # the points' tensors, not the weights
            saved_widths.append(tensor.shape[-1])
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        field(torch.rand(2, 50, 3) * 2 - 1, field.object_weights(factors))
    assert 16 in saved_widths and 27 + 16 not in saved_widths


def test_fp16_autocast_runs_the_layers_in_fp16_and_casts_each_group_once() -> None:
    """Under autocast the field casts its inputs up front: a cast per group of layers, not per layer, the encoding
    written in fp16, and the colours of a fp32 run to fp16 rounding."""
    torch.manual_seed(0)
    field = TargetField(num_hidden_layers=8, hidden_width=32, skip_layer=4, num_octaves=4, object_radius=1.0)
    factors = [FMMFactors(left=torch.randn(2, o, 3), right=torch.randn(2, 3, i)) for o, i in field.layer_shapes()]
    weights = field.object_weights(factors)
    positions = torch.rand(2, 64, 3) * 2 - 1
    reference = field(positions, weights)[FieldHeadNames.RGB]
    with torch.autocast("cpu", dtype=torch.float16), OperationNames() as operations:
        half = field(positions, weights)[FieldHeadNames.RGB]
    groups, layers = len(field.layer_groups()), len(field.layers)
    assert operations.counts["aten._to_copy.default"] == groups + 1, "a cast per group and the biases'"
    assert operations.counts["aten.sin.out"] == 1, "the encoding is written in fp16, not made in fp32 and cast"
    assert operations.counts["aten.baddbmm.default"] == layers
    assert (half.float() - reference).abs().max() < 1e-2


def test_density_is_zero_outside_the_object_sphere_whatever_the_weights() -> None:
    torch.manual_seed(0)
    bounded = TargetField(num_hidden_layers=3, hidden_width=32, skip_layer=None, num_octaves=4, object_radius=1.0)
    unbounded = TargetField(num_hidden_layers=3, hidden_width=32, skip_layer=None, num_octaves=4)
    unbounded.load_state_dict(bounded.state_dict())
    # Weights that put density everywhere: a large positive bias on the density output.
    bounded.layers[-1].bias.data[-1] = unbounded.layers[-1].bias.data[-1] = 50.0
    factors = [
        FMMFactors(left=torch.randn(2, o, 3), right=torch.randn(2, 3, i)) for o, i in bounded.layer_shapes()
    ]
    weights = bounded.object_weights(factors)
    points = (torch.rand(2, 4000, 3) * 2 - 1) * 2.5  # the cube [-2.5, 2.5]^3: inside and outside the sphere
    inside = points.norm(dim=-1, keepdim=True) <= 1.0
    density = bounded(points, weights, density_noise_std=1.0)[FieldHeadNames.DENSITY]
    reference = unbounded(points, weights)[FieldHeadNames.DENSITY]
    assert (density[~inside] == 0).all() and (reference[~inside] > 0).all(), "outside: zero only with the bound"
    assert (density[inside] > 0).all()
    within = bounded(points, weights)[FieldHeadNames.DENSITY]
    assert torch.equal(within[inside], reference[inside]), "inside, the bound changes nothing"


def test_a_softplus_density_is_never_flat_inside_the_sphere_and_zero_outside() -> None:
    torch.manual_seed(0)
    relu = TargetField(num_hidden_layers=2, hidden_width=16, skip_layer=None, num_octaves=3, object_radius=1.0)
    softplus = TargetField(
        num_hidden_layers=2, hidden_width=16, skip_layer=None, num_octaves=3, object_radius=1.0,
        density_softplus_shift=1.0,
    )
    softplus.load_state_dict(relu.state_dict())
    # Weights that leave no density: a large negative bias on the density output, as in a generator gone empty.
    relu.layers[-1].bias.data[-1] = softplus.layers[-1].bias.data[-1] = -20.0
    factors = [FMMFactors(left=torch.randn(2, o, 3), right=torch.randn(2, 3, i)) for o, i in relu.layer_shapes()]
    points = (torch.rand(2, 500, 3) * 2 - 1) * 1.5
    inside = points.norm(dim=-1, keepdim=True) <= 1.0
    empty = relu(points, relu.object_weights(factors))[FieldHeadNames.DENSITY]
    faint = softplus(points, softplus.object_weights(factors))[FieldHeadNames.DENSITY]
    assert (empty == 0).all() and (faint[~inside] == 0).all(), "the bound holds for both"
    assert (faint[inside] > 0).all() and faint.max() < 1e-6, "a faint density inside, never exactly none"
    raw = faint.new_tensor(0.0)
    assert torch.nn.functional.softplus(raw - 1.0).item() == pytest.approx(0.3133, abs=1e-4), "EG3D's shift"
    empty.sum().backward()
    faint.sum().backward()
    assert relu.layers[-1].bias.grad[-1] == 0, "a ReLU gives an empty field no gradient towards density"
    assert softplus.layers[-1].bias.grad[-1] > 0, "a softplus does"


def test_the_points_that_may_have_density_are_those_inside_the_bound() -> None:
    field = TargetField(num_hidden_layers=2, hidden_width=8, skip_layer=None, num_octaves=2, object_radius=1.0)
    directions = torch.nn.functional.normalize(torch.randn(5, 3), dim=-1)
    points = directions[:, None, :] * torch.tensor([0.5, 1.0, 1.0 + 1e-6, 1.01, 2.0])[None, :, None]
    assert field.may_have_density(points).tolist() == [[True, True, True, False, False]] * 5  # the bound, or rounding
    unbounded = TargetField(num_hidden_layers=2, hidden_width=8, skip_layer=None, num_octaves=2)
    assert unbounded.may_have_density(points).all()


def test_evaluation_renders_query_the_mlp_inside_the_bound_only_and_render_the_same(preset) -> None:
    prior = preset.camera_prior
    cameras = prior.cameras(prior.sample_poses(2, torch.Generator().manual_seed(0)), resolution=32)
    latent = torch.randn(1, 128)
    renders, queried = {}, {}
    for inside_only in (False, True):
        torch.manual_seed(0)
        model = make_model(preset, eval_query_inside_bound_only=inside_only).eval()
        model.generator_ema.field.layers[-1].bias.data[-1] = 5.0  # density wherever the bound allows it
        renders[inside_only] = [model.render_latent(latent, cameras[i : i + 1]) for i in range(2)]
        queried[inside_only] = points_queried(
            model.generator_ema.field, lambda: model.render_latent(latent, cameras[:1])
        )
    for full, inside in zip(renders[False], renders[True]):
        assert (full["accumulation"] > 0.5).float().mean() > 0.2, "the object sphere's image is drawn"
        for name in ("rgb", "accumulation", "depth"):
            assert torch.allclose(full[name], inside[name], atol=1e-6), name
    assert queried[False] == 32 * 32 * 16
    assert 0.2 < queried[True] / queried[False] < 0.3, "the sphere holds about a quarter of a view's samples"


def test_a_view_with_nothing_inside_the_bound_renders_the_background(preset) -> None:
    model = make_model(preset).eval()
    prior = preset.camera_prior
    away = prior.cameras(prior.orbit_poses(1), resolution=8)
    away.camera_to_worlds[:, :, :3] = -away.camera_to_worlds[:, :, :3]  # looking away from the object
    outputs = model.render_latent(torch.randn(1, 128), away)
    assert torch.equal(outputs["rgb"], torch.ones_like(outputs["rgb"])) and (outputs["accumulation"] == 0).all()


def test_the_model_bounds_density_to_the_camera_priors_object_sphere(preset) -> None:
    model = make_model(preset)
    assert model.generator.field.object_radius == preset.camera_prior.object_radius == 1.0
    assert make_model(preset, bound_density_to_object=False).generator.field.object_radius is None


def test_frequency_annealing_opens_the_octaves_coarse_to_fine() -> None:
    encoding = PositionalEncoding(num_octaves=4)
    x = torch.rand(10, 3) * 2 - 1
    full = encoding(x)
    encoding.set_progress(0.0)
    closed = encoding(x)
    assert torch.equal(closed[:, :3], x) and (closed[:, 3:] == 0).all(), "only the raw point at the start"
    encoding.set_progress(1.5)  # octave 0 open, octave 1 half way, the rest closed
    half = encoding(x).view(10, -1)
    assert torch.allclose(half[:, 3:9], full[:, 3:9]) and torch.allclose(half[:, 9:15], full[:, 9:15] * 0.5)
    assert (half[:, 15:] == 0).all()
    encoding.set_progress(4.0)
    assert torch.equal(encoding(x), full), "fully open is the encoding without annealing"


def test_the_models_annealing_follows_the_images_seen(preset) -> None:
    model = make_model(preset, num_octaves=4, frequency_annealing_images=1000)
    model.set_training_progress(images_seen=250)  # alpha = 4 * 250 / 1000 = 1
    for generator in (model.generator, model.generator_ema):
        assert generator.field.encoding.octave_weights.tolist() == [1.0, 0.0, 0.0, 0.0]
    model.set_training_progress(images_seen=5000)
    assert model.generator_ema.field.encoding.all_octaves_open
    unannealed = make_model(preset, num_octaves=4)
    unannealed.set_training_progress(images_seen=0)
    assert unannealed.generator.field.encoding.all_octaves_open, "0 images of annealing: every octave at once"


def test_the_compiled_field_is_one_graph_with_the_eager_outputs_and_gradients() -> None:
    """The field's forward through torch.compile (`--pipeline.model.compile-target-field`): nothing breaks its graph
    (a break would run the layers between kernels eagerly), and colours, densities and the weights' gradients are the
    eager ones."""
    torch.manual_seed(0)
    field = TargetField(
        num_hidden_layers=3, hidden_width=16, skip_layer=0, num_octaves=4, density_prior_radius=0.6,
        density_prior_slope=10.0, object_radius=0.9,
    )
    shapes, groups = field.layer_shapes(), field.layer_groups()
    weights = ObjectWeights(
        [(torch.randn(len(g), 2, shapes[g[0]][1], shapes[g[0]][0]) / shapes[g[0]][1] ** 0.5).requires_grad_()
         for g in groups],
        groups,
    )
    positions = torch.rand(2, 200, 3) * 2 - 1

    def outputs_and_gradients(forward: Any) -> List[torch.Tensor]:
        outputs = forward(field, positions, weights, 0.0)
        loss = outputs[FieldHeadNames.RGB].square().sum() + outputs[FieldHeadNames.DENSITY].sum()
        gradients = torch.autograd.grad(loss, weights.groups)
        return [outputs[FieldHeadNames.RGB], outputs[FieldHeadNames.DENSITY], *gradients]

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    fused = outputs_and_gradients(compiled(TargetField.forward))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    assert not torch._dynamo.utils.counters["graph_break"]
    for eager, fused_value in zip(outputs_and_gradients(TargetField.forward), fused):
        assert (eager - fused_value).abs().max() <= 1e-5 * eager.abs().max()

    def noisy_density_and_gradients(recomputed: bool) -> List[torch.Tensor]:
        torch.manual_seed(5)
        arguments = (field, positions, weights, 1.0)
        if recomputed:
            outputs = torch.utils.checkpoint.checkpoint(compiled(TargetField.forward), *arguments, use_reentrant=False)
        else:
            outputs = compiled(TargetField.forward)(*arguments)
        density = outputs[FieldHeadNames.DENSITY]
        return [density, *torch.autograd.grad(density.square().sum(), weights.groups)]

    noisy = noisy_density_and_gradients(recomputed=False)  # compiled code draws its own noise
    assert (noisy[0] != fused[1]).any() and torch.isfinite(noisy[0]).all()
    for kept, recomputed in zip(noisy, noisy_density_and_gradients(recomputed=True)):
        assert torch.equal(kept, recomputed), "recomputed activations (recompute-ray-chunk) see the same noise"
