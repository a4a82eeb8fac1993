"""Differentiable augmentation of the discriminator's inputs, with an adaptive strength (ADA).

A discriminator that sees a few thousand photos memorises them, its feedback to the generator turns useless, and
the generator collapses (without augmentation the seeds' runs collapsed to a single car). Augmenting *both* real and
generated patches, with the same distribution, lets the discriminator see more varied data without teaching the
generator to produce augmented images: as long as each augmentation is applied with probability below one (below
one half for the flip, its own inverse), the augmented distributions only match when the clean ones do (Karras et
al., 2020, "Training Generative Adversarial Networks with Limited Data"; Zhao et al., 2020, "Differentiable
Augmentation for Data-Efficient GAN Training").

As in StyleGAN2-ADA, every augmentation has a probability multiplier (0 turns it off) beside its strength, and one
probability `p` scales them all. `p` is tuned during training from the overfitting heuristic r_t = E[sign(D(real))]:
raised while the discriminator is too sure of the real images (r_t above `target`), lowered otherwise.

Every operation is differentiable with respect to the images, since the generator's gradient and the R1 penalty
both flow through it. Images are NCHW in [-1, 1] with a white (+1) background.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

import numpy as np
import torch
import torch.distributed as dist
from jaxtyping import Bool, Float
from torch import Tensor, nn

from hypernerfgan_ns.utils.config_compat import DefaultsForMissingFields
from hypernerfgan_ns.utils.transfers import to_device
from nerfstudio.configs.base_config import InstantiateConfig

CUTOUT_FILL = 0.0
"""Value of the cutout hole: mid grey in [-1, 1], as in DiffAugment, so it is neither background nor object."""


@dataclass
class AugmentConfig(DefaultsForMissingFields, InstantiateConfig):
    """Which augmentations the discriminator's inputs get, how strong they are, and how their probability adapts.

    Defaults: the strengths of StyleGAN2-ADA's colour transforms, and DiffAugment's translation and cutout sizes.
    """

    _target: Type = field(default_factory=lambda: AdaptiveAugment)
    """Class this config instantiates."""

    xflip: float = 1.0
    """Probability multiplier of the horizontal flip (0 turns it off). As in StyleGAN2-ADA, it picks one of the two
    mirror images at random, so an image is mirrored with probability p * xflip / 2: at one half, a distribution and
    its mirror image would augment into the same one."""
    translation: float = 1.0
    """Probability multiplier of the integer translation (0 turns it off)."""
    translation_fraction: float = 0.125
    """Largest shift in x and in y, as a fraction of the patch size (DiffAugment's); the border repeats edge pixels."""
    cutout: float = 1.0
    """Probability multiplier of cutout, one square hole filled with mid grey (0 turns it off)."""
    cutout_fraction: float = 0.5
    """Side of the cutout square as a fraction of the patch size (DiffAugment's); holes are clipped at the border."""
    color: float = 1.0
    """Probability multiplier of brightness, saturation and contrast, each drawn independently (0 turns all off)."""
    brightness_std: float = 0.2
    """Standard deviation of the additive brightness offset, in the images' [-1, 1] units (StyleGAN2-ADA's)."""
    saturation_std: float = 1.0
    """Std in log2 units of the factor scaling each pixel's colour around its grey value (StyleGAN2-ADA's)."""
    contrast_std: float = 0.5
    """Std in log2 units of the factor scaling each image around its mean value (StyleGAN2-ADA's)."""

    initial_p: float = 0.0
    """Augmentation probability at the start of training; with `adaptive` off it stays there for good."""
    adaptive: bool = True
    """Tune p from the overfitting heuristic r_t = E[sign(D(real))]; off keeps p at `initial_p`."""
    target: float = 0.6
    """Value of r_t that p steers towards: above it the discriminator overfits and p rises (ADA's 0.6)."""
    adjustment_images: int = 500_000
    """Real images (over all replicas) it takes p to move by 1, i.e. ADA's ada_kimg * 1000; sets p's reaction time."""
    update_interval: int = 4
    """Training iterations between updates of p (ADA's ada_interval)."""
    max_p: float = 1.0
    """Upper bound of p; lower it if augmentations start leaking into the generated images."""

    def __post_init__(self) -> None:
        multipliers = {"xflip": self.xflip, "translation": self.translation, "cutout": self.cutout, "color": self.color}
        strengths = {
            "brightness_std": self.brightness_std,
            "saturation_std": self.saturation_std,
            "contrast_std": self.contrast_std,
        }
        for name, value in {**multipliers, **strengths}.items():
            if value < 0:
                raise ValueError(f"AugmentConfig.{name} must be non-negative, got {value}.")
        fractions = {"translation_fraction": self.translation_fraction, "cutout_fraction": self.cutout_fraction}
        for name, value in fractions.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"AugmentConfig.{name} is a fraction of the patch size in [0, 1], got {value}.")
        if not 0.0 <= self.initial_p <= self.max_p:
            raise ValueError(f"AugmentConfig needs 0 <= initial_p <= max_p, got {self.initial_p} and {self.max_p}.")
        if not -1.0 < self.target < 1.0:
            raise ValueError(f"AugmentConfig.target is a mean of signs and must lie in (-1, 1), got {self.target}.")
        if self.adjustment_images <= 0 or self.update_interval <= 0:
            raise ValueError(
                "AugmentConfig.adjustment_images and update_interval must be positive, "
                f"got {self.adjustment_images} and {self.update_interval}."
            )


class AdaptiveAugment(nn.Module):
    """Applies the configured augmentations with probability p, and adapts p to the discriminator's overfitting.

    `p`, the running sum of sign(D(real)) and its count are persistent buffers, so checkpoints hold them and a
    resumed run continues with the same p and the same partial statistic. p changes only through `update` and
    `load_state_dict`, which is why its value can be kept on the host between changes: no GPU synchronisation per
    batch. An update reads the statistic and p from the device in one transfer, at the end of an iteration (where the
    trainer has just waited for the device anyway), and computes the new p on the host, so that the next iteration's
    batches do not wait for the device to hand it back in the middle of the D phase.

    The random draws (which images each transform touches, and how) are made on the host, from torch's CPU
    generator, which the trainer saves and restores; only the draws of a transform that touches some image reach the
    device, in one small copy. So a transform that no image of the batch drew costs the device nothing, forward or
    backward: early in training, while p is small (at the default `adjustment_images` it moves by at most 0.02 in the
    first 10,000 images), that is nearly all of them.

    Typical use, once per discriminator step: `d_real = D(augment(real))`, `d_fake = D(augment(fake))`,
    `augment.accumulate(d_real)`, then `augment.update(step, batch_size)`.
    """

    p: Tensor
    sign_sum: Tensor
    sign_count: Tensor
    last_r_t: Tensor

    def __init__(self, config: AugmentConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("p", torch.tensor(float(config.initial_p)))
        self.register_buffer("sign_sum", torch.tensor(0.0))
        self.register_buffer("sign_count", torch.tensor(0.0))
        self.register_buffer("last_r_t", torch.tensor(0.0))
        self._host_values: Optional[Tuple[float, float]] = None

    def host_values(self) -> Tuple[float, float]:
        """p and the last r_t as Python numbers, read from the device once after each change (not once per batch)."""
        if self._host_values is None:
            p, r_t = torch.stack([self.p, self.last_r_t]).tolist()
            self._host_values = (p, r_t)
        return self._host_values

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._host_values = None

    # ----------------------------------------------------------------------------------------------------------------
    # Augmentation.

    def forward(
        self, images: Float[Tensor, "batch channels height width"]
    ) -> Float[Tensor, "batch channels height width"]:
        """Augments each image independently; returns `images` itself when p or every multiplier is zero, or when no
        image drew any transform.

        Args:
            images: real or generated patches in [-1, 1], white background +1.
        """
        p = self.host_values()[0]
        if p <= 0.0:
            return images
        transforms = self.transforms()
        probabilities = torch.tensor([p * rate for rate, _ in transforms])
        chosen = torch.rand(len(transforms), images.shape[0]) < probabilities[:, None]  # [transforms, batch]
        for (_, transform), chosen_images, any_chosen in zip(transforms, chosen, chosen.any(dim=1).tolist()):
            if any_chosen:
                images = transform(images, chosen_images)
        return images

    def transforms(self) -> List[Tuple[float, Callable[[Tensor, Bool[Tensor, "batch"]], Tensor]]]:
        """Each transform in the order they apply, with the rate p is multiplied by to give the probability that it
        touches an image (0: off). Cutout comes last, so that its hole stays exactly mid grey."""
        c = self.config
        return [
            (c.xflip / 2, self._xflip),
            (c.translation if c.translation_fraction > 0 else 0.0, self._translate),
            (c.color if c.brightness_std > 0 else 0.0, self._brightness),
            (c.color if c.saturation_std > 0 else 0.0, self._saturation),
            (c.color if c.contrast_std > 0 else 0.0, self._contrast),
            (c.cutout if c.cutout_fraction > 0 else 0.0, self._cutout),
        ]

    @staticmethod
    def _xflip(images: Tensor, chosen: Bool[Tensor, "batch"]) -> Tensor:
        """Mirrors the chosen images left to right."""
        chosen = to_device(chosen, images.device)[:, None, None, None]
        return torch.where(chosen, images.flip(-1), images)

    def _translate(self, images: Tensor, chosen: Bool[Tensor, "batch"]) -> Tensor:
        """Shifts the chosen images by whole pixels and fills the uncovered border with copies of the edge pixels.

        Zero filling would paint grey bars on the white background that only augmented images have; repeating the
        edge keeps the background white. A gather with clamped indices does it in one differentiable pass.
        """
        batch, channels, height, width = images.shape
        sources = []  # per image, the input row (then column) each output row (column) reads, clamped to the image
        for size in (height, width):
            largest = round(self.config.translation_fraction * size)
            shift = torch.randint(-largest, largest + 1, (batch,)) * chosen
            sources.append((torch.arange(size)[None, :] - shift[:, None]).clamp(0, size - 1))
        rows, cols = to_device(torch.cat(sources, dim=1), images.device).split([height, width], dim=1)
        source = (rows[:, :, None] * width + cols[:, None, :]).reshape(batch, 1, height * width)
        gathered = images.reshape(batch, channels, height * width).gather(2, source.expand(-1, channels, -1))
        return gathered.reshape(batch, channels, height, width)

    def _cutout(self, images: Tensor, chosen: Bool[Tensor, "batch"]) -> Tensor:
        """Fills one square hole per chosen image with mid grey, as DiffAugment does.

        The hole's centre is uniform over the patch and the hole is clipped at the border, so every pixel is hidden
        about equally often (a hole kept fully inside would always hide the object's centre).
        """
        batch, _, height, width = images.shape
        inside = []  # per image, the rows (then columns) its hole covers; none for an image not chosen
        for size in (height, width):
            side = round(self.config.cutout_fraction * size)
            start = torch.randint(0, size, (batch,)) - side // 2
            position = torch.arange(size)[None, :]
            inside.append((position >= start[:, None]) & (position < start[:, None] + side) & chosen[:, None])
        inside_rows, inside_cols = to_device(torch.cat(inside, dim=1), images.device).split([height, width], dim=1)
        hole = inside_rows[:, :, None] & inside_cols[:, None, :]
        return images.masked_fill(hole[:, None], CUTOUT_FILL)

    # The colour transforms. Images a transform does not choose keep their exact values (selected with `torch.where`),
    # so the identity really is the identity.

    def _brightness(self, images: Tensor, chosen: Bool[Tensor, "batch"]) -> Tensor:
        """Adds one random offset to each chosen image."""
        chosen, offset = self._colour_draws(images, chosen, self.config.brightness_std, exponent=False)
        return torch.where(chosen, images + offset, images)

    def _saturation(self, images: Tensor, chosen: Bool[Tensor, "batch"]) -> Tensor:
        """Scales each chosen image's pixels' colours around their grey values by one random factor."""
        chosen, factor = self._colour_draws(images, chosen, self.config.saturation_std, exponent=True)
        grey = images.mean(dim=1, keepdim=True)
        return torch.where(chosen, grey + (images - grey) * factor, images)

    def _contrast(self, images: Tensor, chosen: Bool[Tensor, "batch"]) -> Tensor:
        """Scales each chosen image around its mean value by one random factor."""
        chosen, factor = self._colour_draws(images, chosen, self.config.contrast_std, exponent=True)
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        return torch.where(chosen, mean + (images - mean) * factor, images)

    @staticmethod
    def _colour_draws(
        images: Tensor, chosen: Bool[Tensor, "batch"], std: float, exponent: bool
    ) -> Tuple[Bool[Tensor, "batch 1 1 1"], Float[Tensor, "batch 1 1 1"]]:
        """The chosen images and a normal offset with standard deviation `std` per image (or the factor 2 ** offset),
        drawn on the host and moved to the device in one copy, in the images' dtype."""
        value = torch.randn(chosen.shape[0]) * std
        value = torch.exp2(value) if exponent else value
        mask_and_value = torch.stack([chosen.to(value.dtype), value]).to(images.dtype)[:, :, None, None, None]
        mask, value = to_device(mask_and_value, images.device)
        return mask.bool(), value

    # ----------------------------------------------------------------------------------------------------------------
    # Adaptation of p.

    @torch.no_grad()
    def accumulate(self, real_evidence: Float[Tensor, "batch 1"]) -> None:
        """Adds sign(D(real)) of one batch to the overfitting statistic.

        Args:
            real_evidence: the discriminator's raw outputs on the (augmented) real images of this replica; under a
                relativistic objective, where only a pair's difference means anything, D(real) - D(fake) of each pair.
        """
        signs = real_evidence.detach().float().sign()
        self.sign_sum += signs.sum().to(self.sign_sum.device)
        self.sign_count += signs.numel()

    @torch.no_grad()
    def update(self, step: int, batch_size: int) -> None:
        """Every `update_interval` steps, computes r_t and moves p towards the target; call once per step.

        The update runs when `step % update_interval == update_interval - 1`, so with steps counted from 0 each
        update sees exactly `update_interval` steps of statistics (and a resumed run keeps the same phase). r_t is
        computed for logging even when `adaptive` is off; only then does p stay put. Under torch.distributed the
        statistic is summed over replicas first, so every replica computes the same p; every replica must call
        this at the same steps.

        Args:
            step: the trainer's global step, counted from 0.
            batch_size: real images per step on *this replica*; the adjustment multiplies it by the world size.
        """
        interval = self.config.update_interval
        if step % interval != interval - 1:
            return
        world_size = 1
        statistic = torch.stack([self.sign_sum, self.sign_count])
        if dist.is_available() and dist.is_initialized():
            world_size = dist.get_world_size()
            dist.all_reduce(statistic)
        self.sign_sum.zero_()
        self.sign_count.zero_()
        # The update's one read of the device. The arithmetic is the buffers' float32, on the host, so the host's p is
        # the device's to the bit; the buffers are then set by `fill_`, which, unlike a copy from the host, does not
        # wait for the device.
        sign_sum, sign_count, p = map(np.float32, torch.cat([statistic, self.p[None]]).tolist())
        if sign_count == 0:
            return  # Nothing was accumulated; keep p and the last r_t.
        r_t = sign_sum / sign_count
        if self.config.adaptive:
            images_seen = batch_size * world_size * interval
            adjustment = np.sign(r_t - np.float32(self.config.target)) * np.float32(images_seen)
            p = np.clip(p + adjustment / np.float32(self.config.adjustment_images), 0.0, self.config.max_p)
            p = np.float32(p)
            self.p.fill_(float(p))
        self.last_r_t.fill_(float(r_t))
        self._host_values = (float(p), float(r_t))

    @property
    def r_t(self) -> float:
        """The overfitting heuristic E[sign(D(real))] of the last update (0 before the first)."""
        return self.host_values()[1]

    def stats(self) -> Dict[str, float]:
        """Scalars for tensorboard: the augmentation probability and the last r_t."""
        p, r_t = self.host_values()
        return {"augment_p": p, "augment_rt": r_t}

    def extra_repr(self) -> str:
        return f"p={float(self.p):.4f}, adaptive={self.config.adaptive}, target={self.config.target}"
