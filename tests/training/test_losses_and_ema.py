"""The adversarial losses, the gradient penalty (also under a loss scale) and the EMA schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hypernerfgan_ns.training.ema import EMAConfig, update_ema
from hypernerfgan_ns.training.losses import discriminator_loss, generator_loss, gradient_penalty


def test_logistic_losses_match_their_definitions() -> None:
    real, fake = torch.tensor([[2.0], [0.0]]), torch.tensor([[-1.0], [3.0]])
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    expected_d = (softplus(-1.0) + softplus(3.0)) / 2 + (softplus(-2.0) + softplus(0.0)) / 2
    assert math.isclose(float(discriminator_loss(real, fake)), expected_d, rel_tol=1e-6)
    assert math.isclose(float(generator_loss(fake)), (softplus(1.0) + softplus(-3.0)) / 2, rel_tol=1e-6)


def test_relativistic_losses_compare_each_fake_with_its_paired_real() -> None:
    real, fake = torch.tensor([[2.0], [0.0]]), torch.tensor([[-1.0], [3.0]])
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    expected_d = (softplus(-1.0 - 2.0) + softplus(3.0 - 0.0)) / 2
    assert math.isclose(float(discriminator_loss(real, fake, "relativistic")), expected_d, rel_tol=1e-6)
    expected_g = (softplus(2.0 + 1.0) + softplus(0.0 - 3.0)) / 2
    assert math.isclose(float(generator_loss(fake, real, "relativistic")), expected_g, rel_tol=1e-6)
    shifted = discriminator_loss(real + 5.0, fake + 5.0, "relativistic")
    assert math.isclose(float(shifted), expected_d, rel_tol=1e-6), "only the difference within a pair counts"
    with pytest.raises(ValueError, match="pass real_logits"):
        generator_loss(fake, objective="relativistic")


def test_gradient_penalty_is_the_squared_input_gradient_norm_and_ignores_the_loss_scale() -> None:
    weights = torch.randn(1, 3, 4, 4)
    images = torch.randn(2, 3, 4, 4, requires_grad=True)
    logits = (images * weights).sum(dim=[1, 2, 3])[:, None] + images.square().sum(dim=[1, 2, 3])[:, None]
    expected = (weights + 2 * images.detach()).square().sum(dim=[1, 2, 3])
    assert torch.allclose(gradient_penalty(logits, images), expected, atol=1e-5)
    scaled = gradient_penalty(logits, images, loss_scale=65536.0)
    assert torch.allclose(scaled, expected, rtol=1e-5)
    scaled.sum().backward()  # differentiable: it is minimised
    assert images.grad is not None


def test_ema_half_life_is_counted_in_images_with_a_rampup() -> None:
    config = EMAConfig(half_life_images=20_000, rampup=0.05)
    assert math.isclose(config.beta(images_seen=10**7, batch_images=20_000), 0.5)
    assert math.isclose(config.beta(images_seen=10**7, batch_images=4), 0.5 ** (4 / 20_000))
    assert math.isclose(config.beta(images_seen=800, batch_images=4), 0.5 ** (4 / 40))  # ramp-up: 5% of 800
    assert EMAConfig(rampup=None).beta(images_seen=4, batch_images=4) == 0.5 ** (4 / 20_000)


def test_update_ema_averages_parameters_and_copies_buffers() -> None:
    module, ema = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    with torch.no_grad():
        module.weight.fill_(1.0)
        ema.weight.fill_(0.0)
        module.running_mean.fill_(5.0)
    update_ema(ema, module, beta=0.75)
    assert torch.allclose(ema.weight, torch.full((2,), 0.25))
    assert torch.allclose(ema.running_mean, torch.full((2,), 5.0))
