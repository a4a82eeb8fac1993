"""`hypernerfgan ablate`: the ablations the seeds ran by hand (samples per ray, patch size, augmentation, R1), as one
reproducible study.

    hypernerfgan ablate --method hypernerfgan-tiny --data cars --iterations 400 --output ablations/tiny-cars

Every row changes one thing of the method, trains it in-process on the same number of images from the same seed
(as ns-train seeds), scores its EMA generator (SWD always; FID and KID when Inception weights are on the
machine) and renders a sheet of seeds x views. Per row, in `DIR/<row>/`:

    <method>/<timestamp>/   a normal nerfstudio run: config.yml, nerfstudio_models/, tensorboard logs
                            (open it with ns-viewer, ns-render, ns-eval, hypernerfgan samples)
    samples.png             the sample sheet
    scored_samples.zip      without the Inception weights only: the scored samples, for FID where the weights are
    study.json              the study's settings, written when the row starts
    result.json             scores and timings, written last: its presence means the row is finished

and for the study `DIR/ablation.md` (the table) and `DIR/ablation.json`, rewritten after every row, and
`DIR/curves.png`, the rows' quality curves (`metrics.quality_curve`) side by side. A row that does
not fit the method (a patch larger than its images) is skipped with the reason; a row whose training fails
(divergence, out of memory) is recorded as failed and the study goes on. Rerunning the same command continues an
interrupted study: finished rows are reused, an unfinished row continues from its last checkpoint (Ctrl-C and a time
limit's SIGTERM save one; a lost session leaves the last periodic one), failed ones are trained again; where the
weights are, it also adds FID and KID to finished rows scored without them (a study run on a GPU machine that lacks
them).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Literal, Optional, Sequence, Tuple

import torch
from rich.markup import escape
from rich.table import Table

from hypernerfgan_ns.data.cache import atomic_output
from hypernerfgan_ns.data.dataparsers.unposed_images_dataparser import UnposedImagesDataParserConfig
from hypernerfgan_ns.engine.in_process import own_event_writers, release_memory
from hypernerfgan_ns.engine.trainer import (
    INTERRUPTED_EXIT_CODES,
    HyperNeRFGANTrainer,
    HyperNeRFGANTrainerConfig,
    saved_checkpoints,
)
from hypernerfgan_ns.errors import ConfigError, HyperNeRFGANError, InceptionUnavailableError, TrainingDivergedError
from hypernerfgan_ns.method_configs import METHODS, method_config
from hypernerfgan_ns.metrics.evaluation import GANEvaluationConfig, evaluate_generator, without_inception_metrics
from hypernerfgan_ns.metrics.inception import find_inception_weights
from hypernerfgan_ns.metrics.quality_curve import METRICS_FILENAME
from hypernerfgan_ns.metrics.sample_archive import evaluate_keeping_samples
from hypernerfgan_ns.scripts.plot_curves import PlotCommand
from hypernerfgan_ns.scripts.samples import SamplesCommand
from hypernerfgan_ns.scripts.score_samples import RealSummaries, score_kept_samples
from hypernerfgan_ns.training.progressive_growing import ProgressiveGrowingConfig
from nerfstudio.scripts.train import _set_random_seed
from nerfstudio.utils.rich_utils import CONSOLE

SAMPLES_PER_RAY = (8, 16, 32, 64)
"""Coarse samples per ray of the `samples-N` rows: the seeds' sweep, from too few for a solid surface to the paper's."""

IMPORTANCE_ROW_COARSE, IMPORTANCE_ROW_IMPORTANCE = 16, 16
"""The `samples-C+I` row: C coarse plus I importance samples placed where the coarse pass found the surface. The
second pass evaluates C + I + 1 samples (nerfstudio's PDF sampler keeps the coarse ones and adds one), so 16+16 costs
49 field evaluations per ray, about 1.5 times `samples-32`."""

PATCH_SIZES = (8, 16, 32, 64)
"""Patch sides of the `patch-N` rows; the discriminator is built for the patch, so it changes with it."""

R1_GAMMA_FACTORS = (0.1, 10.0)
"""The `r1-gamma-xF` rows multiply the R1 weight by F: a tenth (chairs' preset uses a tenth of the others') and ten
times (a smoother discriminator, which may let a faster learning rate stay stable)."""

FEW_OCTAVES = 4
"""Positional-encoding octaves of the `octaves-4` row: a highest frequency of 2^3, whose period (0.8 units) spans
several pixels at every resolution the methods train at, where 6 or 10 octaves reach the pixel scale."""

LEARNING_RATE_FACTORS = (0.25, 2.0, 4.0, 8.0)
"""The `lr-xF` rows multiply both networks' learning rates by F. The paper's 0.0025 (StyleGAN's) is tuned for runs
of millions of images, not for the first ten thousand; x4 of it is the tiny preset's 0.01, and x0.25 takes the tiny
preset back to the paper's rate. x8 of the paper's rate is past the edge of stability on the tiny preset (its samples
collapse into stripes), so the sweep brackets the best factor."""

SINGLE_NETWORK_LR_FACTORS = (0.25, 2.0)
"""The `generator-lr-xF` and `discriminator-lr-xF` rows multiply one network's learning rate by F. x2 on top of
`lr-x4` asks which network's speed the cliff at x8 belongs to; x0.25 on the tiny preset (both at 0.01) puts one
network back at the paper's 0.0025: `discriminator-lr-x0.25` is the fast generator beside the paper's discriminator,
the candidate for presets whose wider discriminator is unstable at 0.01."""

MAPPING_LR_FACTOR = 10.0
"""The `mapping-lr-x...` row multiplies the mapping network's learning-rate multiplier (StyleGAN's 0.01) by this."""

BATCH_SIZE_FACTORS = (0.5, 2.0)
"""The `batch-xF` rows multiply the batch by F and divide the iterations by F: the same images seen, F times fewer
updates (x2 gives the tiny preset the batch of 8 it had before the faster recipe)."""

DISCRIMINATOR_WIDTH_FACTORS = (0.5,)
"""The `discriminator-width-xF` rows multiply the discriminator's channels at every resolution by F (its
`channel_base` and `channel_max`): its arithmetic, more than half of the paper configuration's iteration (1,055 of
1,932 GFLOP, `hypernerfgan bench`), by about F^2."""

DISCRIMINATOR_BASE_FACTORS = (0.5, 2.0)
"""The `discriminator-base-xF` rows multiply `channel_base` alone: the channels at the high resolutions, where
`channel_base / resolution` is below `channel_max` and most of the arithmetic is (the paper configuration's first
block, 512 channels at 64 x 64, is 792 of those 1,055 GFLOP), while the low resolutions keep `channel_max`. x2 gives
`hypernerfgan-tiny` the discriminator it had before it took x0.5."""

ADAM_BETA2 = 0.9
"""Adam's second-moment decay of the `adam-beta2-...` row, for both networks: pi-GAN's 0.9, where StyleGAN (and the
paper) take 0.99. A shorter memory of gradient magnitudes adapts the step sooner to a fast-changing opponent."""

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

PATCH_SCALE_NEVER_SHRINKS = 1 << 60
"""Patch-scale annealing images of the `whole-image-patches` row: more than any study sees, so the smallest footprint
stays the whole image (to float precision) and every patch's rays spread over the whole image."""

GROWING_START_DOWNSCALES = (2, 4)
"""The `progressive-growing-xD` rows start at 1/D of the patch's side and double it until the full patch
(`hypernerfgan-tiny` x4: 8 x 8 whole images, then 16 and 32; the paper configuration x4: 16 x 16 patches of 32 x 32
images, then 32 of 64 and 64 of 128)."""

GROWING_STAGE_FRACTION = 0.2
"""Each of the `progressive-growing-xD` rows' coarse stages lasts this fraction of the study's images (x4: the first
40% at reduced resolution), the new block fading in over the first half of its stage."""

DEFAULT_NUM_GENERATED = 256
"""EMA samples scored per row: enough for a stable SWD, few enough for a CPU study."""

DEFAULT_SAMPLE_SEEDS = 4
"""Objects (rows) on each sample sheet."""

DEFAULT_SAMPLE_VIEWS = 4
"""Views (columns) per object on each sample sheet: 90 degrees apart."""

STUDY_VISUALIZER = "tensorboard"
"""Rows log to tensorboard only: a viewer would start a server per row and wait for a user after training."""

RESULT_FILENAME = "result.json"
"""A row's scores; written last, so that its presence marks a finished row."""

STUDY_FILENAME = "study.json"
"""The study's settings, written when a row starts: an unfinished run continues only under the settings it began
with."""

SAMPLES_FILENAME = "samples.png"
"""A row's sample sheet."""

KEPT_SAMPLES_FILENAME = "scored_samples.zip"
"""A row's scored samples, kept when FID could not be computed, for a rerun where the Inception weights are."""

REPORT_MARKDOWN = "ablation.md"
"""The study's table."""

REPORT_JSON = "ablation.json"
"""The study's results, machine-readable."""

CURVES_FILENAME = "curves.png"
"""The rows' quality curves in one figure."""

FID_UNAVAILABLE = "n/a: no Inception weights"
"""FID cell of rows scored without Inception weights."""

FID_NOT_ASKED = "n/a: not in the evaluation's metrics"
"""FID cell when the method's evaluation config leaves FID out."""

NOT_APPLICABLE = "-"
"""Cell of a value a skipped or failed row does not have."""

RowStatus = Literal["done", "failed", "skipped", "pending"]


class AblationError(HyperNeRFGANError):
    """A study that cannot run as asked: bad options, or an output folder holding another study's rows."""


# ----------------------------------------------------------------------------------------------------------------------
# The rows.


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


def set_patch_size(patch: int) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """Rendered and cropped patch side; the pipeline builds the discriminator for `datamanager.patch_size`."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        config.pipeline.datamanager.patch_size = patch

    return change


def train_on_whole_images(config: HyperNeRFGANTrainerConfig) -> None:
    """Patches as large as the training images: every object seen whole at the full resolution, by a discriminator
    built for it (one block more than for the paper's 64-pixel crops of 128-pixel images)."""
    config.pipeline.datamanager.patch_size = dataparser_config(config).resolution


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


def remove_frequency_annealing(config: HyperNeRFGANTrainerConfig) -> None:
    """Every octave of the positional encoding from the first image (the reference's field)."""
    config.pipeline.model.frequency_annealing_images = 0


def anneal_patch_scale(config: HyperNeRFGANTrainerConfig) -> None:
    """GRAF's patch-scale annealing over the first part of the budget."""
    config.pipeline.datamanager.patch_scale_annealing_images = max(1, round(ANNEALING_FRACTION * study_images(config)))


def spread_patches_over_whole_image(config: HyperNeRFGANTrainerConfig) -> None:
    """GRAF's scaled patches at their largest scale only: each patch's P x P rays spread over the whole image (the
    object seen whole, at the patch's resolution), the real patches sampled at the same points."""
    config.pipeline.datamanager.patch_scale_annealing_images = PATCH_SCALE_NEVER_SHRINKS


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


def scale_ema_half_life(factor: float) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """The generator EMA's half-life and its ramp-up cap times `factor`: training is unchanged, the evaluated
    generator averages over `factor` times as many images."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        ema = config.pipeline.ema
        ema.half_life_images *= factor
        if ema.rampup is not None:
            ema.rampup *= factor

    return change


def remove_density_prior(config: HyperNeRFGANTrainerConfig) -> None:
    """No soft sphere added to the raw density: a new generator renders what its random weights make (the reference)."""
    config.pipeline.model.density_prior_slope = 0.0


def share_fakes(shared: bool) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """The G phase trains through the D phase's fakes (one render per iteration) or renders its own."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        config.pipeline.shared_fakes = shared

    return change


def remove_density_noise(config: HyperNeRFGANTrainerConfig) -> None:
    """Densities rendered as the field makes them: no regularising noise before the ReLU."""
    config.pipeline.model.density_noise_std = 0.0


def scale_r1_gamma(factor: float) -> Callable[[HyperNeRFGANTrainerConfig], None]:
    """R1 weight times `factor`: of the config's gamma, or of the dataset preset's when the config leaves it unset."""

    def change(config: HyperNeRFGANTrainerConfig) -> None:
        loss = config.pipeline.loss
        if loss.r1_gamma is None:
            loss.r1_gamma = dataparser_config(config).setup().resolve_preset().r1_gamma
        loss.r1_gamma *= factor

    return change


ROWS: Dict[str, AblationRow] = {
    "baseline": AblationRow("the method as registered", keep_method),
    **{
        f"samples-{samples}": AblationRow(f"{samples} samples per ray, no importance sampling", set_samples(samples, 0))
        for samples in SAMPLES_PER_RAY
    },
    f"samples-{IMPORTANCE_ROW_COARSE}+{IMPORTANCE_ROW_IMPORTANCE}": AblationRow(
        f"{IMPORTANCE_ROW_COARSE} coarse + {IMPORTANCE_ROW_IMPORTANCE} importance samples per ray",
        set_samples(IMPORTANCE_ROW_COARSE, IMPORTANCE_ROW_IMPORTANCE),
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
            f"the discriminator's channels x{factor:g} at every resolution", scale_discriminator_width(factor, at_every_resolution=True)
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
    f"octaves-{FEW_OCTAVES}": AblationRow(
        f"{FEW_OCTAVES} positional-encoding octaves (no stripes at the pixel scale)", set_octaves(FEW_OCTAVES)
    ),
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
    f"adam-beta2-{ADAM_BETA2:g}": AblationRow(
        f"both networks' Adam beta2 {ADAM_BETA2:g} (pi-GAN's)", set_adam_beta2(ADAM_BETA2)
    ),
    **{
        f"ema-x{factor:g}": AblationRow(
            f"the generator EMA's half-life and ramp-up x{factor:g} (training unchanged)", scale_ema_half_life(factor)
        )
        for factor in EMA_HALF_LIFE_FACTORS
    },
    "frequency-annealing": AblationRow(
        f"positional-encoding octaves faded in coarse to fine over the first {ANNEALING_FRACTION:.0%} of the images",
        anneal_frequencies,
    ),
    "no-frequency-annealing": AblationRow(
        "every positional-encoding octave from the start (the reference)", remove_frequency_annealing
    ),
    "patch-scale-annealing": AblationRow(
        f"GRAF's patch scale: whole-image patches shrinking over the first {ANNEALING_FRACTION:.0%} of the images",
        anneal_patch_scale,
    ),
    "whole-image-patches": AblationRow(
        "each patch's rays spread over the whole image (GRAF's largest scale, never sharpened)",
        spread_patches_over_whole_image,
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
    "query-every-sample": AblationRow(
        "the target MLP run at every sample in training, also outside the object sphere", query_every_sample
    ),
    "shared-fakes": AblationRow(
        "the G phase trains through the D phase's fakes: one render per iteration (DCGAN's loop)", share_fakes(True)
    ),
    "separate-fakes": AblationRow(
        "each phase renders its own fakes from its own latents and cameras (StyleGAN2's loop)", share_fakes(False)
    ),
}
"""Every row of the study by name, in the order of the table."""

RowName = Literal[tuple(ROWS)]  # type: ignore[valid-type]
"""A registered row name (tyro lists them in --help)."""

MethodName = Literal[tuple(METHODS)]  # type: ignore[valid-type]
"""A registered HyperNeRFGAN method."""


def dataparser_config(config: HyperNeRFGANTrainerConfig) -> UnposedImagesDataParserConfig:
    """The run's dataparser config with nerfstudio's `--data` alias applied, as the datamanager applies it."""
    datamanager = config.pipeline.datamanager
    parser = copy.deepcopy(datamanager.dataparser)
    if datamanager.data is not None:
        parser.data = datamanager.data
    return parser


def row_config(base: HyperNeRFGANTrainerConfig, row: str) -> HyperNeRFGANTrainerConfig:
    """A copy of `base` with the row's change applied (`base` is left as it was)."""
    if row not in ROWS:
        raise AblationError(f"Unknown ablation row '{row}'. The rows are: {', '.join(ROWS)}.")
    config = copy.deepcopy(base)
    ROWS[row].change(config)
    return config


def unfit_reason(config: HyperNeRFGANTrainerConfig) -> Optional[str]:
    """Why a row's config cannot be trained with this method, or None: checked before any work, so it is skipped."""
    patch = config.pipeline.datamanager.patch_size
    resolution = dataparser_config(config).resolution
    if patch > resolution:
        return f"patch {patch} is larger than the method's {resolution}x{resolution} images"
    if config.pipeline.datamanager.patch_scale_annealing_images > 0 and patch == resolution:
        return f"patches already cover the method's whole {resolution}x{resolution} images: no scale to anneal"
    smallest = config.pipeline.discriminator.final_resolution
    if patch < smallest or patch & (patch - 1):
        return f"the discriminator takes power-of-two patches of at least {smallest}, not {patch}"
    return config.pipeline.progressive_growing.unfit_reason(
        patch_size=patch,
        resolution=resolution,
        smallest_patch=smallest,
        patch_scale_annealing=config.pipeline.datamanager.patch_scale_annealing_images > 0,
    )


def config_values(value: Any, prefix: str = "") -> Dict[str, Any]:
    """Every leaf field of a nested config by dotted name."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        values: Dict[str, Any] = {}
        for config_field in dataclasses.fields(value):
            values.update(config_values(getattr(value, config_field.name), f"{prefix}{config_field.name}."))
        return values
    return {prefix.rstrip("."): value}


def config_changes(before: HyperNeRFGANTrainerConfig, after: HyperNeRFGANTrainerConfig) -> Dict[str, List[Any]]:
    """The fields a row changed, as {dotted name: [method's value, row's value]}: what was really trained."""
    old, new = config_values(before), config_values(after)
    return {name: [old.get(name), value] for name, value in new.items() if old.get(name) != value}


# ----------------------------------------------------------------------------------------------------------------------
# Results.


@dataclass
class RowResult:
    """What the study knows about one row; a finished row's is stored in `DIR/<row>/result.json`."""

    row: str
    """The row's name."""
    description: str
    """What the row changes."""
    status: RowStatus
    """done (trained and scored), failed, skipped (does not fit the method), or pending (not run yet)."""
    study: Dict[str, Any]
    """The study's settings; a stored row is reused only by a study with the same ones."""
    changes: Dict[str, List[Any]] = field(default_factory=dict)
    """Config fields the row changed: {dotted name: [method's value, row's value]}."""
    iterations: Optional[int] = None
    """Iterations trained (fewer than asked when training failed)."""
    train_seconds: Optional[float] = None
    """Wall-clock seconds of training (setup and scoring, the quality curve's included, excluded)."""
    eval_seconds: Optional[float] = None
    """Wall-clock seconds of scoring and the sample sheet."""
    metrics: Dict[str, float] = field(default_factory=dict)
    """`evaluate_generator`'s results: swd, and fid, kid, kid_std with Inception weights."""
    fid_note: Optional[str] = None
    """Why there is no FID, if there is none."""
    message: Optional[str] = None
    """Why the row was skipped or failed."""
    config: Optional[str] = None
    """The run's config.yml, relative to the study folder."""
    samples: Optional[str] = None
    """The sample sheet, relative to the study folder."""
    kept_samples: Optional[str] = None
    """The scored samples as PNGs, relative to the study folder, when FID was left out for want of the Inception
    weights: the same command run where the weights are adds FID and KID from them."""

    def cells(self) -> List[str]:
        """The row of the table: row, what it changes, iterations, seconds, SWD, FID, samples."""
        changes = self.description if self.changes or self.row == "baseline" else f"{self.description} (= the method)"
        if self.status == "done":
            fid = self.metrics.get("fid")
            return [
                self.row,
                changes,
                str(self.iterations),
                f"{self.train_seconds:.0f}",
                f"{self.metrics['swd']:.2f}",
                f"{fid:.2f}" if fid is not None else (self.fid_note or NOT_APPLICABLE),
                self.samples or NOT_APPLICABLE,
            ]
        first_line = (self.message or "").strip().splitlines()[0] if self.message else ""
        status = f"{self.status}: {first_line}" if first_line else self.status
        iterations = str(self.iterations) if self.iterations is not None else NOT_APPLICABLE
        seconds = f"{self.train_seconds:.0f}" if self.train_seconds is not None else NOT_APPLICABLE
        return [self.row, changes, iterations, seconds, status, NOT_APPLICABLE, NOT_APPLICABLE]


TABLE_HEADER = ("row", "what it changes", "iterations", "seconds", "SWD", "FID", "samples")
"""Columns of the table. seconds: training wall-clock without the quality curve's scoring; SWD (x1000) and FID: lower
is better."""


def write_json(path: Path, value: Any) -> None:
    """Writes JSON atomically: readers never see half a file, an interruption leaves the old one."""
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(value, indent=2, default=str) + "\n", encoding="utf8")


def markdown_cell(text: str, link: bool = False) -> str:
    """A table cell: pipes escaped, and a relative link to a file when asked."""
    escaped = text.replace("|", "\\|")
    return f"[{escaped}]({text})" if link and text != NOT_APPLICABLE else escaped


def markdown_table(results: Sequence[RowResult]) -> str:
    """The study as a Markdown table; the samples column links to each sheet."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + " --- |" * len(TABLE_HEADER)]
    for result in results:
        cells = result.cells()
        cells = [markdown_cell(cell, link=index == len(cells) - 1) for index, cell in enumerate(cells)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def console_table(results: Sequence[RowResult], title: str) -> Table:
    """The study as a rich table."""
    table = Table(title=title)
    for name in TABLE_HEADER:
        table.add_column(name, justify="right" if name in ("iterations", "seconds", "SWD", "FID") else "left")
    for result in results:
        table.add_row(*(escape(cell) for cell in result.cells()))
    return table


# ----------------------------------------------------------------------------------------------------------------------
# Running rows.


def training_failure(error: SystemExit) -> Optional[str]:
    """The message of a training that failed on its own (it diverged, or the row's options cannot work); None for an
    exit the study must not absorb (the data, an interruption).

    The trainer turns its errors into SystemExit after printing them; the original error is the exit's context.
    """
    original = error.__context__
    if isinstance(original, ConfigError):
        return str(original)
    if isinstance(original, TrainingDivergedError) or error.code == TrainingDivergedError.exit_code:
        return str(original) if original is not None else f"training diverged (exit status {error.code})"
    return None


@dataclass
class AblationStudy:
    """Trains, scores and tabulates rows of one method; `run` is the whole study, `run_row` one row."""

    base: HyperNeRFGANTrainerConfig
    """The method's config with the study's data, iterations and seed applied; rows change copies of it."""
    output: Path
    """The study folder: one folder per row, and the table."""
    num_generated: int = DEFAULT_NUM_GENERATED
    """EMA samples scored per row (against all training images)."""
    sample_seeds: int = DEFAULT_SAMPLE_SEEDS
    """Objects on each sample sheet."""
    sample_views: int = DEFAULT_SAMPLE_VIEWS
    """Views per object on each sample sheet."""
    on_top_of: Tuple[str, ...] = ()
    """Rows whose changes every row starts from, the baseline included: a study of the other candidates around a
    kept one (`lr-x4`), so that combinations need no rows of their own."""

    def __post_init__(self) -> None:
        # Absolute, so that the runs' config.yml open from any folder (nerfstudio stores output_dir as given).
        self.output = Path(self.output).expanduser().resolve()
        if self.output.exists() and not self.output.is_dir():
            raise AblationError(
                f"{self.output} is a file; --output names the study's folder (a new one, or an earlier study's to "
                "continue it)."
            )
        self.on_top_of = tuple(dict.fromkeys(self.on_top_of))
        if self.on_top_of:
            self.base = copy.deepcopy(self.base)
            for row in self.on_top_of:
                if row not in ROWS:
                    raise AblationError(f"Unknown row '{row}' in --on-top-of. The rows are: {', '.join(ROWS)}.")
                ROWS[row].change(self.base)
        for option, value in {
            "--iterations": self.base.max_num_iterations,
            "--num-generated": self.num_generated,
            "--sample-seeds": self.sample_seeds,
            "--sample-views": self.sample_views,
        }.items():
            if value < 1:
                raise AblationError(f"{option} must be at least 1, got {value}.")

    @property
    def settings(self) -> Dict[str, Any]:
        """What makes two rows comparable: a stored row is reused only under the same settings."""
        return {
            "method": self.base.method_name,
            "data": str(dataparser_config(self.base).data),
            "iterations": self.base.max_num_iterations,
            "seed": self.base.machine.seed,
            "num_generated": self.num_generated,
            # Only when set, so that the rows of studies made before the option are still reused.
            **({"on_top_of": list(self.on_top_of)} if self.on_top_of else {}),
        }

    def evaluation_config(self) -> Tuple[GANEvaluationConfig, Optional[str]]:
        """The scoring protocol of every row, and why FID is left out (None when it is computed)."""
        base = self.base.pipeline.evaluation
        metrics = tuple(base.metrics) + (() if "swd" in base.metrics else ("swd",))
        evaluation = dataclasses.replace(
            base, metrics=metrics, num_generated=self.num_generated, seed=self.base.machine.seed
        )
        if "fid" not in metrics:
            return evaluation, FID_NOT_ASKED
        try:
            find_inception_weights(evaluation.inception_weights)
        except InceptionUnavailableError as error:
            CONSOLE.print(f"[yellow]FID/KID: {FID_UNAVAILABLE}; every row is scored by SWD only.[/yellow]")
            CONSOLE.print(escape(str(error)))
            return without_inception_metrics(evaluation), FID_UNAVAILABLE
        return evaluation, None

    # ------------------------------------------------------------------ the study

    def run(self, rows: Optional[Sequence[str]] = None) -> List[RowResult]:
        """Runs the rows (all by default) in the table's order; writes the report after each and returns it."""
        requested = list(ROWS) if rows is None else list(dict.fromkeys(rows))
        unknown = [row for row in requested if row not in ROWS]
        if unknown:
            raise AblationError(f"Unknown ablation rows {unknown}. The rows are: {', '.join(ROWS)}.")
        self.output.mkdir(parents=True, exist_ok=True)
        evaluation, fid_note = self.evaluation_config()
        results = {row: self.stored_result(row) or self.pending(row) for row in ROWS if row in requested}
        # Rows of this study finished by earlier commands stay in the table.
        results.update({row: self.stored_result(row, quiet=True) for row in ROWS if row not in requested})
        results = {row: result for row, result in results.items() if result is not None}
        if fid_note is None:
            self.add_missing_fid(results.values(), evaluation)
        order = [row for row in ROWS if row in results]
        self.write_report([results[row] for row in order])
        for row in order:
            if results[row].status == "pending":
                results[row] = self.run_row(row, evaluation, fid_note)
                self.write_report([results[row] for row in order])
        final = [results[row] for row in order]
        CONSOLE.print(console_table(final, self.title()))
        CONSOLE.print(f"[bold green]Wrote[/bold green] {self.output / REPORT_MARKDOWN} and {self.output / REPORT_JSON}")
        self.plot_curves(final)
        return final

    def plot_curves(self, results: Sequence[RowResult]) -> None:
        """DIR/curves.png: the quality curves of the finished rows that recorded one."""
        curves = {
            result.row: self.output / Path(result.config).parent / METRICS_FILENAME
            for result in results
            if result.status == "done" and result.config is not None
        }
        curves = {row: path for row, path in curves.items() if path.is_file()}
        if curves:
            PlotCommand(
                runs=tuple(curves.values()), output=self.output / CURVES_FILENAME, labels=tuple(curves),
                title=self.title(),
            ).main()

    def add_missing_fid(self, results: Iterable[RowResult], evaluation: GANEvaluationConfig) -> None:
        """Adds FID and KID to finished rows that were scored without the Inception weights, from their kept samples."""
        real_summaries: RealSummaries = {}  # the rows' training images are the same: one Inception pass
        for result in results:
            if result.status != "done" or "fid" in result.metrics or result.kept_samples is None:
                continue
            kept = self.output / result.kept_samples
            if result.config is None or not kept.is_file():
                CONSOLE.print(f"[yellow]{result.row} has no FID and its kept samples {escape(str(kept))} are missing.")
                continue
            (scores,) = score_kept_samples(self.output / result.config, [kept], evaluation, real_summaries)
            result.metrics.update(scores)
            result.fid_note = None
            write_json(self.output / result.row / RESULT_FILENAME, dataclasses.asdict(result))
            CONSOLE.print(f"[bold]{result.row}[/bold]: FID {scores['fid']:.2f} from the samples it kept.")

    def pending(self, row: str) -> RowResult:
        """A row not run yet, with the fields it changes."""
        changes = config_changes(self.base, row_config(self.base, row))
        description = ROWS[row].description
        if row == "baseline" and self.on_top_of:
            description = f"the method with {' + '.join(self.on_top_of)}"
        return RowResult(row=row, description=description, status="pending", study=self.settings, changes=changes)

    def stored_result(self, row: str, quiet: bool = False) -> Optional[RowResult]:
        """The row's finished result from an earlier command, if any; refuses one from a study with other settings."""
        path = self.output / row / RESULT_FILENAME
        if not path.is_file():
            return None
        try:
            result = RowResult(**json.loads(path.read_text(encoding="utf8")))
        except (ValueError, TypeError) as error:
            if not quiet:
                CONSOLE.print(f"[yellow]Ignoring {escape(str(path))}, unreadable ({error}); training {row} again.")
            return None
        if result.study != self.settings:
            if quiet:
                return None
            differences = {key: (value, self.settings.get(key)) for key, value in result.study.items()
                           if self.settings.get(key) != value}
            raise AblationError(
                f"{path.parent} holds the row '{row}' of another study (stored vs asked: {differences}). Use another "
                f"--output for this study, or delete {path.parent} to train the row again."
            )
        if not quiet:
            CONSOLE.print(f"Reusing [bold]{row}[/bold], finished earlier ({escape(str(path))}).")
        return result

    def unfinished_checkpoint(self, row_folder: Path, runs: Path) -> Optional[Path]:
        """The newest checkpoint of a row's unfinished runs, if they began under this study's settings: the row
        continues from it (the trainer's --max-num-iterations counts the whole run, so it ends on the study's
        budget), exactly as it would have gone on."""
        models = runs.glob("*/nerfstudio_models")
        checkpoints = sorted((path for run in models for path in saved_checkpoints(run)), key=lambda path: path.name)
        started = row_folder / STUDY_FILENAME
        if not checkpoints or not started.is_file():
            return None
        try:
            settings = json.loads(started.read_text(encoding="utf8"))
        except ValueError:
            return None
        return checkpoints[-1] if settings == self.settings else None

    def title(self) -> str:
        """The table's caption: the settings every row shares."""
        s = self.settings
        on_top_of = f" (every row on top of {' + '.join(self.on_top_of)})" if self.on_top_of else ""
        return (
            f"Ablation of {s['method']}{on_top_of} on {s['data']}: {s['iterations']} iterations, seed {s['seed']}, "
            f"{s['num_generated']} EMA samples scored, on {device_name(self.base)}"
        )

    def write_report(self, results: Sequence[RowResult]) -> None:
        """DIR/ablation.md and DIR/ablation.json, for the rows so far."""
        notes = (
            f"{self.title()}.\n\nseconds: training wall-clock without the quality curve's scoring. SWD: sliced "
            "Wasserstein distance x1000 of EMA samples to the training images; FID: Frechet Inception distance. Lower "
            "is better for both. Each row's run folder (config.yml for ns-viewer, ns-render, ns-eval) is listed in "
            "ablation.json.\n"
        )
        with atomic_output(self.output / REPORT_MARKDOWN) as temporary:
            temporary.write_text(f"# Ablation\n\n{notes}\n{markdown_table(results)}\n", encoding="utf8")
        write_json(
            self.output / REPORT_JSON,
            {
                "study": self.settings,
                "device": device_name(self.base),
                "rows": [dataclasses.asdict(result) for result in results],
            },
        )

    # ------------------------------------------------------------------ one row

    def run_row(self, row: str, evaluation: GANEvaluationConfig, fid_note: Optional[str]) -> RowResult:
        """Trains, scores and draws one row; returns its result (also stored, last, when it is finished)."""
        config = row_config(self.base, row)
        result = self.pending(row)
        reason = unfit_reason(config)
        if reason is not None:
            CONSOLE.print(f"[yellow]Skipping {row}: {escape(reason)}.")
            return dataclasses.replace(result, status="skipped", message=reason)

        row_folder = self.output / row
        runs = row_folder / config.method_name
        checkpoint = self.unfinished_checkpoint(row_folder, runs)
        if checkpoint is not None:
            CONSOLE.print(f"Continuing the unfinished run of {row} from {escape(str(checkpoint))}.")
            config.load_dir = checkpoint.parent
        elif runs.exists():
            CONSOLE.print(f"Removing the unfinished run of {row} in {escape(str(runs))}.")
            shutil.rmtree(runs)
        write_json(row_folder / STUDY_FILENAME, self.settings)
        config.output_dir = self.output
        config.experiment_name = row
        config.vis = STUDY_VISUALIZER
        config.set_timestamp()
        started, attempt = config.timestamp, 1
        while config.get_base_dir().exists():  # continued within the second its run began: a folder of its own
            attempt += 1
            config.timestamp = f"{started}_{attempt}"
        result.config = str((config.get_base_dir() / "config.yml").relative_to(self.output))
        CONSOLE.rule(f"[bold]{row}[/bold]: {escape(ROWS[row].description)}")

        trainer: Optional[HyperNeRFGANTrainer] = None
        start = scoring_start = time.perf_counter()
        try:
            with own_event_writers():
                config.save_config()
                _set_random_seed(config.machine.seed)
                trainer = config.setup(local_rank=0, world_size=1)
                trainer.setup()
                trainer.train()
                result.train_seconds = trainer.clock.train_seconds  # without the quality curve's scoring
                result.iterations = config.max_num_iterations
                scoring_start = time.perf_counter()
                result.metrics = self.score_row(trainer, evaluation, fid_note, row_folder / KEPT_SAMPLES_FILENAME)
                if fid_note == FID_UNAVAILABLE:
                    result.kept_samples = str((row_folder / KEPT_SAMPLES_FILENAME).relative_to(self.output))
            trainer = None
            release_memory()
            swd = result.metrics.get("swd", math.nan)
            if not math.isfinite(swd):
                return self.failed(result, None, start, f"SWD is {swd}: the generator renders non-finite colours")
            self.draw_samples(config)
        except SystemExit as error:
            message = training_failure(error)
            if message is None:
                if error.code in INTERRUPTED_EXIT_CODES:
                    CONSOLE.print(
                        f"Stopped during {row}. Run the same command again to continue (finished rows stay, {row} "
                        "continues from its checkpoint)."
                    )
                raise
            return self.failed(result, trainer, start, message)
        except Exception as error:  # pylint: disable=broad-except
            # Out of memory, a setting the code rejects, ...: this row's problem, not the study's.
            CONSOLE.print_exception(max_frames=4)
            return self.failed(result, trainer, start, f"{type(error).__name__}: {error}")
        finally:
            trainer = None
            release_memory()

        result.fid_note = fid_note if "fid" not in result.metrics else None
        result.samples = str((row_folder / SAMPLES_FILENAME).relative_to(self.output))
        result.eval_seconds = time.perf_counter() - scoring_start
        result.status = "done"
        write_json(row_folder / RESULT_FILENAME, dataclasses.asdict(result))
        CONSOLE.print(f"[bold green]{row} done[/bold green]: SWD {result.metrics['swd']:.2f}.")
        return result

    @staticmethod
    def score_row(
        trainer: HyperNeRFGANTrainer, evaluation: GANEvaluationConfig, fid_note: Optional[str], kept: Path
    ) -> Dict[str, float]:
        """The row's scores; without the Inception weights, its samples are also kept in `kept` for a later FID."""
        pipeline = trainer.pipeline
        if fid_note != FID_UNAVAILABLE:
            return evaluate_generator(pipeline, evaluation, pipeline.config.swd)
        return evaluate_keeping_samples(pipeline, evaluation, kept, {"run": str(trainer.config.get_base_dir())})

    def draw_samples(self, config: HyperNeRFGANTrainerConfig) -> None:
        """The row's sample sheet, by `hypernerfgan samples` from the run folder (which so opens like any run)."""
        SamplesCommand(
            load_config=config.get_base_dir() / "config.yml",
            output=self.output / config.experiment_name / SAMPLES_FILENAME,
            num_seeds=self.sample_seeds,
            views=self.sample_views,
            resolution=dataparser_config(config).resolution,
        ).main()

    def failed(
        self, result: RowResult, trainer: Optional[HyperNeRFGANTrainer], start: float, message: str
    ) -> RowResult:
        """The row as failed, with how far its training got. A rerun trains it again from the start, not from its
        last checkpoint (which led to the failure): its settings marker goes."""
        CONSOLE.print(f"[bold red]{result.row} failed[/bold red]: {escape(message)}")
        (self.output / result.row / STUDY_FILENAME).unlink(missing_ok=True)
        if result.iterations is None:  # it failed in training: how far it got
            completed = trainer.last_completed_step if trainer is not None else None
            result = dataclasses.replace(
                result,
                iterations=completed + 1 if completed is not None else 0,
                train_seconds=trainer.clock.train_seconds if trainer is not None else time.perf_counter() - start,
            )
        return dataclasses.replace(result, status="failed", message=message)


def device_name(config: HyperNeRFGANTrainerConfig) -> str:
    """The device rows train on, for the report."""
    if config.machine.device_type == "cuda" and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name()})"
    return config.machine.device_type


def study_config(
    method: str, data: Path, iterations: int, seed: int, curve_interval_images: Optional[int] = None
) -> HyperNeRFGANTrainerConfig:
    """A registered method's config set up for a study: its data, its fixed budget, its seed, and how often its
    quality curve is scored (None: as the method does)."""
    config = method_config(method)
    config.pipeline.datamanager.data = None
    config.pipeline.datamanager.dataparser.data = data
    config.max_num_iterations = iterations
    config.machine.seed = seed
    if curve_interval_images is not None:
        config.quality_curve = dataclasses.replace(
            config.quality_curve, interval_images=curve_interval_images, interval_growth=1.0
        )  # evenly spaced: rows compare point by point
    return config


# ----------------------------------------------------------------------------------------------------------------------
# The command.


@dataclass
class AblateCommand:
    """Train and compare ablations of a method (samples per ray, patch size, augmentation, R1) into one table."""

    method: MethodName
    """The method every row starts from: hypernerfgan, hypernerfgan-lite or hypernerfgan-tiny."""
    data: Path
    """Training images: a built-in set (cars, chairs, planes), a folder, a zip or an SRN folder, as for ns-train."""
    iterations: int
    """Training iterations of the baseline. Every row sees the same images (iterations x batch): rows that change the
    batch (`batch-xF`) train for iterations / F."""
    output: Path
    """Study folder: DIR/<row>/ per row, DIR/ablation.md and DIR/ablation.json. Reuse it to continue a study."""
    rows: Tuple[RowName, ...] = tuple(ROWS)
    """Rows to run, by name; default: all of them."""
    num_generated: int = DEFAULT_NUM_GENERATED
    """EMA samples scored per row, against all training images (the papers use 1k to 50k)."""
    seed: int = 0
    """Seed of every row's training (as ns-train seeds it) and of the scored samples."""
    sample_seeds: int = DEFAULT_SAMPLE_SEEDS
    """Objects (rows) on each row's sample sheet."""
    sample_views: int = DEFAULT_SAMPLE_VIEWS
    """Views (columns) per object on each row's sample sheet."""
    curve_interval_images: Optional[int] = None
    """Score each row's quality curve (metrics.jsonl in its run folder) every this many images, evenly spaced; None:
    as the method does; 0: no curve."""
    on_top_of: Tuple[RowName, ...] = ()
    """Rows whose changes every row starts from, the baseline included (e.g. lr-x4: the other candidates with the
    faster learning rate); default: none, every row changes the method alone."""

    def main(self) -> None:
        """Runs the study and prints its table."""
        study = AblationStudy(
            base=study_config(self.method, self.data, self.iterations, self.seed, self.curve_interval_images),
            output=self.output,
            num_generated=self.num_generated,
            sample_seeds=self.sample_seeds,
            sample_views=self.sample_views,
            on_top_of=self.on_top_of,
        )
        study.run(self.rows)
