"""The registered methods: three scales of the same HyperNeRFGAN.

    hypernerfgan       the paper's configuration (64x64 patches, 64 samples per ray, 512-channel discriminator,
                       batch 4) in fp16, fitted to one 16 GB GPU such as a Tesla T4
    hypernerfgan-lite  the paper's generator on 32x32 rays spread over the whole 128x128 image, 32 samples per ray,
                       its discriminator at half the channels at 32 pixels, with the faster recipe: the cheapest
                       model of the paper's that makes cars
    hypernerfgan-tiny  a CPU-sized model on 32x32 images, for smoke runs and tests

`hypernerfgan-tiny` trains with the recipe its ablations found (README, "Ablations"): Adam at 0.01, four times the
paper's 0.0025, the positional encoding's octaves faded in over the first 5,000 images, and the paper's batch of 4;
at a budget of 10,000 images it halves FID against the paper's recipe on cars, chairs and planes.

`hypernerfgan-lite` takes that recipe with its discriminator's rate scaled to its width (0.005: at 0.01 the
512-channel discriminator's logits blew up) and spreads its 32x32 rays over the whole image at every fourth pixel's
block centre (whole-image patches, real pixels read at the nearest photo pixel): on the built-in cars, seed 0, on the
CPU, it reached FID 209 at 10,000 images against 312 for the paper's recipe on 32x32 crops (one seed), with car
bodies where the crops made faint specks, in 0.57 of the training minutes (docs/ablations.md, "The paper's networks
at 10,000 images"). Since then it encodes 6 octaves, none finer than its rays (FID 168 and 187 against 209 and 208 on
two seeds), and its discriminator has 256 channels at 32 pixels instead of 512 (`channel_base` 8192, as
`hypernerfgan-tiny` halved its own): 0.54 of the iteration's arithmetic, FID 177 against 177 on two seeds' means
(docs/ablations.md, "Six octaves on the paper's networks", "Half the discriminator's channels at 32 pixels").

`hypernerfgan` keeps the paper's recipe and crops until a GPU run says otherwise: on crops of a quarter of the image,
its 64x64 patches of 128x128 images, the tiny preset's recipe changed nothing; whole images and whole-image patches
are the candidates the GPU check trains (README, "Ablations").

Dataset-dependent values (camera prior, target depth, R1 gamma) come from the dataset preset the `unposed-images`
dataparser selects (`configs/*.yml`), so each method works for every dataset.
"""

from __future__ import annotations

import copy
from typing import Literal, Optional

import torch

from hypernerfgan_ns.data.datamanagers.random_pose_patch_datamanager import RandomPosePatchDataManagerConfig
from hypernerfgan_ns.data.dataparsers.unposed_images_dataparser import UnposedImagesDataParserConfig
from hypernerfgan_ns.engine.optimizers import GANAdamOptimizerConfig
from hypernerfgan_ns.engine.trainer import HyperNeRFGANTrainerConfig
from hypernerfgan_ns.errors import show_uncaught_errors_as_panels
from hypernerfgan_ns.metrics.quality_curve import QualityCurveConfig
from hypernerfgan_ns.models.hypernerfgan import HyperNeRFGANModelConfig
from hypernerfgan_ns.networks.discriminator import DiscriminatorConfig
from hypernerfgan_ns.pipelines.adversarial_pipeline import AdversarialPipelineConfig
from nerfstudio.configs.base_config import MachineConfig, ViewerConfig
from nerfstudio.plugins.types import MethodSpecification

Visualizer = Literal["viewer", "tensorboard", "viewer+tensorboard"]

# Every ns-* command loads this module first: its users then see our errors as panels, as ns-train's do.
show_uncaught_errors_as_panels()


def available_device() -> Literal["cuda", "cpu"]:
    """CUDA when present, else the CPU: training runs without a device flag."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def hypernerfgan_config(
    method_name: str,
    pipeline: AdversarialPipelineConfig,
    max_num_iterations: int,
    steps_per_save: int,
    steps_per_eval: int,
    mixed_precision: bool,
    vis: Visualizer,
    quality_curve: QualityCurveConfig,
    learning_rate: float = GANAdamOptimizerConfig.lr,
    discriminator_learning_rate: Optional[float] = None,
) -> HyperNeRFGANTrainerConfig:
    """A whole training configuration around a pipeline; what the presets share is written once, here.

    `learning_rate` is both networks' Adam rate (the paper's unless a preset says otherwise), or the generator's
    where `discriminator_learning_rate` is given. A preset that trains in mixed precision also renders its
    evaluations in it (`eval_mixed_precision`)."""
    pipeline.model.eval_mixed_precision = mixed_precision
    if discriminator_learning_rate is None:
        discriminator_learning_rate = learning_rate
    optimizers = {
        "generator": {"optimizer": GANAdamOptimizerConfig(lr=learning_rate), "scheduler": None},
        "discriminator": {"optimizer": GANAdamOptimizerConfig(lr=discriminator_learning_rate), "scheduler": None},
    }
    return HyperNeRFGANTrainerConfig(
        method_name=method_name,
        pipeline=pipeline,
        optimizers=optimizers,
        max_num_iterations=max_num_iterations,
        steps_per_save=steps_per_save,
        steps_per_eval_batch=0,  # the learning curve is the quality curve, counted in images
        steps_per_eval_image=steps_per_eval,  # the sample grid in tensorboard
        steps_per_eval_all_images=0,  # the full metrics (FID/KID on 1,000+ samples) run through ns-eval
        quality_curve=quality_curve,
        mixed_precision=mixed_precision,
        machine=MachineConfig(device_type=available_device()),
        vis=vis,
        viewer=ViewerConfig(num_rays_per_chunk=1 << 14),
    )


hypernerfgan = MethodSpecification(
    config=hypernerfgan_config(
        method_name="hypernerfgan",
        pipeline=AdversarialPipelineConfig(
            datamanager=RandomPosePatchDataManagerConfig(
                dataparser=UnposedImagesDataParserConfig(resolution=128, min_image_size=64),
                batch_size=4,
                patch_size=64,
            ),
            model=HyperNeRFGANModelConfig(num_coarse_samples=64),
            discriminator=DiscriminatorConfig(channel_base=32768, channel_max=512),
        ),
        max_num_iterations=500_000,
        steps_per_save=2_000,
        steps_per_eval=1_000,
        mixed_precision=True,
        vis="viewer+tensorboard",
        quality_curve=QualityCurveConfig(interval_images=5_000, num_generated=1_000),
    ),
    description="HyperNeRFGAN, the paper's configuration on one 16 GB GPU (64x64 patches, 64 samples, fp16)",
)

hypernerfgan_lite = MethodSpecification(
    config=hypernerfgan_config(
        method_name="hypernerfgan-lite",
        pipeline=AdversarialPipelineConfig(
            datamanager=RandomPosePatchDataManagerConfig(
                dataparser=UnposedImagesDataParserConfig(resolution=128, min_image_size=32),
                batch_size=4,
                patch_size=32,
                whole_image_patches=True,
                scaled_real_patches="nearest",
            ),
            model=HyperNeRFGANModelConfig(num_coarse_samples=32, num_octaves=6, frequency_annealing_images=5_000),
            discriminator=DiscriminatorConfig(channel_base=8192, channel_max=512),
        ),
        max_num_iterations=500_000,
        steps_per_save=2_000,
        steps_per_eval=1_000,
        mixed_precision=True,
        vis="viewer+tensorboard",
        quality_curve=QualityCurveConfig(interval_images=5_000, num_generated=1_000),
        learning_rate=0.01,
        discriminator_learning_rate=0.005,
    ),
    description="HyperNeRFGAN's generator on 32x32 rays over the whole image, 6 octaves, a lighter discriminator",
)

hypernerfgan_tiny = MethodSpecification(
    config=hypernerfgan_config(
        method_name="hypernerfgan-tiny",
        pipeline=AdversarialPipelineConfig(
            datamanager=RandomPosePatchDataManagerConfig(
                dataparser=UnposedImagesDataParserConfig(
                    resolution=32, min_image_size=16, min_num_images=8, builtin_num_images=500
                ),
                batch_size=4,
                patch_size=32,
            ),
            model=HyperNeRFGANModelConfig(
                hidden_width=64,
                num_hidden_layers=3,
                skip_layer=-1,
                num_octaves=6,
                frequency_annealing_images=5_000,
                num_coarse_samples=24,
            ),
            discriminator=DiscriminatorConfig(channel_base=1024, channel_max=128),
            num_eval_images=64,
            sample_grid_seeds=8,
        ),
        max_num_iterations=4_000,
        steps_per_save=500,
        steps_per_eval=100,
        mixed_precision=False,
        vis="tensorboard",
        quality_curve=QualityCurveConfig(interval_images=100, interval_growth=2.0, num_generated=128),
        learning_rate=0.01,
    ),
    description="HyperNeRFGAN at CPU scale (32x32 images, small networks) for smoke runs and tests",
)


METHODS = {spec.config.method_name: spec for spec in (hypernerfgan, hypernerfgan_lite, hypernerfgan_tiny)}
"""The registered methods by name."""


def method_config(name: str) -> HyperNeRFGANTrainerConfig:
    """A fresh copy of a registered method's configuration, safe to modify (the registered one never is)."""
    if name not in METHODS:
        raise ValueError(f"Unknown method '{name}'; the HyperNeRFGAN methods are {sorted(METHODS)}.")
    return copy.deepcopy(METHODS[name].config)
