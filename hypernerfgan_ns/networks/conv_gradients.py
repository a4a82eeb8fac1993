"""Convolutions whose gradients are ordinary convolutions again, so that R1's double backward is cheap.

R1 differentiates the discriminator twice: once for grad_x D(x), then the penalty ||grad_x D(x)||^2 for the
discriminator's weights. PyTorch's own second derivative of a convolution (`ConvolutionBackwardBackward`)
computes the weight term as one convolution with the *batch* as channels and the whole feature map as kernel,
and splits grouped convolutions (the depthwise low-pass filter before each downsampling) into one such
convolution per channel. On a GPU that made a lazy-R1 iteration about 8x a plain one.

Here every derivative is written out, with custom autograd functions, as one of three ordinary operations on
which the next derivative is again defined the same way:

    conv(x, w)                    y   = x * w                  (the forward convolution)
    conv_transpose(g, w)          g_x = g *^T w                (its input gradient)
    conv_weight_grad(g, x)        g_w = sum_batch g (x) x      (its weight gradient, the backend's own kernel)

with d conv / dx = conv_transpose, d conv / dw = conv_weight_grad, d conv_transpose / dg = conv,
d conv_transpose / dw = conv_weight_grad (input and gradient swapped), d conv_weight_grad / dg = conv and
d conv_weight_grad / dx = conv_transpose. Any order of derivative therefore runs the backend's fast forward,
transposed and weight-gradient kernels. The fixed low-pass filter is a depthwise convolution treated the same way,
without any weight gradient. StyleGAN2-ADA meets the same problem with its `conv2d_gradfix`; the values and
gradients here equal PyTorch's own to float precision (`tests/networks/test_conv_gradients.py`).

R1's first backward needs grad_x D(x) only, yet a convolution's backward cannot tell which of its gradients the
caller asked for; a network's `WeightGradientSwitch` (one per network, switched off only inside a `with` block)
lets that backward skip every weight gradient, as StyleGAN2-ADA's `no_weight_gradients` does.

Mixed precision: the functions cast their operands to the autocast dtype once, up front, and every forward of the
autograd functions runs with autocast off (R1's first backward runs inside the autocast region), so that every
derivative runs in the dtype of the forward pass.
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from hypernerfgan_ns.utils.precision import autocast_dtype

Pair = Tuple[int, int]


def _no_autocast(tensor: Tensor) -> ContextManager[Any]:
    """Autocast off for the device of `tensor`: the operands already have the dtype to run in. Where it is off
    already (fp32 training, most backward passes) nothing is entered: a discriminator iteration passes here about
    90 times, and an autocast context is host time on every one."""
    device_type = tensor.device.type
    if not torch.is_autocast_enabled(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)


class WeightGradientSwitch:
    """Whether backward passes through a network's convolutions compute their weight (and bias) gradients.

    Off only inside `skipped()`, for a backward whose caller needs input gradients alone (R1's grad_x D(x)). The
    backward of R1's penalty, run after the block, computes them as usual.
    """

    def __init__(self) -> None:
        self.enabled = True

    @contextlib.contextmanager
    def skipped(self) -> Iterator[None]:
        """Weight gradients are not computed by backward passes run inside the block."""
        previous, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = previous


def memory_format_of(maps: Tensor) -> torch.memory_format:
    """The layout of a batch of feature maps: channels-last where only that layout is dense, else NCHW."""
    if not maps.is_contiguous() and maps.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _wants_weight_gradients(ctx: Any) -> bool:
    return ctx.weight_gradients is None or ctx.weight_gradients.enabled


def _output_padding(input_size: Tuple[int, ...], output_size: Tuple[int, ...], weight_size: Tuple[int, ...],
                    stride: int, padding: int) -> Pair:
    """The transposed convolution's output_padding that recovers `input_size` exactly from `output_size`."""
    return tuple(  # type: ignore[return-value]
        input_size[i] - ((output_size[i] - 1) * stride - 2 * padding + weight_size[i]) for i in (-2, -1)
    )


class _Conv2d(torch.autograd.Function):
    """y = conv2d(x, w, b) with stride and symmetric padding."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor,
        bias: Optional[Tensor],
        stride: int,
        padding: int,
        weight_gradients: Optional[WeightGradientSwitch] = None,
    ) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        ctx.weight_gradients = weight_gradients
        with _no_autocast(x):
            return F.conv2d(x, weight, bias, stride=stride, padding=padding)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tuple[Optional[Tensor], ...]:
        x, weight = ctx.saved_tensors
        wants_weights = _wants_weight_gradients(ctx)
        mask = [
            ctx.needs_input_grad[0],
            ctx.needs_input_grad[1] and wants_weights,
            ctx.has_bias and ctx.needs_input_grad[2] and wants_weights,
        ]
        if not torch.is_grad_enabled():
            # A plain backward (no graph of it is kept): the backend's fused kernel for all three gradients.
            with _no_autocast(x):
                grads = torch.ops.aten.convolution_backward(
                    grad_output, x, weight, [weight.shape[0]] if ctx.has_bias else None, [ctx.stride] * 2,
                    [ctx.padding] * 2, [1, 1], False, [0, 0], 1, mask,
                )
            return (*grads, None, None, None)
        grad_x = grad_weight = grad_bias = None
        if mask[0]:
            output_padding = _output_padding(x.shape, grad_output.shape, weight.shape, ctx.stride, ctx.padding)
            grad_x = _ConvTranspose2d.apply(grad_output, weight, ctx.stride, ctx.padding, output_padding)
        if mask[1]:
            grad_weight = _Conv2dWeightGrad.apply(grad_output, x, weight.detach(), ctx.stride, ctx.padding)
        if mask[2]:
            grad_bias = grad_output.sum(dim=(0, 2, 3))
        return grad_x, grad_weight, grad_bias, None, None, None


class _ConvTranspose2d(torch.autograd.Function):
    """g_x = conv_transpose2d(g, w): the input gradient of `_Conv2d`, itself differentiable."""

    @staticmethod
    def forward(ctx: Any, grad: Tensor, weight: Tensor, stride: int, padding: int, output_padding: Pair) -> Tensor:
        ctx.save_for_backward(grad, weight)
        ctx.stride, ctx.padding = stride, padding
        with _no_autocast(grad):
            return F.conv_transpose2d(grad, weight, stride=stride, padding=padding, output_padding=output_padding)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tuple[Optional[Tensor], ...]:
        grad, weight = ctx.saved_tensors
        grad_grad = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_grad = _Conv2d.apply(grad_output, weight, None, ctx.stride, ctx.padding)
        if ctx.needs_input_grad[1]:
            # <conv_transpose(g, w), u> = <g, conv(u, w)>: the weight gradient of a convolution of u, against g.
            grad_weight = _Conv2dWeightGrad.apply(grad, grad_output, weight.detach(), ctx.stride, ctx.padding)
        return grad_grad, grad_weight, None, None, None


class _Conv2dWeightGrad(torch.autograd.Function):
    """g_w = the weight gradient of conv2d(x, w) for output gradient g, by the backend's weight-gradient kernel
    (`weight` only gives the shape and dtype: it is passed detached)."""

    @staticmethod
    def forward(ctx: Any, grad: Tensor, x: Tensor, weight: Tensor, stride: int, padding: int) -> Tensor:
        ctx.save_for_backward(grad, x)
        ctx.stride, ctx.padding = stride, padding
        with _no_autocast(grad):
            _, grad_weight, _ = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], 1, [False, True, False]
            )
        return grad_weight

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tuple[Optional[Tensor], ...]:
        grad, x = ctx.saved_tensors
        grad_grad = grad_x = None
        if ctx.needs_input_grad[0]:
            grad_grad = _Conv2d.apply(x, grad_output, None, ctx.stride, ctx.padding)
        if ctx.needs_input_grad[1]:
            output_padding = _output_padding(x.shape, grad.shape, grad_output.shape, ctx.stride, ctx.padding)
            grad_x = _ConvTranspose2d.apply(grad, grad_output, ctx.stride, ctx.padding, output_padding)
        return grad_grad, grad_x, None, None, None


class _DepthwiseFilter(torch.autograd.Function):
    """y = the same fixed 2D filter applied to every channel of the zero-padded input, keeping every `stride`-th
    output; no weight gradient."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, kernel: Tensor, stride: int, padding: int) -> Tensor:
        ctx.save_for_backward(kernel)
        ctx.stride, ctx.padding, ctx.input_size = stride, padding, x.shape[-2:]
        channels = x.shape[1]
        with _no_autocast(x):
            weight = kernel.expand(channels, 1, *kernel.shape[-2:])
            return F.conv2d(x, weight, stride=stride, padding=padding, groups=channels)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tuple[Optional[Tensor], ...]:
        (kernel,) = ctx.saved_tensors
        if not torch.is_grad_enabled():
            # A plain backward (no graph of it is kept): the backend's own depthwise input-gradient kernel.
            channels = grad_output.shape[1]
            weight = kernel.expand(channels, 1, *kernel.shape[-2:])
            # The input only gives its shape and layout: the gradient comes out in the layout of the maps (NCHW or
            # channels-last), as the forward's did.
            size = (grad_output.shape[0], channels, *ctx.input_size)
            layout = torch.empty(
                size, dtype=grad_output.dtype, device=grad_output.device,
                memory_format=memory_format_of(grad_output),
            )
            with _no_autocast(grad_output):
                grad_x, _, _ = torch.ops.aten.convolution_backward(
                    grad_output, layout, weight, None, [ctx.stride] * 2, [ctx.padding] * 2, [1, 1], False, [0, 0],
                    channels, [True, False, False],
                )
            return grad_x, None, None, None
        output_padding = _output_padding(ctx.input_size, grad_output.shape, kernel.shape, ctx.stride, ctx.padding)
        grad_x = _DepthwiseFilterTranspose.apply(grad_output, kernel, ctx.stride, ctx.padding, output_padding)
        return grad_x, None, None, None


class _DepthwiseFilterTranspose(torch.autograd.Function):
    """The adjoint of `_DepthwiseFilter`: its input gradient, itself differentiable."""

    @staticmethod
    def forward(ctx: Any, grad: Tensor, kernel: Tensor, stride: int, padding: int, output_padding: Pair) -> Tensor:
        ctx.save_for_backward(kernel)
        ctx.stride, ctx.padding = stride, padding
        channels = grad.shape[1]
        weight = kernel.expand(channels, 1, *kernel.shape[-2:])
        with _no_autocast(grad):
            return F.conv_transpose2d(
                grad, weight, stride=stride, padding=padding, output_padding=output_padding, groups=channels
            )

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tuple[Optional[Tensor], ...]:
        (kernel,) = ctx.saved_tensors
        return _DepthwiseFilter.apply(grad_output, kernel, ctx.stride, ctx.padding), None, None, None, None


def conv2d(
    x: Float[Tensor, "batch in_channels height width"],
    weight: Float[Tensor, "out_channels in_channels kh kw"],
    bias: Optional[Float[Tensor, "out_channels"]] = None,
    stride: int = 1,
    padding: int = 0,
    weight_gradients: Optional[WeightGradientSwitch] = None,
) -> Float[Tensor, "batch out_channels out_height out_width"]:
    """`F.conv2d` (groups 1, symmetric padding) whose derivatives of every order are ordinary convolutions; the
    first backward skips the weight gradients while `weight_gradients` is off."""
    dtype = autocast_dtype(x)
    if dtype is not None:
        x, weight = x.to(dtype), weight.to(dtype)
        bias = bias.to(dtype) if bias is not None else None
    return _Conv2d.apply(x, weight, bias, stride, padding, weight_gradients)


def depthwise_filter(
    x: Float[Tensor, "batch channels height width"],
    kernel: Float[Tensor, "1 1 kh kw"],
    stride: int = 1,
    padding: int = 0,
) -> Float[Tensor, "batch channels out_height out_width"]:
    """The fixed `kernel` convolved with every channel, zero-padded by `padding` on every side, keeping every
    `stride`-th output; its derivatives of every order are ordinary depthwise convolutions."""
    dtype = autocast_dtype(x) or x.dtype
    return _DepthwiseFilter.apply(x.to(dtype), kernel.to(dtype), stride, padding)
