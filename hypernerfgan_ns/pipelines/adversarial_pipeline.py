"""The adversarial pipeline: data, generator, augmentation, discriminator and their two training phases.

One training iteration (scheduled by `HyperNeRFGANTrainer`) is

    D phase  `get_discriminator_loss_dict`:  fakes rendered without a graph from new latents and random cameras;
             D(augment(blur(fake))) and D(augment(blur(real))); the adversarial loss, plus lazy R1 on the reals
             (and R2 on the fakes) every N-th step
    G phase  `get_train_loss_dict`:          fakes rendered with a graph from new latents and random cameras;
             D(augment(blur(fake))) with D frozen; the adversarial loss (relativistic: against the D phase's reals)
    after    `get_training_callbacks`:       EMA of the generator, and the adaptive augmentation probability

With progressive growing (`progressive_growing`), both phases take their patches (fakes and reals) at the current
stage's resolution, and the discriminator fades each new resolution's block in.

With `shared_fakes`, the D phase renders its fakes with a graph and the G phase trains through those same fakes
(DCGAN's loop): one generator render per iteration instead of two. The generator does not change between the
phases, so the graph is exactly the one a G-phase render would build from those latents and cameras.

Images enter the discriminator in [-1, 1]. Under DDP, each phase calls through the DDP wrapper only the network
it trains (so only that network's gradients are averaged), and the other network directly; the wrappers are kept
outside the module tree, so checkpoints have the same keys with and without DDP.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Literal, Mapping, Optional, Tuple, Type

import torch
import torch.distributed as dist
from jaxtyping import Float
from rich.table import Table
from torch import Tensor, nn
from torch.amp import GradScaler
from torch.nn import Parameter
from torch.nn.parallel import DistributedDataParallel as DDP

from hypernerfgan_ns.data.datamanagers.random_pose_patch_datamanager import (
    RandomPosePatchDataManager,
    RandomPosePatchDataManagerConfig,
)
from hypernerfgan_ns.errors import ConfigError, InceptionUnavailableError, print_error
from hypernerfgan_ns.metrics.evaluation import GANEvaluationConfig, evaluate_generator, without_inception_metrics
from hypernerfgan_ns.metrics.swd import SWDConfig, sliced_wasserstein_distance
from hypernerfgan_ns.model_components.object_bound import bins_meeting_sphere, most_in_a_patch
from hypernerfgan_ns.models.hypernerfgan import HyperNeRFGANModel, HyperNeRFGANModelConfig
from hypernerfgan_ns.networks.discriminator import Discriminator, DiscriminatorConfig, minibatch_group
from hypernerfgan_ns.training.augment import AdaptiveAugment, AugmentConfig
from hypernerfgan_ns.training.ema import EMAConfig, update_ema
from hypernerfgan_ns.training.input_blur import DiscriminatorInputBlurConfig, blur_images
from hypernerfgan_ns.training.losses import AdversarialLossConfig, discriminator_loss, generator_loss, gradient_penalty
from hypernerfgan_ns.training.progressive_growing import ProgressiveGrowingConfig
from hypernerfgan_ns.utils.compiling import call_compiled
from hypernerfgan_ns.utils.config_compat import DefaultsForMissingFields
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from nerfstudio.utils.rich_utils import CONSOLE


@dataclass
class AdversarialPipelineConfig(DefaultsForMissingFields, VanillaPipelineConfig):
    """HyperNeRFGAN's generator, discriminator and adversarial training."""

    _target: Type = field(default_factory=lambda: AdversarialPipeline)
    datamanager: RandomPosePatchDataManagerConfig = field(default_factory=RandomPosePatchDataManagerConfig)
    """Random cameras and real patches."""
    model: HyperNeRFGANModelConfig = field(default_factory=HyperNeRFGANModelConfig)
    """The generator and its rendering."""
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    """The patch discriminator."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Differentiable augmentation of real and fake patches, with an adaptive probability."""
    input_blur: DiscriminatorInputBlurConfig = field(default_factory=DiscriminatorInputBlurConfig)
    """EG3D's Gaussian blur of the discriminator's inputs, before augmentation, fading out (off by default)."""
    loss: AdversarialLossConfig = field(default_factory=AdversarialLossConfig)
    """The adversarial objective, R1 and R2."""
    ema: EMAConfig = field(default_factory=EMAConfig)
    """Exponential moving average of the generator."""
    swd: SWDConfig = field(default_factory=SWDConfig)
    """Sliced Wasserstein distance used as the evaluation curve."""
    evaluation: GANEvaluationConfig = field(default_factory=GANEvaluationConfig)
    """FID/KID/SWD protocol of `ns-eval`."""
    num_eval_images: int = 64
    """Generated and real patches compared by the SWD of each evaluation batch."""
    sample_grid_seeds: int = 8
    """Objects (seeds 0..N-1) in the EMA sample grid logged with each evaluation image."""
    progressive_growing: ProgressiveGrowingConfig = field(default_factory=ProgressiveGrowingConfig)
    """pi-GAN's progressive growing: patches at a fraction of their resolution first (off by default)."""
    shared_fakes: bool = False
    """Train the generator through the fakes the discriminator phase rendered (with their graph), instead of
    rendering new ones from new latents and cameras (StyleGAN2's loop): one render per iteration instead of two, for
    the memory of the generator's graph held through the discriminator's step."""


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Disables parameter gradients inside the block: the other network is trained through it, not itself."""
    flags = [param.requires_grad for param in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for param, flag in zip(module.parameters(), flags):
            param.requires_grad_(flag)


def to_discriminator_range(images: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 3"]:
    """[0, 1] colours to the discriminator's [-1, 1]."""
    return images * 2.0 - 1.0


FAKE_OPACITY = "fake_opacity"
"""G-phase metric: the fakes' mean accumulated opacity, the share of their pixels an object covers (0: empty scenes,
which the trainer watches for: `max_consecutive_empty_iterations`)."""

EXTRA_STATE_KEY = "_extra_state"
"""Where `nn.Module.state_dict` keeps `get_extra_state()` of the pipeline (the root module)."""

COMPILE_DISCRIMINATOR_OPTION = "--pipeline.discriminator.compile"
"""The option `DiscriminatorConfig.compile` is set with, named where compiling fails."""


class AdversarialPipeline(VanillaPipeline):
    """See the module docstring."""

    config: AdversarialPipelineConfig
    datamanager: RandomPosePatchDataManager

    def __init__(
        self,
        config: AdversarialPipelineConfig,
        device: str,
        test_mode: Literal["test", "val", "inference"] = "val",
        world_size: int = 1,
        local_rank: int = 0,
        grad_scaler: Optional[GradScaler] = None,
    ) -> None:
        # VanillaPipeline would wrap only the model, with CUDA-only arguments; we wrap both networks ourselves.
        super().__init__(
            config, device, test_mode=test_mode, world_size=1, local_rank=local_rank, grad_scaler=grad_scaler
        )
        self.world_size = world_size
        self.grad_scaler = grad_scaler
        growing, patch = config.progressive_growing, config.datamanager.patch_size
        self.check_progressive_growing()
        self.check_minibatch_groups()
        self.check_input_blur()
        self.check_patch_scale_conditioning()
        self.discriminator = config.discriminator.setup(
            resolution=patch, smallest_resolution=growing.first_patch_size(patch)
        ).to(device)
        self.augment: AdaptiveAugment = config.augment.setup().to(device)
        preset = self.model.dataset_preset
        self.r1_gamma = config.loss.r1_gamma if config.loss.r1_gamma is not None else preset.r1_gamma
        self.r2_gamma = config.loss.r2_gamma if config.loss.r2_gamma is not None else self.r1_gamma
        self.query_capacities = {
            factor: (self.training_query_capacity(factor), self.training_importance_capacity(factor))
            for factor in growing.downscales()
        }
        """Per growing stage's downscale, the coarse and the importance samples per object the training MLP runs at
        (None: all)."""
        self.growth_stage = growing.stage(images_seen=0)
        """The growing stage of the next iteration (always the full resolution without growing)."""
        self.input_blur_kernel: Optional[Tensor] = None
        """The Gaussian the next iteration blurs the discriminator's inputs with (None: no blur)."""
        self.counted_from: Tuple[int, int] = (-1, 0)
        """(step, images seen after it) that `images_seen` counts on from at this run's batch and processes: a new
        run's start, or the checkpoint it continues (which may have been trained on another number of GPUs)."""
        self.progress_step = -1
        """The last iteration the schedules followed: a checkpoint keeps the images seen after it."""
        self.update_training_progress(step=-1)  # no image seen yet; a checkpoint's step moves it on (load_pipeline)
        if local_rank == 0:
            self.describe()
        self._shared_fakes: Optional[Tuple[int, Dict[str, Tensor]]] = None
        """The D phase's render with its graph and the step it belongs to, until the G phase of that step takes it."""
        self._paired_reals: Optional[Tuple[int, Tensor, Optional[Tensor]]] = None
        """The D phase's real patches, the scales the discriminator is told of them and their step, until the G phase
        of that step pairs its fakes with them (the relativistic objective)."""
        self._ddp: Dict[str, nn.Module] = {}
        if world_size > 1:
            device_ids = [local_rank] if torch.device(device).type == "cuda" else None
            # Buffers stay identical by construction (w_avg is averaged over processes), so none are broadcast.
            self._ddp["model"] = DDP(
                self._model, device_ids=device_ids, find_unused_parameters=True, broadcast_buffers=False
            )
            # A growing stage leaves the other stages' input layers and blocks out of its graph.
            self._ddp["discriminator"] = DDP(
                self.discriminator,
                device_ids=device_ids,
                find_unused_parameters=self.config.progressive_growing.enabled,
                broadcast_buffers=False,
            )
            dist.barrier()

    def check_progressive_growing(self) -> None:
        """Refuses a growing schedule the patches or the discriminator cannot follow, before anything is built."""
        data = self.config.datamanager
        reason = self.config.progressive_growing.unfit_reason(
            patch_size=data.patch_size,
            resolution=self.datamanager.resolution,
            smallest_patch=self.config.discriminator.final_resolution,
            scaled_patches=data.scales_patches,
        )
        if reason is not None:
            raise ConfigError(
                f"Progressive growing: {reason}. Lower --pipeline.progressive-growing.start-downscale (1: off), or "
                "turn scaled patches off (--pipeline.datamanager.patch-scale-annealing-images 0, "
                "--pipeline.datamanager.whole-image-patches False)."
            )

    def check_patch_scale_conditioning(self) -> None:
        """Refuses a discriminator told each patch's scale where every patch has the same (unscaled patches)."""
        if self.config.discriminator.patch_scale_conditioning and not self.datamanager.scaled_patches:
            raise ConfigError(
                "The discriminator is conditioned on patch scales (--pipeline.discriminator.patch-scale-conditioning), "
                f"but the patches ({self.config.datamanager.patch_size} px of {self.datamanager.resolution} px images) "
                "are not scaled: turn on GRAF's patch-scale annealing on patches smaller than the images "
                "(--pipeline.datamanager.patch-scale-annealing-images N; whole-image patches have one scale), or the "
                "conditioning off."
            )

    def check_minibatch_groups(self) -> None:
        """Refuses a batch that the discriminator's minibatch-std groups do not divide, at setup rather than in the
        first iteration (after the quality curve's first point, with a traceback)."""
        batch = self.config.datamanager.batch_size
        group = minibatch_group(self.config.discriminator.mbstd_group_size, batch)
        if batch % group == 0:
            return
        dividing = [str(size) for size in range(2, group) if batch % size == 0]
        raise ConfigError(
            f"The discriminator compares the objects of a batch in minibatch-std groups of {group} "
            f"(--pipeline.discriminator.mbstd-group-size), which do not divide a batch of {batch} "
            f"(--pipeline.datamanager.batch-size): use a batch that is a multiple of {group}"
            + (f", or groups of {' or '.join(dividing)}." if dividing else ".")
        )

    def check_input_blur(self) -> None:
        """Refuses a blur wider than the smallest patches the discriminator sees, before anything is built."""
        smallest = self.config.progressive_growing.first_patch_size(self.config.datamanager.patch_size)
        reason = self.config.input_blur.unfit_reason(smallest_patch=smallest)
        if reason is not None:
            raise ConfigError(f"Input blur: {reason}. Lower --pipeline.input-blur.initial-sigma (0: off).")

    def describe(self) -> None:
        """Prints the effective architecture and batch, after the dataset preset and the overrides are applied."""
        model, data = self.model, self.config.datamanager
        generator = model.generator
        shapes = generator.field.layer_shapes()
        full = sum(out_features * in_features for out_features, in_features in shapes)
        generated = generator.hypernetwork.num_generated()
        samples_per_ray = model.config.num_coarse_samples + model.config.num_importance_samples
        points = data.batch_size * data.patch_size**2 * samples_per_ray
        table = Table(title="HyperNeRFGAN", show_header=False)
        skip = "no skip" if model.skip_layer is None else f"skip after {model.skip_layer}"
        table.add_row(
            "target NeRF",
            f"{model.num_hidden_layers} hidden layers x {model.config.hidden_width}, {skip}, {len(shapes)} generated "
            "layers",
        )
        ratio = f"{full / generated:.1f}x fewer" if full >= generated else f"{generated / full:.1f}x more"
        table.add_row(
            "hypernetwork",
            f"FMM rank {model.config.fmm_rank}: {generated:,} numbers per object instead of {full:,} ({ratio})",
        )
        table.add_row("generator parameters", f"{sum(p.numel() for p in generator.parameters()):,}")
        table.add_row("discriminator parameters", f"{sum(p.numel() for p in self.discriminator.parameters()):,}")
        batch = f"{data.batch_size} objects x {data.patch_size}^2 rays: {points:,} field points per pass"
        if model.training_query_capacity is not None:
            queried = data.batch_size * model.training_points_per_object(data.patch_size**2)
            batch += f", the MLP at the {queried:,} that can be in the object sphere"
        table.add_row("batch", batch)
        if model.render_samples != model.config.num_coarse_samples:
            training = model.config.num_coarse_samples
            table.add_row("renders", f"{model.render_samples} samples per ray (training: {training})")
        penalties = f"R1 gamma {self.r1_gamma}" + (f", R2 gamma {self.r2_gamma}" if self.r2_gamma > 0 else "")
        table.add_row("loss", f"{self.config.loss.objective}; {penalties} every {self.config.loss.r1_interval} steps")
        if self.config.progressive_growing.enabled:
            table.add_row("progressive growing", self.config.progressive_growing.describe(data.patch_size))
        if self.datamanager.scaled_patches:
            conditioned = self.config.discriminator.patch_scale_conditioning
            told = ", the discriminator told each one's scale" if conditioned else ""
            resolution, reals = self.datamanager.resolution, f"real pixels read {data.scaled_real_patches}"
            if data.whole_image_patches and self.datamanager.patch_stride > 1:
                stride = self.datamanager.patch_stride
                scales = (
                    f"GRAF's largest: whole {resolution} px images at {data.patch_size} px, one pixel in {stride} "
                    f"along each axis from a random first one per patch (real pixels the photo's){told}"
                )
            elif data.whole_image_patches:
                scales = f"GRAF's largest: whole {resolution} px images at {data.patch_size} px, {reals}{told}"
            else:
                scales = (
                    f"GRAF's: from whole images to {data.patch_size} px crops of {resolution} px over "
                    f"{data.patch_scale_annealing_images:,} images, {reals}{told}"
                )
            table.add_row("patch scale", scales)
        blur = self.config.input_blur
        if blur.enabled:
            table.add_row(
                "discriminator input blur",
                f"sigma {blur.initial_sigma:g} px fading to 0 over {blur.fade_images:,} images",
            )
        CONSOLE.print(table)

    def training_query_capacity(self, downscale: int = 1) -> Optional[int]:
        """The most coarse samples of one object's training patch (`downscale` times coarser) that can lie inside
        the object sphere: how many the target MLP runs at per object in training (`train_query_inside_bound_only`).
        Counted once, from what every training camera shares (the prior's radius, near and far, looking at the
        origin), the pixel grid, the patch size and each sample's stratification interval (whole-image patches:
        the whole grid at the patch's resolution). None where no such count holds (patches annealed by GRAF's
        schedule, which cover any square; an unbounded field), where it leaves out too few samples
        (`train_query_min_saving`), or with the option off."""
        sampler = self.model.sampler_coarse
        return self.most_samples_in_sphere(downscale, sampler.fraction_ranges(sampler.num_samples, training=True))

    def training_importance_capacity(self, downscale: int = 1) -> Optional[int]:
        """`training_query_capacity` of the importance samples: an importance sample can lie anywhere between near
        and far, so the most a patch can hold in the sphere are all those of its rays that meet the sphere (a ray
        that misses it places its importance samples where no density can be). None also without them."""
        importance = self.model.config.num_importance_samples
        if importance == 0:
            return None
        return self.most_samples_in_sphere(downscale, (torch.zeros(importance), torch.ones(importance)))

    def most_samples_in_sphere(
        self, downscale: int, fraction_ranges: Tuple[Float[Tensor, "samples"], Float[Tensor, "samples"]]
    ) -> Optional[int]:
        """The training capacity of samples lying within `fraction_ranges` of each ray's near-to-far span."""
        model, data = self.model, self.datamanager
        field = model.generator.field
        annealed = data.scaled_patches and not data.config.whole_image_patches
        if not model.config.train_query_inside_bound_only or field.object_radius is None or annealed:
            return None
        prior = model.dataset_preset.camera_prior
        resolution, patch = data.resolution // downscale, data.config.patch_size // downscale
        if data.scaled_patches and data.patch_stride == 1:  # whole-image patches: the grid at the patch's resolution
            resolution = patch
        counts = bins_meeting_sphere(
            directions=data.pixel_rays(resolution)[:, :3].cpu(),
            camera_distance=prior.radius,
            near=prior.near,
            far=prior.far,
            fraction_ranges=fraction_ranges,
            sphere_radius=field.object_radius,
        )
        capacity = most_in_a_patch(counts.view(resolution, resolution), patch, data.patch_stride)
        samples = patch**2 * len(fraction_ranges[0])
        return capacity if capacity <= (1.0 - model.config.train_query_min_saving) * samples else None

    @property
    def model(self) -> HyperNeRFGANModel:
        return self._model

    def trained(self, name: Literal["model", "discriminator"]) -> nn.Module:
        """The network as called in the phase that trains it: through DDP when distributed."""
        return self._ddp.get(name, getattr(self, "_model" if name == "model" else name))

    # ------------------------------------------------------------------ shared steps

    @property
    def batch_size(self) -> int:
        """Objects per batch on this device."""
        return self.config.datamanager.batch_size

    def sample_latents(self, num_objects: int) -> Float[Tensor, "objects latent_dim"]:
        """z ~ N(0, I)."""
        return torch.randn(num_objects, self.model.config.latent_dim, device=self.device)

    @property
    def training_patch_size(self) -> int:
        """Side of the patches both phases train on now: the patch size, divided by the growing stage's downscale."""
        return self.config.datamanager.patch_size // self.growth_stage.downscale

    def render_patches(self, renderer: nn.Module, ray_bundle: RayBundle, latents: Tensor) -> Dict[str, Tensor]:
        """Renders each latent's training patch; `rgb` comes back as [objects, 3, P, P] in [-1, 1], with the
        patches' scales under "patch_scale" where the patches are scaled."""
        outputs = renderer(ray_bundle, latents=latents)
        patch = self.training_patch_size
        rgb = outputs["rgb"].reshape(latents.shape[0], patch, patch, 3).permute(0, 3, 1, 2)
        scales = self.datamanager.patch_scales(ray_bundle, latents.shape[0])
        return {**outputs, "rgb": to_discriminator_range(rgb), **({} if scales is None else {"patch_scale": scales})}

    # ------------------------------------------------------------------ the two phases

    def get_discriminator_loss_dict(self, step: int) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
        """D phase: the adversarial loss on detached fakes and reals, plus the lazy R1 (and R2) penalty every
        `r1_interval` steps.

        Fakes and reals are augmented and go through the discriminator as one batch, each with its own minibatch-std
        groups: the logits of two calls for the operations of one, forward and backward. A regularised step calls
        it on each alone, so that a penalty's double backward runs through its own images only.
        """
        stage = self.growth_stage
        ray_bundle, batch = self.datamanager.next_train(step, downscale=stage.downscale)
        if self.config.shared_fakes:
            outputs = self.render_patches(self.trained("model"), ray_bundle, self.sample_latents(self.batch_size))
            self._shared_fakes = (step, outputs)
        else:
            with torch.no_grad():
                outputs = self.render_patches(self.model, ray_bundle, self.sample_latents(self.batch_size))
        fake = outputs["rgb"].detach()
        fake_scales, real_scales = self.scales_judged(outputs), self.scales_judged(batch)
        regularised = step % self.config.loss.r1_interval == 0
        apply_r1, apply_r2 = regularised and self.r1_gamma > 0, regularised and self.r2_gamma > 0
        fake = fake.requires_grad_(apply_r2)
        real = to_discriminator_range(batch["image"].permute(0, 3, 1, 2)).detach().requires_grad_(apply_r1)
        relativistic = self.config.loss.objective == "relativistic"
        if relativistic:
            self._paired_reals = (step, real.detach(), real_scales)
        discriminator = self.trained("discriminator")
        if apply_r1 or apply_r2:  # eager: a penalty's double backward runs through these calls
            fake_logits = discriminator(self.discriminator_input(fake), fade=stage.fade, patch_scales=fake_scales)
            real_logits = discriminator(self.discriminator_input(real), fade=stage.fade, patch_scales=real_scales)
        else:  # augmented together too: one host draw, and each applied transform launched once for both
            both = self.discriminator_input(torch.cat([fake, real]))
            both_scales = None if fake_scales is None else torch.cat([fake_scales, real_scales])
            fake_logits, real_logits = self.discriminate(discriminator, both, 2, both_scales).chunk(2)
        # Under the relativistic objective the logits' level means nothing, only each pair's difference does.
        self.augment.accumulate(real_logits - fake_logits if relativistic else real_logits)

        loss_dict = {"discriminator": discriminator_loss(real_logits, fake_logits, self.config.loss.objective)}
        metrics_dict = {"D(real)": real_logits.detach().mean(), "D(fake)": fake_logits.detach().mean()}
        penalised = [("r1", self.r1_gamma, real_logits, real)] if apply_r1 else []
        penalised += [("r2", self.r2_gamma, fake_logits, fake)] if apply_r2 else []
        scale = 1.0
        if penalised and self.grad_scaler is not None and self.grad_scaler.is_enabled():
            scale = self.grad_scaler.get_scale()  # the trainer's scaler: read once per update, not here again
        for name, gamma, logits, images in penalised:
            with self.discriminator.weight_gradients.skipped():  # a penalty differentiates D(x) for x alone
                penalty = gradient_penalty(logits, images, loss_scale=scale)
            loss_dict[name] = penalty.mean() * (gamma / 2) * self.config.loss.r1_interval
            metrics_dict[f"{name}_penalty"] = penalty.detach().mean()
        return loss_dict, metrics_dict

    def paired_real_logits(self, step: int) -> Float[Tensor, "batch 1"]:
        """D's logits, without a graph, of the reals the relativistic G loss pairs this step's fakes with: the D
        phase's reals (as R3GAN pairs them), scored by the discriminator that phase has just updated. New reals if
        no D phase ran at this step."""
        paired, self._paired_reals = self._paired_reals, None
        if paired is not None and paired[0] == step:
            _, real, scales = paired
        else:
            batch = self.datamanager.next_train_reals(step, downscale=self.growth_stage.downscale)
            real, scales = to_discriminator_range(batch["image"].permute(0, 3, 1, 2)), self.scales_judged(batch)
        with torch.no_grad():
            return self.discriminate(self.discriminator, self.discriminator_input(real), patch_scales=scales)

    def get_train_loss_dict(self, step: int) -> Tuple[Dict[str, Tensor], Dict[str, Tensor], Dict[str, Tensor]]:
        """G phase: render fakes with a graph (or take the D phase's, `shared_fakes`) and make the (frozen)
        discriminator call them real, or more real than their paired reals."""
        shared, self._shared_fakes = self._shared_fakes, None
        if shared is not None and shared[0] == step:
            outputs = shared[1]
        else:
            ray_bundle = self.datamanager.next_train_rays(step, downscale=self.growth_stage.downscale)
            outputs = self.render_patches(self.trained("model"), ray_bundle, self.sample_latents(self.batch_size))
        with frozen(self.discriminator):
            fake_logits = self.discriminate(
                self.discriminator, self.discriminator_input(outputs["rgb"]), patch_scales=self.scales_judged(outputs)
            )
        objective = self.config.loss.objective
        real_logits = self.paired_real_logits(step) if objective == "relativistic" else None
        loss_dict = {"generator": generator_loss(fake_logits, real_logits, objective)}
        metrics_dict = {
            "D(fake)_generator_phase": fake_logits.detach().mean(),
            FAKE_OPACITY: outputs["accumulation"].detach().float().mean(),
            **self.augment_metrics(),
        }
        return outputs, loss_dict, metrics_dict

    def discriminator_input(self, images: Float[Tensor, "batch 3 h w"]) -> Float[Tensor, "batch 3 h w"]:
        """What the discriminator sees of training patches: blurred (`input_blur`, while it fades), then augmented."""
        return self.augment(blur_images(images, self.input_blur_kernel))

    def scales_judged(self, patches: Dict[str, Tensor]) -> Optional[Float[Tensor, "batch"]]:
        """The scales of a batch of patches (a render's outputs, a real batch) that the discriminator is told: None
        unless it is conditioned on them (`patch_scale_conditioning`)."""
        return patches["patch_scale"] if self.config.discriminator.patch_scale_conditioning else None

    def discriminate(
        self,
        discriminator: nn.Module,
        images: Tensor,
        num_batches: int = 1,
        patch_scales: Optional[Float[Tensor, "batch"]] = None,
    ) -> Float[Tensor, "batch 1"]:
        """The logits of `images` (of these scales, for a discriminator conditioned on them) in the current growth
        stage, from a call differentiated at most once: compiled with `discriminator.compile` (unless DDP wraps the
        discriminator, whose forward must run), else eager."""
        fade = self.growth_stage.fade
        if self.config.discriminator.compile and discriminator is self.discriminator:
            # One layout whatever the augmentation did: compiled code is specialised to its inputs' strides, and each
            # new layout would compile another graph (a rendered batch is a permuted view, an augmented one is not).
            images = images.contiguous(memory_format=self.discriminator.memory_format)
            return call_compiled(
                Discriminator.forward,
                COMPILE_DISCRIMINATOR_OPTION,
                discriminator,
                images,
                num_batches,
                fade,
                patch_scales,
            )
        return discriminator(images, num_batches=num_batches, fade=fade, patch_scales=patch_scales)

    def augment_metrics(self) -> Dict[str, Tensor]:
        """The adaptive augmentation's state, for the logs."""
        return {name: torch.tensor(value) for name, value in self.augment.stats().items()}

    # ------------------------------------------------------------------ after each iteration

    def images_seen(self, step: int) -> int:
        """Real images shown to the discriminator after iteration `step`, over all devices: counted on from the
        checkpoint's own count when resumed, so that another number of processes (or another batch) than the run
        was saved with moves the schedules and the curve on from where they were, not from a recount."""
        counted_step, counted_images = self.counted_from
        return counted_images + (step - counted_step) * self.batch_size * self.world_size

    def update_generator_ema(self, step: int) -> None:
        """Moves the EMA generator towards the trained one (half-life in images)."""
        beta = self.config.ema.beta(self.images_seen(step), self.batch_size * self.world_size)
        update_ema(self.model.generator_ema, self.model.generator, beta)

    def update_training_progress(self, step: int) -> None:
        """Schedules that follow the images seen after iteration `step` (-1: none yet): the positional encoding's
        coarse-to-fine annealing, the growing stage, with the MLP's sample capacity of its patches, and the blur of the
        discriminator's inputs."""
        images_seen = self.images_seen(step)
        self.progress_step = step
        self.model.set_training_progress(images_seen)
        self.growth_stage = self.config.progressive_growing.stage(images_seen)
        capacities = self.query_capacities[self.growth_stage.downscale]
        self.model.training_query_capacity, self.model.training_importance_capacity = capacities
        self.input_blur_kernel = self.config.input_blur.kernel(images_seen, self.device)

    def update_augment_probability(self, step: int) -> None:
        """ADA: raises p when the discriminator overfits the reals, lowers it otherwise."""
        self.augment.update(step, self.batch_size)

    def get_training_callbacks(
        self, training_callback_attributes: TrainingCallbackAttributes
    ) -> List[TrainingCallback]:
        after_iteration = [TrainingCallbackLocation.AFTER_TRAIN_ITERATION]
        return super().get_training_callbacks(training_callback_attributes) + [
            TrainingCallback(after_iteration, self.update_generator_ema, update_every_num_iters=1),
            TrainingCallback(after_iteration, self.update_augment_probability, update_every_num_iters=1),
            TrainingCallback(after_iteration, self.update_training_progress, update_every_num_iters=1),
        ]

    def get_param_groups(self) -> Dict[str, List[Parameter]]:
        return {**self.model.get_param_groups(), "discriminator": list(self.discriminator.parameters())}

    # ------------------------------------------------------------------ evaluation during training

    @torch.no_grad()
    def get_eval_loss_dict(self, step: int) -> Tuple[Dict[str, Any], Dict[str, Tensor], Dict[str, Tensor]]:
        """SWD between patches of the shown generator (the EMA unless `render_with_ema` is off) and real patches: the
        learning curve (lower is better)."""
        self.eval()
        generator = self.model.rendering_generator()
        real, fake = [], []
        while sum(len(batch) for batch in real) < self.config.num_eval_images:
            ray_bundle, batch = self.datamanager.next_eval(step)
            latents = self.sample_latents(self.batch_size)
            weights = generator.object_weights(latents)
            with self.model.evaluation_autocast():
                outputs = self.model.render_rays(self.model.collider(ray_bundle), generator, weights)
            patch = self.config.datamanager.patch_size
            fake.append(outputs["rgb"].float().reshape(-1, patch, patch, 3).permute(0, 3, 1, 2))
            real.append(batch["image"].permute(0, 3, 1, 2))
        count = self.config.num_eval_images
        swd = sliced_wasserstein_distance(torch.cat(real)[:count], torch.cat(fake)[:count], self.config.swd)
        self.train()
        per_level = {name: torch.tensor(value) for name, value in swd.items() if name != "swd"}
        return {}, {"swd": torch.tensor(swd["swd"])}, per_level

    @torch.no_grad()
    def get_eval_image_metrics_and_images(self, step: int) -> Tuple[Dict[str, Any], Dict[str, Tensor]]:
        """A grid of EMA objects (seeds 0..N-1) seen from one orbit camera, and the viewed object with depth."""
        metrics_dict, images_dict = super().get_eval_image_metrics_and_images(step)
        self.eval()
        camera, _ = self.datamanager.next_eval_image(step)
        seeds = range(self.config.sample_grid_seeds)
        latents = self.model.latents_from_seeds(seeds)
        images = self.model.render_latents(latents, camera[torch.zeros(len(seeds), dtype=torch.long)])["rgb"]
        images_dict["samples"] = torch.cat(list(images), dim=1)
        self.train()
        return metrics_dict, images_dict

    def get_average_eval_image_metrics(
        self, step: Optional[int] = None, output_path: Optional[Path] = None, get_std: bool = False
    ) -> Dict[str, float]:
        """`ns-eval`: FID, KID and SWD of EMA samples against the training images (see `metrics.evaluation`).

        Without Inception weights on this machine, FID and KID are left out with instructions on how to get them.
        """
        config = self.config.evaluation
        try:
            results = evaluate_generator(self, config, self.config.swd)
        except InceptionUnavailableError as error:
            print_error(error)
            results = evaluate_generator(self, without_inception_metrics(config), self.config.swd)
        self.train()
        return results

    # ------------------------------------------------------------------ checkpoints

    def load_pipeline(self, loaded_state: Dict[str, Any], step: int) -> None:
        """Loads a checkpoint written after iteration `step`, and the schedules that follow from that step."""
        if EXTRA_STATE_KEY not in loaded_state and f"module.{EXTRA_STATE_KEY}" not in loaded_state:
            # Written before checkpoints kept the images seen: counted from the start, as they were then, at this
            # run's batch and number of processes.
            loaded_state = {**loaded_state, EXTRA_STATE_KEY: {"step": -1, "images_seen": 0}}
        super().load_pipeline(loaded_state, step)
        self.update_training_progress(step)

    def get_extra_state(self) -> Dict[str, int]:
        """Beside the tensors, the pipeline's state holds the images seen after the last iteration (`ns-eval` and
        `ns-render` load only the pipeline's state, and open the encoding's octaves from it)."""
        return {"step": self.progress_step, "images_seen": self.images_seen(self.progress_step)}

    def set_extra_state(self, state: Dict[str, int]) -> None:
        self.counted_from = (int(state["step"]), int(state["images_seen"]))

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: Optional[bool] = None):  # type: ignore[override]
        """Loads every part strictly: a checkpoint missing the discriminator or the EMA must not load silently."""
        return nn.Module.load_state_dict(self, state_dict, strict=True if strict is None else strict)
