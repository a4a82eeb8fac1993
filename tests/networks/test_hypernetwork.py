"""The hypernetwork: FMM sizes, truncation, gradients to every part of the generator."""

from __future__ import annotations

import torch

from hypernerfgan_ns.field_components.fmm import FMMFactors, FMMHead, fmm_factors, modulated_weight
from hypernerfgan_ns.networks.generator import Generator
from hypernerfgan_ns.networks.hypernetwork import MappingNetwork


def small_generator(**overrides) -> Generator:
    options = dict(
        num_hidden_layers=3,
        hidden_width=32,
        skip_layer=1,
        num_octaves=4,
        latent_dim=16,
        w_dim=16,
        mapping_layers=2,
        mapping_lr_multiplier=0.01,
        w_avg_beta=0.995,
        fmm_rank=4,
    )
    options.update(overrides)
    return Generator(**options)


def test_fmm_head_generates_rank_times_in_plus_out_numbers_per_layer() -> None:
    head = FMMHead(w_dim=128, in_features=128, out_features=128, rank=10)
    factors = head(torch.randn(3, 128))
    generated = factors.left[0].numel() + factors.right[0].numel()
    assert generated == head.num_generated() == 10 * (128 + 128) == 2560
    assert 128 * 128 / generated == 6.4
    assert factors.left.shape == (3, 128, 10) and factors.right.shape == (3, 10, 128)


def test_all_heads_in_one_matmul_give_each_head_its_own_layout() -> None:
    """The heads' fused matmul splits into each head's [A row-major, then B row-major] (the reference's layout)."""
    heads = small_generator().hypernetwork.heads
    for head in heads:
        head.affine.bias.data.normal_()
    w = torch.randn(3, 16)
    for head, factors in zip(heads, fmm_factors(heads, w)):
        styles = head.affine(w)
        num_left = head.out_features * head.rank
        torch.testing.assert_close(factors.left, styles[:, :num_left].reshape(3, head.out_features, head.rank))
        torch.testing.assert_close(factors.right, styles[:, num_left:].reshape(3, head.rank, head.in_features))


def test_modulated_weight_rows_have_unit_norm_and_follow_the_fmm_formula() -> None:
    base = torch.randn(5, 7)
    factors = FMMFactors(left=torch.randn(2, 5, 3), right=torch.randn(2, 3, 7))
    weight = modulated_weight(base, factors)
    assert torch.allclose(weight.norm(dim=-1), torch.ones(2, 5), atol=1e-5)
    expected = base * (1 + factors.left[1] @ factors.right[1] / 3**0.5)
    expected = expected / expected.norm(dim=-1, keepdim=True)
    assert torch.allclose(weight[1], expected, atol=1e-6)


def test_mapping_normalises_z_so_scaled_latents_map_to_the_same_w() -> None:
    mapping = MappingNetwork(latent_dim=8, w_dim=8, num_layers=2, lr_multiplier=0.01, w_avg_beta=0.9).eval()
    z = torch.randn(4, 8)
    assert torch.allclose(mapping(z), mapping(3.0 * z), atol=1e-5)


def test_truncation_zero_gives_the_same_object_for_any_latent() -> None:
    generator = small_generator()
    generator.train()
    generator.object_weights(torch.randn(64, 16))  # training passes update the running mean of w
    generator.eval()
    assert generator.hypernetwork.mapping.w_avg.abs().sum() > 0
    weights = generator.object_weights(torch.randn(5, 16), truncation_psi=0.0)
    for layer in weights.layers:
        assert torch.allclose(layer, layer[:1].expand_as(layer), atol=1e-6)
    untruncated = generator.object_weights(torch.randn(5, 16))
    assert not torch.allclose(untruncated.layers[0][0], untruncated.layers[0][1])


def test_gradient_reaches_mapping_heads_shared_weights_and_biases() -> None:
    generator = small_generator()
    weights = generator.object_weights(torch.randn(2, 16))
    outputs = generator.field(torch.rand(2, 10, 3) * 2 - 1, weights)
    (sum(value.sum() for value in outputs.values())).backward()
    named = dict(generator.named_parameters())
    prefixes = ("hypernetwork.mapping.layers.0", "hypernetwork.heads.0", "field.layers.0.weight", "field.layers.3.bias")
    for prefix in prefixes:
        grads = [p.grad for name, p in named.items() if name.startswith(prefix)]
        assert grads and all(g is not None and g.abs().sum() > 0 for g in grads), prefix
