"""The discriminator: StyleGAN2's channel rule, residual blocks down to 4x4, minibatch std."""

from __future__ import annotations

import dataclasses
from typing import Tuple

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from hypernerfgan_ns.networks.conv_gradients import memory_format_of
from hypernerfgan_ns.networks.discriminator import Discriminator, DiscriminatorConfig, EqualizedConv2d, MinibatchStdDev
from tests.helpers import OperationNames


def test_original_configuration_has_512_channels_at_64x64() -> None:
    discriminator = Discriminator(DiscriminatorConfig(), resolution=64)
    assert discriminator.from_rgb.weight.shape[0] == 512
    assert len(discriminator.blocks) == 4  # 64 -> 32 -> 16 -> 8 -> 4
    assert all(block.conv1.weight.shape[0] == 512 for block in discriminator.blocks)


def test_small_configuration_scores_a_batch_of_patches() -> None:
    discriminator = Discriminator(DiscriminatorConfig(channel_base=256, channel_max=32), resolution=16)
    logits = discriminator(torch.randn(8, 3, 16, 16))
    assert logits.shape == (8, 1) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in discriminator.parameters())


def test_minibatch_std_appends_the_group_spread() -> None:
    layer = MinibatchStdDev(group_size=4, num_channels=1)
    same = torch.ones(4, 2, 3, 3)
    assert torch.allclose(layer(same)[:, -1], torch.full((4, 3, 3), 1e-4), atol=1e-4)
    spread = torch.cat([torch.zeros(2, 2, 3, 3), torch.full((2, 2, 3, 3), 2.0)])
    assert torch.allclose(layer(spread)[:, -1], torch.ones(4, 3, 3), atol=1e-4)
    with pytest.raises(ValueError, match="divide"):
        layer(torch.ones(6, 2, 3, 3))


@pytest.mark.parametrize("batch", [4, 2, 8])
def test_one_call_on_fakes_then_reals_scores_each_as_its_own_call(batch: int) -> None:
    """The D phase's joint call: the same logits and the same R1 gradients as one call per batch, also when the
    batch is smaller than a minibatch-std group (2) or holds several groups (8)."""
    torch.manual_seed(0)
    discriminator = Discriminator(DiscriminatorConfig(channel_base=256, channel_max=32), resolution=16)
    fakes = torch.randn(batch, 3, 16, 16)
    reals = torch.randn(batch, 3, 16, 16, requires_grad=True)

    fake_logits, real_logits = discriminator(torch.cat([fakes, reals]), num_batches=2).chunk(2)
    (joint_r1,) = torch.autograd.grad(real_logits.sum(), reals)
    assert torch.allclose(fake_logits, discriminator(fakes), atol=1e-5)
    own_real_logits = discriminator(reals)
    assert torch.allclose(real_logits, own_real_logits, atol=1e-5)
    (own_r1,) = torch.autograd.grad(own_real_logits.sum(), reals)
    assert torch.allclose(joint_r1, own_r1, atol=1e-6)

    # Not the same as one batch of 2 x batch: there a group takes fakes and reals together.
    assert not torch.allclose(discriminator(torch.cat([fakes, reals]))[batch:], own_real_logits, atol=1e-5)
    with pytest.raises(ValueError, match="2 equal part"):
        discriminator(torch.randn(5, 3, 16, 16), num_batches=2)


def test_non_power_of_two_patches_are_refused_with_the_sides_that_fit() -> None:
    with pytest.raises(ValueError, match="power of two >= 4, got 48 .*try 32 or 64"):
        Discriminator(DiscriminatorConfig(), resolution=48)
    config = DiscriminatorConfig()
    assert config.unfit_reason(64) is None and config.unfit_reason(4) is None
    assert config.unfit_reason(2).endswith("try 4"), "below the epilogue's 4x4: the smallest side that fits"


@pytest.mark.parametrize("taps", [(1, 3, 3, 1), (1, 2, 1)])
@pytest.mark.parametrize("kernel_size", [1, 3])
def test_downsampling_convolutions_equal_blur_then_strided_conv(kernel_size: int, taps: Tuple[int, ...]) -> None:
    """The 1x1 skip lets its filter subsample, every activation runs in place and the clamp is a hardtanh: the same
    values, gradients and second derivatives (R1's) as the textbook order, StyleGAN2-ADA's `conv2d_resample` (the
    image padded by the convolution's padding plus the filter's, a full-size blur, a strided conv without padding),
    then an out-of-place leaky ReLU and a clamp. An even filter pads alike on both sides, which its convolution
    does without a padded copy."""
    torch.manual_seed(0)
    conv = EqualizedConv2d(
        8, 16, kernel_size, activation="lrelu", downsample=True, conv_clamp=1.0, downsample_filter=taps
    )
    conv.bias.data.normal_()
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    size = len(taps)

    def textbook(inputs: torch.Tensor) -> torch.Tensor:
        before, after = kernel_size // 2 + (size - 1) // 2, kernel_size // 2 + (size - 2) // 2
        padded = F.pad(inputs, [before, after, before, after])
        blurred = F.conv2d(padded, conv.lowpass.expand(8, 1, size, size), groups=8)
        out = F.conv2d(blurred, conv.weight * conv.weight_gain, conv.bias * conv.bias_gain, stride=2)
        return F.leaky_relu(out, 0.2).clamp(-1.0, 1.0)

    def value_gradient_and_r1_gradient(layer) -> tuple:
        out = layer(x)
        assert (out.abs() == 1.0).any(), "the clamp must be active somewhere for this test to mean anything"
        (grad,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
        r1_grads = torch.autograd.grad(grad.square().sum(), [x, conv.weight, conv.bias])
        return out, grad, *r1_grads

    with OperationNames() as operations:
        ours = value_gradient_and_r1_gradient(conv)
    padded_copies = operations.counts["aten.constant_pad_nd.default"]  # forward pads, backward crops
    assert (padded_copies == 0) == (size % 2 == 0), "an even filter pads in its convolution, an odd one copies"
    for actual, expected in zip(ours, value_gradient_and_r1_gradient(textbook)):
        torch.testing.assert_close(actual, expected)


@pytest.mark.parametrize("kernel_size", [1, 3])
def test_a_downsampling_convolution_treats_both_borders_alike(kernel_size: int) -> None:
    """With a mirror-symmetric kernel, mirroring the input mirrors the output, borders included."""
    torch.manual_seed(0)
    conv = EqualizedConv2d(4, 4, kernel_size, downsample=True)
    conv.weight.data = conv.weight.data + conv.weight.data.flip(-1)
    x = torch.randn(1, 4, 16, 16)
    torch.testing.assert_close(conv(x.flip(-1)), conv(x).flip(-1))


def test_the_main_paths_convolutions_are_clamped_and_the_skips_are_not() -> None:
    """As StyleGAN2-ADA: the clamp keeps fp16 activations finite where they can grow, on the main path."""
    config = DiscriminatorConfig(channel_base=256, channel_max=32, conv_clamp=256.0)
    discriminator = Discriminator(config, resolution=16)
    for block in discriminator.blocks:
        assert block.conv0.conv_clamp == block.conv1.conv_clamp == 256.0 and block.skip.conv_clamp is None


def growing_discriminator() -> Discriminator:
    """A 16-pixel discriminator that also judges the 8- and 4-pixel patches progressive growing starts with."""
    torch.manual_seed(0)
    return Discriminator(DiscriminatorConfig(channel_base=256, channel_max=32), resolution=16, smallest_resolution=4)


def test_a_growing_discriminator_judges_full_patches_as_one_without_growing() -> None:
    growing = growing_discriminator()
    assert sorted(growing.from_rgb_smaller) == ["4", "8"]
    plain = Discriminator(DiscriminatorConfig(channel_base=256, channel_max=32), resolution=16)
    missing, unexpected = plain.load_state_dict(growing.state_dict(), strict=False)
    assert not missing and all(key.startswith("from_rgb_smaller.") for key in unexpected)
    patches = torch.randn(4, 3, 16, 16)
    torch.testing.assert_close(growing(patches), plain(patches))


@pytest.mark.parametrize("side", [8, 16])
def test_a_new_resolution_fades_in_from_the_previous_stages_path(side: int) -> None:
    """fade 0: the patch box-filtered to half its side, as the previous stage judged it; fade 1: the new block's
    path alone; between: their linear mix before the next block (not a mix of the logits)."""
    discriminator = growing_discriminator()
    patches = torch.randn(4, 3, side, side)
    torch.testing.assert_close(discriminator(patches, fade=0.0), discriminator(F.avg_pool2d(patches, 2)))
    assert not torch.allclose(discriminator(patches, fade=1.0), discriminator(patches, fade=0.0))
    halfway = discriminator(patches, fade=0.5)
    assert torch.isfinite(halfway).all() and halfway.shape == (4, 1)


def test_the_smallest_patches_skip_the_high_resolution_blocks() -> None:
    discriminator = growing_discriminator()
    ran = []
    for index, block in enumerate(discriminator.blocks):
        block.register_forward_hook(lambda module, inputs, output, index=index: ran.append(index))
    discriminator(torch.randn(4, 3, 8, 8))
    assert ran == [1]  # 8 -> 4; block 0 (16 -> 8) is skipped
    ran.clear()
    discriminator(torch.randn(4, 3, 4, 4))
    assert ran == []  # straight to the 4x4 epilogue
    with pytest.raises(ValueError, match="not 2"):
        discriminator(torch.randn(4, 3, 2, 2))


def test_r1_differentiates_through_a_fading_block() -> None:
    discriminator = growing_discriminator()
    reals = torch.randn(4, 3, 8, 8, requires_grad=True)
    with discriminator.weight_gradients.skipped():
        (gradient,) = torch.autograd.grad(discriminator(reals, fade=0.5).sum(), reals, create_graph=True)
    gradient.square().sum().backward()
    for name in ("from_rgb_smaller.8.weight", "from_rgb_smaller.4.weight", "blocks.1.conv0.weight"):
        grad = dict(discriminator.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def channels_last_pair(resolution: int = 16) -> tuple:
    """The same discriminator in NCHW and channels-last, with the same weights."""
    torch.manual_seed(0)
    config = DiscriminatorConfig(channel_base=256, channel_max=32)
    nchw = Discriminator(config, resolution=resolution)
    nhwc = Discriminator(dataclasses.replace(config, channels_last=True), resolution=resolution)
    nhwc.load_state_dict(nchw.state_dict())  # an NCHW checkpoint loads into the channels-last layout
    return nchw, nhwc


def test_a_channels_last_discriminator_gives_the_same_logits_and_r1_gradients() -> None:
    nchw, nhwc = channels_last_pair()
    assert nhwc.blocks[0].conv0.weight.is_contiguous(memory_format=torch.channels_last)
    assert not nhwc.blocks[0].conv0.weight.is_contiguous(), "the weights themselves are stored channels-last"
    fakes = torch.randn(4, 3, 16, 16)
    outcomes = []
    for discriminator in (nchw, nhwc):
        reals = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1)).requires_grad_()
        logits = discriminator(torch.cat([fakes, reals]), num_batches=2)
        fake_logits, real_logits = logits.chunk(2)
        with discriminator.weight_gradients.skipped():  # R1 as the pipeline runs it: input gradients, then the penalty
            (gradient,) = torch.autograd.grad(real_logits.sum(), reals, create_graph=True)
        (gradient.square().sum() + fake_logits.sum()).backward()
        outcomes.append((logits.detach(), gradient.detach(), {n: p.grad for n, p in discriminator.named_parameters()}))
    (logits, gradient, grads), (logits_cl, gradient_cl, grads_cl) = outcomes
    assert torch.allclose(logits, logits_cl, atol=1e-5)
    assert torch.allclose(gradient, gradient_cl, atol=1e-6)
    for name, grad in grads.items():
        assert torch.allclose(grad, grads_cl[name], rtol=1e-4, atol=1e-6), name


def test_a_channels_last_discriminator_runs_its_blocks_on_channels_last_maps() -> None:
    """Every convolution of the blocks, forward and in R1's two backward passes, gives channels-last maps: no map is
    transposed around it. The 4x4 epilogue, in fp32, stays NCHW, and so does the gradient it sends into the last
    block (8x8 maps: about nothing to transpose); the blocks above it are checked."""
    _, discriminator = channels_last_pair(resolution=32)
    layouts = []

    class ConvolutionLayouts(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            out = func(*args, **(kwargs or {}))
            if func.overloadpacket in (torch.ops.aten.convolution, torch.ops.aten.convolution_backward):
                maps = out[0] if isinstance(out, tuple) else out
                if maps is not None and maps.shape[-1] >= 16:  # the maps of the blocks at 32 and 16 pixels
                    layouts.append(memory_format_of(maps))
            return out

    reals = torch.randn(4, 3, 32, 32, requires_grad=True)
    with ConvolutionLayouts():
        (gradient,) = torch.autograd.grad(discriminator(reals).sum(), reals, create_graph=True)
        gradient.square().sum().backward()
    assert len(layouts) > 20 and set(layouts) == {torch.channels_last}


def test_a_scale_conditioned_discriminator_judges_each_patch_by_its_own_scale() -> None:
    """EpiGRAF's conditioning: the same patch scores differently at another scale, a patch's scale moves its logit
    alone, R1 differentiates through it, and the reference's unconditioned discriminator is unchanged."""
    torch.manual_seed(0)
    config = DiscriminatorConfig(channel_base=256, channel_max=32, patch_scale_conditioning=True)
    discriminator = Discriminator(config, resolution=16)
    images = torch.randn(4, 3, 16, 16, requires_grad=True)
    scales = torch.tensor([0.5, 0.6, 0.8, 1.0])
    logits = discriminator(images, patch_scales=scales)
    assert logits.shape == (4, 1) and torch.isfinite(logits).all()
    moved = discriminator(images, patch_scales=scales.index_put((torch.tensor([2]),), torch.tensor(0.55)))
    assert not torch.allclose(moved[2], logits[2], atol=1e-5), "another scale, another judgement"
    assert torch.allclose(moved[[0, 1, 3]], logits[[0, 1, 3]], atol=1e-6), "each patch by its own scale"

    (r1,) = torch.autograd.grad(logits.sum(), images, create_graph=True)
    r1.square().sum().backward()
    embedding = discriminator.patch_scale_embedding
    assert embedding is not None and all(p.grad is not None and p.grad.abs().sum() > 0 for p in embedding.parameters())
    with pytest.raises(ValueError, match="pass `patch_scales`"):
        discriminator(images)

    plain = Discriminator(DiscriminatorConfig(channel_base=256, channel_max=32), resolution=16)
    assert plain.patch_scale_embedding is None and plain.out.weight.shape[0] == 1
    assert not any("patch_scale" in name for name in plain.state_dict()), "reference checkpoints still load"
    with pytest.raises(ValueError, match="not conditioned"):
        plain(images, patch_scales=scales)
