"""The discriminator: a StyleGAN2 residual CNN at patch resolution.

    image patch [B, 3, P, P] in [-1, 1]
      -> from-RGB 1x1 conv
      -> residual blocks, each halving the resolution: (3x3 conv, 3x3 conv down) + 1x1 skip down, scaled by sqrt(1/2)
      -> epilogue at 4x4: minibatch standard deviation, 3x3 conv, dense, dense -> one logit per patch

Every layer uses an equalized learning rate; downsampling low-pass filters with a separable [1, 3, 3, 1] kernel
before subsampling (fewer aliasing artefacts for the generator to exploit). Channel widths follow StyleGAN's rule
min(channel_base / resolution, channel_max), so a small CPU configuration and the original's 512 channels are the
same code. Convolutions and filters go through `conv_gradients`, whose derivatives of every order are ordinary
convolutions: the lazy R1 step (a double backward) then costs little more than a plain step.

Trained with progressive growing (`training.progressive_growing`), it also judges smaller patches: a patch of side r
enters through a from-RGB layer of its own at the block for resolution r, and while that block fades in, its output
is mixed with the patch box-filtered to r / 2 through the from-RGB layer of r / 2.

With `patch_scale_conditioning` (EpiGRAF's scale-aware discriminator, for GRAF's scaled patches) it is told each
patch's scale, the side of the image square the patch covers over the image's side: the scale's Fourier features go
through a small mapping network to an embedding, and the logit is the projection of the epilogue's features onto it,
as StyleGAN2-ADA's conditional discriminator projects onto its class embedding. Unconditioned, it judges patches of
every scale by one standard, a mixture of whole objects seen coarsely and crops seen sharply.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Optional, Tuple, Type

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from hypernerfgan_ns.errors import ConfigError
from hypernerfgan_ns.field_components.encodings import PositionalEncoding
from hypernerfgan_ns.field_components.equalized_linear import (
    ACTIVATION_GAINS,
    Activation,
    EqualizedLinear,
    apply_activation,
)
from hypernerfgan_ns.networks.conv_gradients import WeightGradientSwitch, conv2d, depthwise_filter
from hypernerfgan_ns.utils.config_compat import DefaultsForMissingFields
from nerfstudio.configs.base_config import InstantiateConfig

RESIDUAL_GAIN = math.sqrt(0.5)
"""Scales the sum of the main and skip paths so the residual block keeps unit variance."""

MBSTD_EPS = 1e-8
"""Stabiliser of the minibatch standard deviation."""

PATCH_SCALE_ENCODING_MULTIPLIER = math.pi
"""A patch's scale, in (0, 1], is encoded at this multiple: the first octave's sine and cosine then cover half a
period over the scales, so that no two scales share features."""


@dataclass
class DiscriminatorConfig(DefaultsForMissingFields, InstantiateConfig):
    """Residual discriminator on image patches (StyleGAN2 "resnet" architecture)."""

    _target: Type = field(default_factory=lambda: Discriminator)
    channel_base: int = 32768
    """Channels at resolution r are min(channel_base // r, channel_max); 32768 gives 512 at 64x64 (the original)."""
    channel_max: int = 512
    """Upper bound on the channels of any layer."""
    mbstd_group_size: int = 4
    """Samples per group of the minibatch standard-deviation layer (the batch must divide into such groups)."""
    mbstd_num_channels: int = 1
    """Feature channels the minibatch standard deviation is computed over."""
    conv_clamp: Optional[float] = 256.0
    """Clamp every convolution's output to +-this value (keeps fp16 finite); None: no clamp."""
    downsample_filter: Tuple[int, ...] = (1, 3, 3, 1)
    """Separable low-pass filter applied before each 2x subsampling."""
    final_resolution: int = 4
    """Resolution at which the residual blocks stop and the epilogue starts."""
    fast_double_backward: bool = True
    """Convolutions whose derivatives are ordinary convolutions (`networks.conv_gradients`), so that R1's double
    backward runs fast kernels; False: PyTorch's own (the same values, several times slower R1 steps on CUDA)."""
    channels_last: bool = False
    """Keep the residual blocks' feature maps and convolution weights channels-last (NHWC), as StyleGAN2-ADA does for
    its fp16 layers: cuDNN's tensor-core convolutions work in that layout and transpose NCHW maps into it and back
    around each call. The same values; whether it is faster on a given GPU, `hypernerfgan bench --variants preset
    discriminator-channels-last` says (the 4x4 epilogue stays NCHW, in fp32)."""
    compile: bool = False
    """Run the discriminator's calls that are differentiated once (the D phase's fakes and reals, the G phase's fakes)
    through `torch.compile` (`utils.compiling`): its elementwise work (biases, activations and their gains, clamps,
    the residual sums, the minibatch statistics) fused into fewer kernels around the convolutions, forward and
    backward. R1 steps call it eagerly (compiled code has no double backward), as does a distributed run (DDP wraps
    it). The same logits and gradients to float rounding. Compiling takes tens of seconds at the first iterations
    (a graph per phase) and needs a C++ compiler on the CPU, Triton on a GPU. Off: `hypernerfgan bench --variants
    compiled-discriminator` measures it on a GPU."""
    patch_scale_conditioning: bool = False
    """EpiGRAF's scale-aware discriminator: each patch's logit is conditioned on the patch's scale (the side of the
    image square it covers over the image's side: 1 for a whole image, P / R for an unscaled crop), projected as
    StyleGAN2-ADA's conditional discriminator projects on its class. Needs scaled patches (GRAF's patch-scale annealing,
    `--pipeline.datamanager.patch-scale-annealing-images`), whose mixture of scales an unconditioned discriminator
    judges by one standard. Off: the reference's discriminator (its checkpoints have no scale mapping); on the tiny
    preset's crops it was worse on every seed at 10,000 images (docs/ablations.md, "EpiGRAF's scale-aware
    discriminator")."""
    patch_scale_octaves: int = 4
    """Octaves of the scale's Fourier features (sine and cosine at 1, 2, 4, ... times the first), beside the scale."""
    patch_scale_mapping_layers: int = 2
    """Fully connected layers from the scale's features to the embedding the logit is projected on."""

    def unfit_reason(self, side: int) -> Optional[str]:
        """Why patches of `side` px cannot be judged, with the sides that fit, or None: the blocks halve a patch down
        to `final_resolution`. Refused as the discriminator is built, skipped by `hypernerfgan ablate` before any
        work."""
        final = self.final_resolution
        if side >= final and not side & (side - 1):
            return None
        below = max(final, 1 << (max(side, 1).bit_length() - 1))
        above = below * 2 if below < side else below
        return (
            f"The discriminator halves its patches down to {final}x{final}, so their side must be a power of two >= "
            f"{final}, got {side} (--pipeline.datamanager.patch-size, or a stage of progressive growing): try "
            + (f"{below} or {above}" if above != below else f"{below}")
        )


class EqualizedConv2d(nn.Module):
    """Conv2d with an equalized learning rate, optional 2x downsampling after a low-pass filter, and a clamp."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        activation: Activation = "linear",
        bias: bool = True,
        downsample: bool = False,
        downsample_filter: Tuple[int, ...] = (1, 3, 3, 1),
        conv_clamp: Optional[float] = None,
        fast_double_backward: bool = True,
        weight_gradients: Optional[WeightGradientSwitch] = None,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        super().__init__()
        self.fast_double_backward = fast_double_backward
        self.weight_gradients = weight_gradients
        self.activation: Activation = activation
        self.downsample = downsample
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        weight = torch.randn(out_channels, in_channels, kernel_size, kernel_size)
        self.weight = nn.Parameter(weight.contiguous(memory_format=memory_format))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = ACTIVATION_GAINS[activation] / math.sqrt(in_channels * kernel_size**2)
        self.bias_gain = ACTIVATION_GAINS[activation]
        taps = torch.tensor(downsample_filter, dtype=torch.float32)
        kernel = torch.outer(taps, taps)
        self.register_buffer("lowpass", (kernel / kernel.sum())[None, None], persistent=False)

    def blur(self, x: Tensor, stride: int, border: int) -> Tensor:
        """Depthwise low-pass filter before a 2x subsampling, keeping every `stride`-th output, with the convolution's
        zero padding `border` added to the image first, as StyleGAN2-ADA's `conv2d_resample` does: padding the
        filtered map instead would weigh the first row and column unlike the last ones.

        An even filter (the default [1, 3, 3, 1]) pads as much on each side, which the filter's convolution does
        itself: no padded copy of the maps forward, and no cropped copy of their gradient backward."""
        taps = self.lowpass.shape[-1]
        before, after = border + (taps - 1) // 2, border + (taps - 2) // 2
        padding = before
        if before != after:
            x, padding = F.pad(x, [before, after, before, after], mode="constant"), 0
        if self.fast_double_backward:
            return depthwise_filter(x, self.lowpass, stride=stride, padding=padding)
        channels = x.shape[1]
        weight = self.lowpass.to(x.dtype).expand(channels, 1, taps, taps)
        return F.conv2d(x, weight, stride=stride, padding=padding, groups=channels)

    def forward(self, x: Float[Tensor, "batch in_channels height width"]) -> Tensor:
        weight = self.weight.to(x.dtype) * self.weight_gain
        bias = self.bias.to(x.dtype) * self.bias_gain if self.bias is not None else None
        stride, padding = 1, self.padding
        if self.downsample and self.padding == 0:
            # A 1x1 convolution commutes with subsampling: the filter subsamples, so no full-size blurred copy is
            # computed or kept for backward.
            x = self.blur(x, stride=2, border=0)
        elif self.downsample:
            x, stride, padding = self.blur(x, stride=1, border=self.padding), 2, 0
        if self.fast_double_backward:
            x = conv2d(x, weight, bias, stride=stride, padding=padding, weight_gradients=self.weight_gradients)
        else:
            x = F.conv2d(x, weight, bias, stride=stride, padding=padding)
        x = apply_activation(x, self.activation, inplace=True)  # conv2d's backward does not need its output
        if self.conv_clamp is not None:
            # hardtanh is clamp with a one-kernel derivative; clamp's backward is five kernels (masks and a where).
            x = F.hardtanh(x, -self.conv_clamp, self.conv_clamp)
        return x


class PatchScaleEmbedding(nn.Module):
    """A patch's scale -> the vector its features are projected on for its logit: StyleGAN2-ADA's class embedding
    ("cmap"), of a continuous condition, through Fourier features (EpiGRAF's scalar encoding).

    Args:
        num_octaves: octaves of the Fourier features.
        num_layers: fully connected layers after them (leaky ReLU between, linear last).
        dim: the embedding's width, the epilogue's output width.
    """

    def __init__(self, num_octaves: int, num_layers: int, dim: int) -> None:
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"The patch scale's mapping needs at least one layer, got {num_layers}.")
        self.encoding = PositionalEncoding(num_octaves, in_dim=1)
        widths = [1 + 2 * num_octaves] + [dim] * num_layers
        self.layers = nn.Sequential(
            *(
                EqualizedLinear(width_in, width_out, activation="lrelu" if index < num_layers - 1 else "linear")
                for index, (width_in, width_out) in enumerate(zip(widths, widths[1:]))
            )
        )

    def forward(self, scales: Float[Tensor, "batch"]) -> Float[Tensor, "batch dim"]:
        return self.layers(self.encoding(scales[:, None].float() * PATCH_SCALE_ENCODING_MULTIPLIER))


def block_memory_format(config: DiscriminatorConfig) -> torch.memory_format:
    """The layout of the from-RGB layers' and the residual blocks' maps and weights (`channels_last`)."""
    return torch.channels_last if config.channels_last else torch.contiguous_format


class DiscriminatorBlock(nn.Module):
    """Two 3x3 convolutions, the second halving the resolution, plus a 1x1 downsampling skip."""

    def __init__(
        self, in_channels: int, out_channels: int, config: DiscriminatorConfig, weight_gradients: WeightGradientSwitch
    ) -> None:
        super().__init__()
        common = dict(
            downsample_filter=config.downsample_filter,
            conv_clamp=config.conv_clamp,
            fast_double_backward=config.fast_double_backward,
            weight_gradients=weight_gradients,
            memory_format=block_memory_format(config),
        )
        self.conv0 = EqualizedConv2d(in_channels, in_channels, 3, activation="lrelu", **common)
        self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, activation="lrelu", downsample=True, **common)
        # Unclamped, as StyleGAN2-ADA's skip: only the main path's activations can grow past fp16's range.
        unclamped = {**common, "conv_clamp": None}
        self.skip = EqualizedConv2d(in_channels, out_channels, 1, bias=False, downsample=True, **unclamped)

    def forward(self, x: Tensor) -> Tensor:
        return (self.skip(x) + self.conv1(self.conv0(x))) * RESIDUAL_GAIN


def minibatch_group(group_size: int, batch: int) -> int:
    """The size of the groups a batch is split into: `group_size`, or the whole batch when it is smaller (StyleGAN2).
    The batch must divide into them."""
    return min(group_size, batch)


class MinibatchStdDev(nn.Module):
    """Appends the within-group standard deviation of the features, so the discriminator can see variety."""

    def __init__(self, group_size: int, num_channels: int) -> None:
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: Float[Tensor, "batch channels height width"], num_batches: int = 1) -> Tensor:
        """Groups take every (batch / group)-th sample, as in StyleGAN2; `x` may hold `num_batches` equal batches one
        after another, each grouped on its own (no group mixes two of them)."""
        total, channels, height, width = x.shape
        batch = total // num_batches
        group = minibatch_group(self.group_size, batch)
        if total % num_batches != 0 or batch % group != 0:
            raise ValueError(
                f"The batch ({total} as {num_batches} equal part(s)) must divide into minibatch-std groups of {group}."
            )
        features = self.num_channels
        y = x.reshape(num_batches, group, -1, features, channels // features, height, width)
        y = (y - y.mean(dim=1, keepdim=True)).square().mean(dim=1)
        y = (y + MBSTD_EPS).sqrt().mean(dim=[3, 4, 5])  # [num_batches, batch / group, features]
        y = y.reshape(num_batches, 1, -1, features, 1, 1).repeat(1, group, 1, 1, height, width)
        return torch.cat([x, y.reshape(total, features, height, width)], dim=1)


class Discriminator(nn.Module):
    """Patch discriminator; see the module docstring.

    Args:
        config: architecture.
        resolution: side of the square patches it judges (a power of two >= `final_resolution`).
        smallest_resolution: the side of the smallest patches it judges while growing (a power of two between
            `final_resolution` and `resolution`); None: only patches of `resolution`.
    """

    def __init__(self, config: DiscriminatorConfig, resolution: int, smallest_resolution: Optional[int] = None) -> None:
        super().__init__()
        smallest = resolution if smallest_resolution is None else smallest_resolution
        for side in (resolution, smallest):
            reason = config.unfit_reason(side)
            if reason is not None:
                raise ConfigError(f"{reason}.")
        if smallest > resolution:
            raise ConfigError(f"The smallest patch ({smallest}) is larger than the patch ({resolution}).")
        self.resolution = resolution
        self.weight_gradients = WeightGradientSwitch()
        """Off inside `weight_gradients.skipped()`: backward passes then compute input gradients only (R1)."""

        def channels(res: int) -> int:
            return min(config.channel_base // res, config.channel_max)

        common = dict(
            conv_clamp=config.conv_clamp,
            fast_double_backward=config.fast_double_backward,
            weight_gradients=self.weight_gradients,
        )
        self.memory_format = block_memory_format(config)
        from_rgb = dict(common, activation="lrelu", memory_format=self.memory_format)
        self.from_rgb = EqualizedConv2d(3, channels(resolution), 1, **from_rgb)
        self.from_rgb_smaller = nn.ModuleDict()
        """The from-RGB layers of the smaller patches progressive growing trains on, by side ("8", "16", ...)."""
        side = resolution // 2
        while side >= smallest:
            self.from_rgb_smaller[str(side)] = EqualizedConv2d(3, channels(side), 1, **from_rgb)
            side //= 2
        blocks = []
        res = resolution
        while res > config.final_resolution:
            blocks.append(DiscriminatorBlock(channels(res), channels(res // 2), config, self.weight_gradients))
            res //= 2
        self.blocks = nn.Sequential(*blocks)
        final = channels(config.final_resolution)
        self.mbstd = MinibatchStdDev(config.mbstd_group_size, config.mbstd_num_channels)
        self.conv = EqualizedConv2d(final + config.mbstd_num_channels, final, 3, activation="lrelu", **common)
        self.fc = EqualizedLinear(final * config.final_resolution**2, final, activation="lrelu")
        self.patch_scale_embedding: Optional[PatchScaleEmbedding] = None
        """Maps each patch's scale to the vector its features are projected on (`patch_scale_conditioning`)."""
        if config.patch_scale_conditioning:
            self.patch_scale_embedding = PatchScaleEmbedding(
                config.patch_scale_octaves, config.patch_scale_mapping_layers, final
            )
        self.out = EqualizedLinear(final, 1 if self.patch_scale_embedding is None else final)

    def from_rgb_at(self, side: int) -> EqualizedConv2d:
        """The from-RGB layer of patches of this side."""
        if side == self.resolution:
            return self.from_rgb
        if str(side) not in self.from_rgb_smaller:
            judged = [self.resolution, *(int(key) for key in self.from_rgb_smaller)]
            raise ValueError(f"This discriminator judges patches of {judged} pixels, not {side}.")
        return self.from_rgb_smaller[str(side)]

    def forward(
        self,
        images: Float[Tensor, "batch 3 patch patch"],
        num_batches: int = 1,
        fade: float = 1.0,
        patch_scales: Optional[Float[Tensor, "batch"]] = None,
    ) -> Float[Tensor, "batch 1"]:
        """One logit per patch: positive means "looks real".

        `images` may hold `num_batches` equal batches one after another (the D phase's fakes, then its reals): the
        minibatch standard deviation groups each on its own, so every patch gets the logit a call of its own batch
        would give it, for the fixed cost (operations, kernel launches) of one call.

        Patches smaller than `resolution` (progressive growing) enter at the block for their side; with `fade` below
        1, that block's output is mixed with the previous stage's path, `fade` being the block's share.

        A discriminator with `patch_scale_conditioning` needs each patch's scale, `patch_scales`.

        Under mixed precision the blocks run in fp16 and the 4x4 epilogue in fp32, as in StyleGAN2-ADA: its
        statistics (the minibatch variance) and the logits need the range, and at 4x4 they cost nothing.
        """
        if (patch_scales is None) != (self.patch_scale_embedding is None):
            raise ValueError(
                "This discriminator is conditioned on each patch's scale (patch_scale_conditioning): pass "
                "`patch_scales`."
                if patch_scales is None
                else "This discriminator is not conditioned on patch scales, but `patch_scales` were passed."
            )
        side = images.shape[-1]
        first = (self.resolution // side).bit_length() - 1  # index of the block for this side
        images = images.contiguous(memory_format=self.memory_format)
        x = self.from_rgb_at(side)(images)
        if first < len(self.blocks):
            x = self.blocks[first](x)
            if fade < 1.0:
                previous = self.from_rgb_at(side // 2)(F.avg_pool2d(images, 2))
                x = torch.lerp(previous, x, fade)
        for block in itertools.islice(self.blocks, first + 1, None):
            x = block(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = self.conv(self.mbstd(x.float(), num_batches))
            features = self.out(self.fc(x.flatten(1)))
            if self.patch_scale_embedding is None:
                return features
            projected = (features * self.patch_scale_embedding(patch_scales)).sum(dim=1, keepdim=True)
            return projected * (1 / math.sqrt(features.shape[1]))
