"""EG3D's blur of the discriminator's input: its fading schedule, its kernel, and its derivatives for R1."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.functional as TF

from hypernerfgan_ns.training.input_blur import DiscriminatorInputBlurConfig, blur_images


def test_sigma_fades_linearly_to_nothing_and_the_kernel_goes_with_it() -> None:
    blur = DiscriminatorInputBlurConfig(initial_sigma=2.0, fade_images=100)
    assert [blur.sigma(images) for images in (0, 25, 50, 100, 10**6)] == [2.0, 1.5, 1.0, 0.0, 0.0]
    assert blur.radius == 6, "three standard deviations of the first sigma, for the whole fade"
    assert blur.kernel(99, "cpu").shape == (1, 1, 13, 13), "the same taps while sigma narrows"
    assert blur.kernel(100, "cpu") is None, "faded out: the discriminator sees the images as they are"
    off = DiscriminatorInputBlurConfig()
    assert not off.enabled and off.sigma(0) == 0.0 and off.kernel(0, "cpu") is None, "the paper's: no blur"


def test_the_blur_is_a_normalised_gaussian_with_reflected_borders() -> None:
    blur = DiscriminatorInputBlurConfig(initial_sigma=1.5, fade_images=10)
    kernel = blur.kernel(0, "cpu")
    assert kernel.sum().item() == pytest.approx(1.0)
    assert torch.equal(kernel, kernel.flip(-1)) and torch.equal(kernel, kernel.transpose(-1, -2)), "symmetric"
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    taps = 2 * blur.radius + 1
    expected = TF.gaussian_blur(images, [taps, taps], [1.5, 1.5])  # torchvision's: reflected borders too
    assert torch.allclose(blur_images(images, kernel), expected, atol=1e-6)
    white = torch.ones(1, 3, 8, 8)
    assert torch.allclose(blur_images(white, kernel), white), "a white background gains no dark frame"
    assert blur_images(images, None) is images


def test_r1_can_differentiate_the_blur_twice() -> None:
    """R1 differentiates D(blur(x)) for x, then its penalty for the weights: the blur's second derivative."""
    kernel = DiscriminatorInputBlurConfig(initial_sigma=1.0, fade_images=10).kernel(0, "cpu").double()
    images = torch.rand(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(3, 8, 8, dtype=torch.float64)

    def scores(x: torch.Tensor) -> torch.Tensor:
        return (blur_images(x, kernel).sin() * weights).sum()

    assert torch.autograd.gradcheck(scores, (images,))
    assert torch.autograd.gradgradcheck(scores, (images,))


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(initial_sigma=-1.0), "at least 0 pixels"),
        (dict(initial_sigma=1.0, fade_images=0), "at least 1 image"),
    ],
)
def test_impossible_settings_are_refused(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        DiscriminatorInputBlurConfig(**options)


def test_a_blur_reaching_across_the_patch_is_unfit() -> None:
    blur = DiscriminatorInputBlurConfig(initial_sigma=3.0)
    assert blur.unfit_reason(smallest_patch=16) is None
    assert "reaches 9 px on each side" in blur.unfit_reason(smallest_patch=8)
    assert DiscriminatorInputBlurConfig().unfit_reason(smallest_patch=4) is None
