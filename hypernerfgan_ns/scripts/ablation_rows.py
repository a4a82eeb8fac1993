"""The rows of `hypernerfgan ablate`: each changes one thing of a method's config, by a name the study and the README
share.

A row is a description for the table and a function that edits a copy of the trainer's config in place; the factors
and settings the rows use are the constants below, each with why it was chosen. `hypernerfgan ablate --rows NAME ...`
trains them (`scripts/ablate.py`); `--on-top-of NAME ...` applies rows before every row of a study.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Dict

from hypernerfgan_ns.data.dataparsers.unposed_images_dataparser import UnposedImagesDataParserConfig
from hypernerfgan_ns.engine.trainer import HyperNeRFGANTrainerConfig
from hypernerfgan_ns.training.progressive_growing import ProgressiveGrowingConfig
from nerfstudio.engine.schedulers import CosineDecaySchedulerConfig, ExponentialDecaySchedulerConfig

SAMPLES_PER_RAY = (8, 16, 32, 64)
"""Coarse samples per ray of the `samples-N` rows: the seeds' sweep, from too few for a solid surface to the paper's."""

IMPORTANCE_SHARE = 0.5
"""The `importance-half` row makes this share of the method's samples per ray importance samples, placed where the
coarse rest found density: the same field evaluations per ray (each sample is evaluated once), more of them on the
surface. pi-GAN trains with half and half."""

PATCH_SIZES = (8, 16, 32, 64)
"""Patch sides of the `patch-N` rows; the discriminator is built for the patch, so it changes with it."""

R1_GAMMA_FACTORS = (0.1, 10.0)
"""The `r1-gamma-xF` rows multiply the R1 weight by F: a tenth (chairs' preset uses a tenth of the others') and ten
times (a smoother discriminator, which may let a faster learning rate stay stable)."""

R1_INTERVAL = 4
"""The `r1-every-4` row applies R1 every this many iterations instead of the method's 16 (weighted by 4 instead of
16, the same average weight): whether StyleGAN2's lazy doses, 16 times the penalty's gradient in one step of 16,
inflate Adam's second-moment norm (an average over about 100 steps at beta2 0.99) and so slow the 15 steps between.
On the tiny preset they do not (an R1 step's gradient is 1.4 times a plain step's: docs/ablations.md)."""

OCTAVE_COUNTS = (4, 6, 10)
"""Positional-encoding octaves of the `octaves-N` rows: 4 and 6 against the paper's 10, and the paper's 10 on the
methods with 6 (`hypernerfgan-lite`, `-tiny`). Octave k's period is 2pi / 2^k units; on the cars (0.0225 units a pixel
at the origin) 4 octaves end at 0.79 units, several pixels at every resolution the methods train at, and 6 at 0.20
units, 2.2 times the spacing of `hypernerfgan-lite`'s rays (every fourth pixel): just above their Nyquist limit, where
octaves 6 to 9 streak between the rays (docs/ablations.md, "Four octaves on the paper's networks" and "Six octaves on
the paper's networks")."""

LEARNING_RATE_FACTORS = (0.25, 2.0, 4.0, 8.0)
"""The `lr-xF` rows multiply both networks' learning rates by F. The paper's 0.0025 (StyleGAN's) is tuned for runs
of millions of images, not for the first ten thousand; x4 of it is the tiny preset's 0.01, and x0.25 takes the tiny
preset back to the paper's rate. x8 of the paper's rate is past the edge of stability on the tiny preset (its samples
collapse into stripes), so the sweep brackets the best factor."""

SINGLE_NETWORK_LR_FACTORS = (0.25, 0.5, 2.0)
"""The `generator-lr-xF` and `discriminator-lr-xF` rows multiply one network's learning rate by F. x2 on top of
`lr-x4` asks which network's speed the cliff at x8 belongs to; x0.25 on the tiny preset (both at 0.01) puts one
network back at the paper's 0.0025: `discriminator-lr-x0.25` is the fast generator beside the paper's discriminator,
the candidate for presets whose wider discriminator is unstable at 0.01. `discriminator-lr-x0.5` is the tiny rate
scaled to a discriminator four times as wide (512 channels against 128): with Adam's normalised steps a logit moves
per step about as the square root of a layer's fan-in, so 0.01 there is like 0.02, past the cliff, on the tiny one."""

MAPPING_LR_FACTOR = 10.0
"""The `mapping-lr-x...` row multiplies the mapping network's learning-rate multiplier (StyleGAN's 0.01) by this."""

BATCH_SIZE_FACTORS = (0.5, 2.0)
"""The `batch-xF` rows multiply the batch by F and divide the iterations by F: the same images seen, F times fewer
updates (x2 gives the tiny preset the batch of 8 it had before the faster recipe)."""

DISCRIMINATOR_WIDTH_FACTORS = (0.5, 4.0)
"""The `discriminator-width-xF` rows multiply the discriminator's channels at every resolution by F (its
`channel_base` and `channel_max`): its arithmetic, more than half of the paper configuration's iteration (1,055 of
1,932 GFLOP, `hypernerfgan bench`), by about F^2. x4 gives `hypernerfgan-tiny` the GPU presets' 512 channels at its
lowest resolutions (128, 256, 512 and 512 at 32, 16, 8 and 4 pixels): how the rate of a wide discriminator behaves
where a study fits the CPU."""

DISCRIMINATOR_BASE_FACTORS = (0.5, 2.0)
"""The `discriminator-base-xF` rows multiply `channel_base` alone: the channels at the high resolutions, where
`channel_base / resolution` is below `channel_max` and most of the arithmetic is (the paper configuration's first
block, 512 channels at 64 x 64, is 792 of those 1,055 GFLOP), while the low resolutions keep `channel_max`. x2 gives
`hypernerfgan-tiny` the discriminator it had before it took x0.5."""

ADAM_BETA2 = 0.9
"""Adam's second-moment decay of the `adam-beta2-...` row, for both networks: pi-GAN's 0.9, where StyleGAN (and the
paper) take 0.99. A shorter memory of gradient magnitudes adapts the step sooner to a fast-changing opponent."""

LR_WARMUP_IMAGES = 500
"""Images over which the `lr-warmup` row ramps both networks' learning rates linearly up from nothing. Adam with
beta1 = 0 makes its first step the gradient's sign times the full rate on every weight, and that first discriminator
step moved the fakes' logits by 8 to 18 on `hypernerfgan-lite` (the discriminator at 0.005 and 0.01); they settled
within 10 iterations. 500 images is 125 iterations of 4."""

LR_DECAY_FINAL_FRACTION = 0.05
"""The `lr-cosine-decay` row's learning rates at the study's last iteration, as a fraction of the method's: both
networks' rates follow nerfstudio's cosine schedule down to it over the study (nerfstudio's NeRF methods decay their
rates over `max_num_iterations`; GANs trained for a fixed budget have decayed theirs towards zero too). A budget of
10,000 images ends while the networks are still moving fast; smaller steps at its end may settle them where they
are. 0.05 is that schedule's default."""

DENSITY_PRIOR_RADIUS_FACTORS = (0.5, 1.5)
"""The `density-prior-radius-xF` rows multiply the radius of the soft sphere a new generator renders by F: 0.3 and
0.9 for the default 0.6, inside the built-in sets' object sphere of radius 1 (the initial density's shape)."""

DENSITY_SOFTPLUS_SHIFT = 1.0
"""The `density-softplus` row's density activation, softplus(raw - 1): EG3D's, whose shift makes a raw density of 0
a faint 0.31 rather than softplus's 0.69."""

EMA_HALF_LIFE_FACTORS = (0.25, 4.0)
"""The `ema-xF` rows multiply the EMA's half-life and its ramp-up cap by F: at a budget of 10,000 images the ramp-up
(5% of the images seen) sets the half-life, 500 images at the end, so x0.25 shows a generator closer to the trained
one, x4 an average over more of its recent past."""

FMM_RANK_FACTORS = (0.5, 2.0)
"""The `fmm-rank-xF` rows multiply the rank of every target layer's modulation by F: how many directions each
object's weights can move in away from the shared ones (10 in the paper; the hypernetwork writes r (c_in + c_out)
numbers per layer, a few percent of an iteration's arithmetic)."""

ADA_SPEED_FACTOR = 100
"""The `ada-speed-x...` row divides `adjustment_images` (ADA's ada_kimg x 1000, 500,000) by this: p can then move by 1
in 5,000 images. At the default, a study of 10,000 images can raise p by 0.02 at most, however sure the discriminator
is of the reals, so ADA cannot act within the budgets the studies and the GPU check train for."""

PAPER_TARGET_WIDTH = 128
"""Width of the target MLP in the `paper-target-network` row: the paper's (and the GPU presets')."""

ANNEALING_FRACTION = 0.5
"""The annealing rows (coarse-to-fine frequencies, patch scale) anneal over this fraction of the study's images."""

ANNEALING_LENGTH_FACTORS = (0.5, 2.0)
"""The `frequency-annealing-xF` rows fade the octaves in over F times the method's annealing images: on
`hypernerfgan-tiny`, whose 5,000 images were set at half the 10,000-image budget and not tuned, 2,500 (the finest
octave from a quarter of the budget on) and 10,000 (coarse to fine over the whole budget)."""

INPUT_BLUR_SIGMA_FRACTION = 1 / 32
"""The `discriminator-blur` row blurs the discriminator's input with a Gaussian of this fraction of the patch's side
at the start (`hypernerfgan-tiny`'s 32 px: 1 px; the paper's 64 px patches: 2 px), fading out over the first part of
the budget. EG3D starts at 10 px of 512, a fiftieth of the side, over 200,000 images of its 25 million."""

INPUT_BLUR_SIGMA_FACTORS = (2.0,)
"""The `discriminator-blur-xF` rows start the blur F times as wide (`hypernerfgan-tiny`: 2 px)."""

GROWING_START_DOWNSCALES = (2, 4)
"""The `progressive-growing-xD` rows start at 1/D of the patch's side and double it until the full patch
(`hypernerfgan-tiny` x4: 8 x 8 whole images, then 16 and 32; the paper configuration x4: 16 x 16 patches of 32 x 32
images, then 32 of 64 and 64 of 128)."""

GROWING_STAGE_FRACTION = 0.2
"""Each of the `progressive-growing-xD` rows' coarse stages lasts this fraction of the study's images (x4: the first
40% at reduced resolution), the new block fading in over the first half of its stage."""


def dataparser_config(config: HyperNeRFGANTrainerConfig) -> UnposedImagesDataParserConfig:
    """The run's dataparser config with nerfstudio's `--data` alias applied, as the datamanager applies it."""
    datamanager = config.pipeline.datamanager
    parser = copy.deepcopy(datamanager.dataparser)
    if datamanager.data is not None:
        parser.data = datamanager.data
    return parser


@dataclass(frozen=True)
class AblationRow:
    """One row of the study: what it changes and the function that changes a copy of the method's config."""

    description: str
    """What the row changes, for the table."""
    change: Callable[[HyperNeRFGANTrainerConfig], None]
    """Edits the given config (a copy) in place."""


def keep_method(config: HyperNeRFGANTrainerConfig) -> None:
    """The baseline: the method as registered."""


def set_samples(coarse: int, importance: int) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """Samples per ray: `coarse` evenly spaced, plus `importance` placed where the coarse pass found density."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        config.pipeline.model.num_coarse_samples = coarse
        config.pipeline.model.num_importance_samples = importance

    return change


def place_share_by_importance(share: float) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """`share` of the method's samples per ray (coarse plus importance) placed by importance, the rest coarse: as
    many field evaluations per ray."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        model = config.pipeline.model
        samples = model.num_coarse_samples + model.num_importance_samples
        importance = round(share * samples)
        set_samples(samples - importance, importance)(config)

    return change


def set_patch_size(patch: int) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """Rendered and cropped patch side; the pipeline builds the discriminator for `datamanager.patch_size`."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        config.pipeline.datamanager.patch_size = patch

    return change


def train_on_whole_images(config: HyperNeRFGANTrainerConfig) -> None:
    """Patches as large as the training images: every object seen whole at the full resolution, by a discriminator
    built for it (one block more than for the paper's 64-pixel crops of 128-pixel images). Nothing is left to scale,
    so a method's whole-image patches become whole images."""
    cut_unscaled_crops(config)
    config.pipeline.datamanager.patch_size = dataparser_config(config).resolution


def cut_unscaled_crops(config: HyperNeRFGANTrainerConfig) -> None:
    """The reference's patches: each a crop of the photo at its own resolution, never scaled, each real pixel the
    photo pixel (whole-image patches, patch-scale annealing and how scaled patches read their reals back to their
    defaults). Takes `hypernerfgan-lite` back to the crops it trained on before its whole-image patches."""
    datamanager = config.pipeline.datamanager
    defaults = type(datamanager)()
    scaling = ("whole_image_patches", "whole_image_patch_phase", "scaled_real_patches", "patch_scale_annealing_images")
    for name in scaling:
        setattr(datamanager, name, getattr(defaults, name))


def scale_discriminator_width(factor: float, at_every_resolution: bool) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """The discriminator's `channel_base` times `factor`, and its `channel_max` too `at_every_resolution`."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        discriminator = config.pipeline.discriminator
        discriminator.channel_base = round(discriminator.channel_base * factor)
        if at_every_resolution:
            discriminator.channel_max = round(discriminator.channel_max * factor)

    return change


def disable_augmentation(config: HyperNeRFGANTrainerConfig) -> None:
    """p fixed at 0 and every augmentation's multiplier off; the dataset's x-flip of real photos stays."""
    config.pipeline.augment = dataclasses.replace(
        config.pipeline.augment, xflip=0.0, translation=0.0, cutout=0.0, color=0.0, initial_p=0.0, adaptive=False
    )


def speed_up_augmentation_adjustment(config: HyperNeRFGANTrainerConfig) -> None:
    """ADA's probability adjusted `ADA_SPEED_FACTOR` times faster: fewer images for p to move by 1."""
    augment = config.pipeline.augment
    config.pipeline.augment = dataclasses.replace(
        augment, adjustment_images=max(1, augment.adjustment_images // ADA_SPEED_FACTOR)
    )


def unbound_density(config: HyperNeRFGANTrainerConfig) -> None:
    """The reference field: density allowed anywhere between the near and far planes, the last interval infinite."""
    config.pipeline.model.bound_density_to_object = False
    config.pipeline.model.opaque_far_plane = True


def query_every_sample(config: HyperNeRFGANTrainerConfig) -> None:
    """The training MLP at every sample, also outside the object sphere: the same training in distribution (only
    the density noise of empty samples is drawn too), for its minutes."""
    config.pipeline.model.train_query_inside_bound_only = False


def compile_target_field(config: HyperNeRFGANTrainerConfig) -> None:
    """The training renders' target field compiled (`torch.compile`): the same training in distribution (the density
    noise is drawn by compiled code, from other random numbers), for its minutes."""
    config.pipeline.model.compile_target_field = True


def compile_discriminator(config: HyperNeRFGANTrainerConfig) -> None:
    """The discriminator's calls that are differentiated once compiled (`torch.compile`): the same training, for its
    minutes."""
    config.pipeline.discriminator.compile = True


def study_images(config: HyperNeRFGANTrainerConfig) -> int:
    """Training images of the study's budget (on one device)."""
    return config.max_num_iterations * config.pipeline.datamanager.batch_size


def scale_batch_size(factor: float) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """Batch size times `factor` at the same budget of images: the iterations change the other way."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        images = study_images(config)
        datamanager = config.pipeline.datamanager
        datamanager.batch_size = max(1, round(datamanager.batch_size * factor))
        config.max_num_iterations = math.ceil(images / datamanager.batch_size)

    return change


def anneal_frequencies(config: HyperNeRFGANTrainerConfig) -> None:
    """Positional-encoding octaves faded in coarse to fine over the first part of the budget."""
    config.pipeline.model.frequency_annealing_images = max(1, round(ANNEALING_FRACTION * study_images(config)))


def scale_frequency_annealing(factor: float) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """The octaves faded in over `factor` times the images the method anneals them over; nothing changed in a method
    that does not anneal them (the study skips such a row: `--on-top-of frequency-annealing` gives it a length)."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        model = config.pipeline.model
        if model.frequency_annealing_images > 0:  # a method that does not anneal has no length to scale
            model.frequency_annealing_images = max(1, round(model.frequency_annealing_images * factor))

    return change


def remove_frequency_annealing(config: HyperNeRFGANTrainerConfig) -> None:
    """Every octave of the positional encoding from the first image (the reference's field)."""
    config.pipeline.model.frequency_annealing_images = 0


def blur_discriminator_input(factor: float) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """EG3D's blur of the discriminator's input, `factor` times the row's sigma, faded out over the first part of
    the budget."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        blur = config.pipeline.input_blur
        blur.initial_sigma = factor * INPUT_BLUR_SIGMA_FRACTION * config.pipeline.datamanager.patch_size
        blur.fade_images = max(1, round(ANNEALING_FRACTION * study_images(config)))

    return change


def anneal_patch_scale(config: HyperNeRFGANTrainerConfig) -> None:
    """GRAF's patch-scale annealing over the first part of the budget."""
    config.pipeline.datamanager.patch_scale_annealing_images = max(1, round(ANNEALING_FRACTION * study_images(config)))


def condition_discriminator_on_patch_scale(config: HyperNeRFGANTrainerConfig) -> None:
    """EpiGRAF's scale-aware discriminator on GRAF's annealed patches: each patch's logit conditioned on its scale."""
    anneal_patch_scale(config)
    config.pipeline.discriminator.patch_scale_conditioning = True


def spread_patches_over_whole_image(config: HyperNeRFGANTrainerConfig) -> None:
    """GRAF's scaled patches at their largest scale only: each patch's P x P rays spread over the whole image (the
    object seen whole, at the patch's resolution), the real patches sampled at the same points."""
    config.pipeline.datamanager.whole_image_patches = True


def spread_patches_over_whole_image_at_random_phase(config: HyperNeRFGANTrainerConfig) -> None:
    """Whole-image patches whose rays pass through photo pixels' centres, every s-th pixel from a random first one per
    patch: each real pixel the photo pixel its ray passes through, every pixel of the frame some patch's ray."""
    spread_patches_over_whole_image(config)
    config.pipeline.datamanager.whole_image_patch_phase = "random"


def read_scaled_reals_at_nearest_pixels(
    row: Callable[[HyperNeRFGANTrainerConfig], None],
) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """`row`'s scaled patches with each real pixel the photo pixel its point falls in, not a bilinear blend."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        row(config)
        config.pipeline.datamanager.scaled_real_patches = "nearest"

    return change


def grow_progressively(start_downscale: int) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """pi-GAN's progressive growing from patches `start_downscale` times smaller, over the first part of the budget."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        stage_images = max(1, round(GROWING_STAGE_FRACTION * study_images(config)))
        config.pipeline.progressive_growing = ProgressiveGrowingConfig(
            start_downscale=start_downscale, images_per_stage=stage_images, fade_images=stage_images // 2
        )

    return change


def scale_fmm_rank(factor: float) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """The rank of every target layer's factorised modulation times `factor` (at least 1)."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        config.pipeline.model.fmm_rank = max(1, round(config.pipeline.model.fmm_rank * factor))

    return change


def use_paper_target_network(config: HyperNeRFGANTrainerConfig) -> None:
    """The paper's target MLP: its width, and the dataset preset's depth and skip (cars: 8 hidden layers, the input
    again after the fifth), where `hypernerfgan-tiny` has 3 layers of 64 and no skip."""
    config.pipeline.model.hidden_width = PAPER_TARGET_WIDTH
    config.pipeline.model.num_hidden_layers = None
    config.pipeline.model.skip_layer = None


def set_octaves(octaves: int) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """Positional-encoding octaves of the target field."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        config.pipeline.model.num_octaves = octaves

    return change


def scale_learning_rates(factor: float) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """Both networks' Adam learning rates times `factor`."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        for group in config.optimizers.values():
            group["optimizer"].lr *= factor

    return change


def scale_network_learning_rate(network: str, factor: float) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """One network's (`generator` or `discriminator`) Adam learning rate times `factor`."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        config.optimizers[network]["optimizer"].lr *= factor

    return change


def scale_mapping_learning_rate(factor: float) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """The mapping network's learning-rate multiplier times `factor`."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        config.pipeline.model.mapping_lr_multiplier *= factor

    return change


def set_adam_beta2(beta2: float) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """Both networks' Adam second-moment decay; the first (0: no momentum) is kept."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        for group in config.optimizers.values():
            optimizer = group["optimizer"]
            optimizer.betas = (optimizer.betas[0], beta2)

    return change


def warm_up_learning_rates(images: int) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """Both networks' learning rates ramped linearly from nothing to their rate over the iterations of `images`
    training images, then constant (nerfstudio's scheduler with no decay)."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        iterations = max(1, images // config.pipeline.datamanager.batch_size)
        for group in config.optimizers.values():
            group["scheduler"] = ExponentialDecaySchedulerConfig(
                lr_pre_warmup=0.0, warmup_steps=iterations, ramp="linear", max_steps=iterations + 1
            )

    return change


def decay_learning_rates(final_fraction: float) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """Both networks' rates decayed along a cosine from the method's to `final_fraction` of it over the study's
    iterations (as the config has them when the row is applied: `--on-top-of` rows come first)."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        for group in config.optimizers.values():
            group["scheduler"] = CosineDecaySchedulerConfig(
                warm_up_end=0, learning_rate_alpha=final_fraction, max_steps=config.max_num_iterations
            )

    return change


def scale_ema_half_life(factor: float) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """The generator EMA's half-life and its ramp-up cap times `factor`: training is unchanged, the evaluated
    generator averages over `factor` times as many images."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        ema = config.pipeline.ema
        ema.half_life_images *= factor
        if ema.rampup is not None:
            ema.rampup *= factor

    return change


def evaluate_the_trained_generator(config: HyperNeRFGANTrainerConfig) -> None:
    """The quality curve and the row's score render the generator being trained, not its EMA: what the average adds,
    from the same training (the EMA is still kept, so the checkpoint holds both)."""
    config.pipeline.model.render_with_ema = False


def remove_density_prior(config: HyperNeRFGANTrainerConfig) -> None:
    """No soft sphere added to the raw density: a new generator renders what its random weights make (the reference)."""
    config.pipeline.model.density_prior_slope = 0.0


def use_softplus_density(config: HyperNeRFGANTrainerConfig) -> None:
    """Density as EG3D makes it, a shifted softplus of the raw density, instead of its ReLU."""
    config.pipeline.model.density_softplus_shift = DENSITY_SOFTPLUS_SHIFT


def scale_density_prior_radius(factor: float) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """The radius of the soft sphere added to the raw density times `factor`: a new generator renders a smaller or
    larger blob, its raw density rising as steeply inside it (the same slope)."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        config.pipeline.model.density_prior_radius *= factor

    return change


def share_fakes(shared: bool) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """The G phase trains through the D phase's fakes (one render per iteration) or renders its own."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        config.pipeline.shared_fakes = shared

    return change


def remove_density_noise(config: HyperNeRFGANTrainerConfig) -> None:
    """Densities rendered as the field makes them: no regularising noise before the ReLU."""
    config.pipeline.model.density_noise_std = 0.0


def set_r1_interval(interval: int) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """R1 (and R2) every `interval` iterations, weighted by `interval`: the same average weight, more often."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        config.pipeline.loss.r1_interval = interval

    return change


def scale_r1_gamma(factor: float) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """R1 weight times `factor`: of the config's gamma, or of the dataset preset's when the config leaves it unset."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        loss = config.pipeline.loss
        if loss.r1_gamma is None:
            loss.r1_gamma = dataparser_config(config).setup().resolve_preset().r1_gamma
        loss.r1_gamma *= factor

    return change


def pair_reals_with_fakes(config: HyperNeRFGANTrainerConfig) -> None:
    """R3GAN's objective: the relativistic pairing loss, with R2 on the fakes at R1's weight."""
    config.pipeline.loss.objective = "relativistic"
    config.pipeline.loss.r2_gamma = None


ROWS: Dict[str, AblationRow] = {
    "baseline": AblationRow("the method as registered", keep_method),
    **{
        f"samples-{samples}": AblationRow(f"{samples} samples per ray, no importance sampling", set_samples(samples, 0))
        for samples in SAMPLES_PER_RAY
    },
    "importance-half": AblationRow(
        f"{IMPORTANCE_SHARE:.0%} of the samples per ray placed where the coarse rest found density (pi-GAN's "
        "hierarchical sampling), as many per ray",
        place_share_by_importance(IMPORTANCE_SHARE),
    ),
    **{
        f"patch-{patch}": AblationRow(f"{patch}x{patch} patches (and a discriminator for them)", set_patch_size(patch))
        for patch in PATCH_SIZES
    },
    "whole-images": AblationRow(
        "patches as large as the images (the objects seen whole, a discriminator for them)", train_on_whole_images
    ),
    **{
        f"discriminator-width-x{factor:g}": AblationRow(
            f"the discriminator's channels x{factor:g} at every resolution",
            scale_discriminator_width(factor, at_every_resolution=True),
        )
        for factor in DISCRIMINATOR_WIDTH_FACTORS
    },
    **{
        f"discriminator-base-x{factor:g}": AblationRow(
            f"the discriminator's channel_base x{factor:g}: {'fewer' if factor < 1 else 'more'} channels at the high "
            "resolutions only",
            scale_discriminator_width(factor, at_every_resolution=False),
        )
        for factor in DISCRIMINATOR_BASE_FACTORS
    },
    **{
        f"fmm-rank-x{factor:g}": AblationRow(
            f"the rank of each target layer's modulation x{factor:g} (per-object freedom of the weights)",
            scale_fmm_rank(factor),
        )
        for factor in FMM_RANK_FACTORS
    },
    "paper-target-network": AblationRow(
        f"the paper's target MLP: width {PAPER_TARGET_WIDTH}, the dataset preset's depth and skip",
        use_paper_target_network,
    ),
    "no-augmentation": AblationRow("no discriminator augmentation (p = 0, not adaptive)", disable_augmentation),
    f"ada-speed-x{ADA_SPEED_FACTOR}": AblationRow(
        f"ADA's p adjusted x{ADA_SPEED_FACTOR} faster (it can react within a budget of thousands of images)",
        speed_up_augmentation_adjustment,
    ),
    "no-density-bound": AblationRow("density not bounded to the object sphere (the reference field)", unbound_density),
    **{
        f"octaves-{octaves}": AblationRow(
            f"{octaves} positional-encoding octaves (the finest period {2 * math.pi / 2 ** (octaves - 1):.2f} units)",
            set_octaves(octaves),
        )
        for octaves in OCTAVE_COUNTS
    },
    **{
        f"lr-x{factor:g}": AblationRow(f"both learning rates x{factor:g}", scale_learning_rates(factor))
        for factor in LEARNING_RATE_FACTORS
    },
    **{
        f"{network}-lr-x{factor:g}": AblationRow(
            f"the {network}'s learning rate x{factor:g}", scale_network_learning_rate(network, factor)
        )
        for network in ("generator", "discriminator")
        for factor in SINGLE_NETWORK_LR_FACTORS
    },
    **{
        f"batch-x{factor:g}": AblationRow(
            f"batch x{factor:g}, iterations x{1 / factor:g}: the same images, x{1 / factor:g} the updates",
            scale_batch_size(factor),
        )
        for factor in BATCH_SIZE_FACTORS
    },
    f"mapping-lr-x{MAPPING_LR_FACTOR:g}": AblationRow(
        f"the mapping network's learning-rate multiplier x{MAPPING_LR_FACTOR:g}",
        scale_mapping_learning_rate(MAPPING_LR_FACTOR),
    ),
    "no-density-noise": AblationRow("no Gaussian noise on the raw density in training", remove_density_noise),
    "no-density-prior": AblationRow(
        "no soft sphere added to the raw density at initialisation (the reference field)", remove_density_prior
    ),
    **{
        f"density-prior-radius-x{factor:g}": AblationRow(
            f"the initial density's soft sphere x{factor:g} in radius", scale_density_prior_radius(factor)
        )
        for factor in DENSITY_PRIOR_RADIUS_FACTORS
    },
    "density-softplus": AblationRow(
        f"density softplus(raw - {DENSITY_SOFTPLUS_SHIFT:g}), EG3D's, instead of relu(raw)", use_softplus_density
    ),
    f"adam-beta2-{ADAM_BETA2:g}": AblationRow(
        f"both networks' Adam beta2 {ADAM_BETA2:g} (pi-GAN's)", set_adam_beta2(ADAM_BETA2)
    ),
    "lr-warmup": AblationRow(
        f"both learning rates ramped up linearly over the first {LR_WARMUP_IMAGES:,} images",
        warm_up_learning_rates(LR_WARMUP_IMAGES),
    ),
    "lr-cosine-decay": AblationRow(
        f"both learning rates decayed along a cosine to {LR_DECAY_FINAL_FRACTION:g} of theirs by the last iteration",
        decay_learning_rates(LR_DECAY_FINAL_FRACTION),
    ),
    **{
        f"ema-x{factor:g}": AblationRow(
            f"the generator EMA's half-life and ramp-up x{factor:g} (training unchanged)", scale_ema_half_life(factor)
        )
        for factor in EMA_HALF_LIFE_FACTORS
    },
    "no-ema": AblationRow("the trained generator scored instead of its EMA (training unchanged)",
                          evaluate_the_trained_generator),
    "frequency-annealing": AblationRow(
        f"positional-encoding octaves faded in coarse to fine over the first {ANNEALING_FRACTION:.0%} of the images",
        anneal_frequencies,
    ),
    **{
        f"frequency-annealing-x{factor:g}": AblationRow(
            f"the positional-encoding octaves faded in over x{factor:g} the method's images",
            scale_frequency_annealing(factor),
        )
        for factor in ANNEALING_LENGTH_FACTORS
    },
    "no-frequency-annealing": AblationRow(
        "every positional-encoding octave from the start (the reference)", remove_frequency_annealing
    ),
    "discriminator-blur": AblationRow(
        f"EG3D's blur of the discriminator's input: a Gaussian of sigma 1/{round(1 / INPUT_BLUR_SIGMA_FRACTION)} of "
        f"the patch's side fading out over the first {ANNEALING_FRACTION:.0%} of the images",
        blur_discriminator_input(1.0),
    ),
    **{
        f"discriminator-blur-x{factor:g}": AblationRow(
            f"that blur of the discriminator's input {factor:g} times as wide",
            blur_discriminator_input(factor),
        )
        for factor in INPUT_BLUR_SIGMA_FACTORS
    },
    "patch-scale-annealing": AblationRow(
        f"GRAF's patch scale: whole-image patches shrinking over the first {ANNEALING_FRACTION:.0%} of the images",
        anneal_patch_scale,
    ),
    "patch-scale-conditioning": AblationRow(
        "GRAF's patch-scale annealing with EpiGRAF's discriminator told each patch's scale",
        condition_discriminator_on_patch_scale,
    ),
    "crops": AblationRow("unscaled crops of the photos, the reference's patches", cut_unscaled_crops),
    "whole-image-patches": AblationRow(
        "each patch's rays spread over the whole image (GRAF's largest scale, never sharpened)",
        spread_patches_over_whole_image,
    ),
    "patch-scale-annealing-nearest": AblationRow(
        "GRAF's patch-scale annealing with each real pixel the photo pixel its ray's point falls in, not a blend",
        read_scaled_reals_at_nearest_pixels(anneal_patch_scale),
    ),
    "whole-image-patches-nearest": AblationRow(
        "each patch's rays spread over the whole image, each real pixel the photo pixel its point falls in",
        read_scaled_reals_at_nearest_pixels(spread_patches_over_whole_image),
    ),
    "whole-image-patches-random-phase": AblationRow(
        "each patch's rays spread over the whole image through every s-th pixel's centre from a random first one, "
        "each real pixel the photo pixel its ray passes through",
        spread_patches_over_whole_image_at_random_phase,
    ),
    **{
        f"progressive-growing-x{start}": AblationRow(
            f"pi-GAN's progressive growing: patches {start}x smaller on a side first, doubled after each "
            f"{GROWING_STAGE_FRACTION:.0%} of the images",
            grow_progressively(start),
        )
        for start in GROWING_START_DOWNSCALES
    },
    **{
        f"r1-gamma-x{factor:g}": AblationRow(f"R1 weight x{factor:g}", scale_r1_gamma(factor))
        for factor in R1_GAMMA_FACTORS
    },
    f"r1-every-{R1_INTERVAL}": AblationRow(
        f"R1 every {R1_INTERVAL} iterations instead of the method's, the same average weight",
        set_r1_interval(R1_INTERVAL),
    ),
    "relativistic": AblationRow(
        "R3GAN's objective: each fake's logit against a paired real's (RpGAN), R1 and R2 at one weight",
        pair_reals_with_fakes,
    ),
    "query-every-sample": AblationRow(
        "the target MLP run at every sample in training, also outside the object sphere", query_every_sample
    ),
    "compiled-target-field": AblationRow(
        "the training renders' target field compiled (torch.compile): the same training, faster", compile_target_field
    ),
    "compiled-discriminator": AblationRow(
        "the discriminator's plain calls compiled (torch.compile): the same training, faster", compile_discriminator
    ),
    "shared-fakes": AblationRow(
        "the G phase trains through the D phase's fakes: one render per iteration (DCGAN's loop)", share_fakes(True)
    ),
    "separate-fakes": AblationRow(
        "each phase renders its own fakes from its own latents and cameras (StyleGAN2's loop)", share_fakes(False)
    ),
}
"""Every row of the study by name, in the order of the table."""
