"""Convolutions with explicit derivatives: the same values and first and second derivatives as PyTorch's own, and
the same GAN training (losses, R1 penalty, parameter gradients) through the whole discriminator."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, Tuple

import pytest
import torch
import torch.nn.functional as F

from hypernerfgan_ns.networks.conv_gradients import WeightGradientSwitch, conv2d, depthwise_filter
from hypernerfgan_ns.pipelines.adversarial_pipeline import AdversarialPipeline
from tests.helpers import micro_config


@pytest.mark.parametrize("kernel_size,stride,padding", [(3, 1, 1), (3, 2, 1), (1, 1, 0), (4, 2, 0)])
def test_conv2d_has_pytorchs_derivatives_to_second_order(kernel_size: int, stride: int, padding: int) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(4, 3, kernel_size, kernel_size, dtype=torch.float64, generator=generator, requires_grad=True)
    bias = torch.randn(4, dtype=torch.float64, generator=generator, requires_grad=True)

    def ours(x, weight, bias):
        return conv2d(x, weight, bias, stride=stride, padding=padding)

    torch.autograd.gradcheck(ours, (x, weight, bias))
    torch.autograd.gradgradcheck(ours, (x, weight, bias))
    torch.testing.assert_close(ours(x, weight, bias), F.conv2d(x, weight, bias, stride=stride, padding=padding))


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 0), (1, 2), (2, 1)])
def test_depthwise_filter_has_pytorchs_derivatives_to_second_order(stride: int, padding: int) -> None:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, generator=generator, requires_grad=True)
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64)
    kernel = (torch.outer(taps, taps) / 64)[None, None]
    torch.autograd.gradcheck(lambda x: depthwise_filter(x, kernel, stride, padding), (x,))
    torch.autograd.gradgradcheck(lambda x: depthwise_filter(x, kernel, stride, padding), (x,))
    native = F.conv2d(F.pad(x, [padding] * 4), kernel.expand(3, 1, 4, 4), stride=stride, groups=3)
    torch.testing.assert_close(depthwise_filter(x, kernel, stride, padding), native)


@pytest.mark.parametrize("create_graph", [False, True])
def test_weight_gradients_are_skipped_only_inside_the_block(create_graph: bool) -> None:
    switch = WeightGradientSwitch()
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    weight, bias = torch.randn(4, 3, 3, 3, requires_grad=True), torch.randn(4, requires_grad=True)
    y = conv2d(x, weight, bias, padding=1, weight_gradients=switch)
    with switch.skipped():
        grad_x, grad_weight, grad_bias = torch.autograd.grad(
            y.square().sum(), [x, weight, bias], create_graph=create_graph, allow_unused=True
        )
    assert grad_weight is None and grad_bias is None, "skipped inside the block"
    expected_x, expected_weight = torch.autograd.grad(F.conv2d(x, weight, bias, padding=1).square().sum(), [x, weight])
    torch.testing.assert_close(grad_x, expected_x)
    assert switch.enabled
    loss = conv2d(x, weight, bias, padding=1, weight_gradients=switch).square().sum()
    _, again = torch.autograd.grad(loss, [x, weight])
    torch.testing.assert_close(again, expected_weight)


def discriminator_step(
    pipeline: AdversarialPipeline, step: int
) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """One D phase and one G phase from a fixed seed: the losses and every parameter's gradient."""
    torch.manual_seed(step)
    pipeline.zero_grad()
    losses, metrics = pipeline.get_discriminator_loss_dict(step)
    sum(losses.values()).backward()
    torch.manual_seed(100 + step)
    _, generator_losses, _ = pipeline.get_train_loss_dict(step)
    sum(generator_losses.values()).backward()
    values = {**losses, **generator_losses, **{k: v for k, v in metrics.items() if k == "r1_penalty"}}
    gradients = {name: p.grad.clone() for name, p in pipeline.named_parameters() if p.grad is not None}
    return values, gradients


def test_training_steps_are_the_same_with_pytorchs_double_backward(tmp_path: Path) -> None:
    """A plain and a lazy-R1 iteration: the same losses, R1 penalty and parameter gradients, in fp32 on the CPU."""
    config = micro_config(tmp_path)
    results = {}
    for fast in (True, False):
        discriminator = dataclasses.replace(config.pipeline.discriminator, fast_double_backward=fast)
        torch.manual_seed(0)
        pipeline = dataclasses.replace(config.pipeline, discriminator=discriminator).setup(device="cpu")
        assert config.pipeline.loss.r1_interval == 2  # step 0 applies R1, step 1 does not
        results[fast] = [discriminator_step(pipeline, step) for step in (0, 1)]
    pairs = zip(results[True], results[False])
    for step, ((fast_values, fast_grads), (native_values, native_grads)) in enumerate(pairs):
        assert ("r1" in fast_values) == (step == 0)
        assert fast_values.keys() == native_values.keys() and fast_grads.keys() == native_grads.keys()
        for name, value in native_values.items():
            torch.testing.assert_close(fast_values[name], value, rtol=1e-5, atol=1e-6, msg=f"step {step}: {name}")
        for name, gradient in native_grads.items():
            torch.testing.assert_close(fast_grads[name], gradient, rtol=1e-4, atol=1e-6, msg=f"step {step}: {name}")
