"""HyperNeRFGAN as a nerfstudio model: every latent is an object, rendered by volume rendering of its own NeRF.

Two ways in:

- Training (`forward(ray_bundle, latents)`): a batch of latents, one per camera; ray r belongs to the object
  `ray_bundle.camera_indices[r]`. Rays arrive grouped per object in equal blocks (the datamanager makes them so),
  and all objects are rendered at once with batched matmuls. Stratified sampling and density noise are on in
  training mode. The trained generator is used.
- Viewing (`get_outputs_for_camera_ray_bundle`, used by the viewer, `ns-render` and `ns-eval`): the *viewed
  object* is model state (persistent buffers: its latent, seed and truncation), so a reloaded checkpoint shows the
  same object. Its weights are generated once per camera by the EMA generator, then the rays are rendered in
  chunks of bounded memory. The viewer's renders alone may take a count of samples per ray of their own
  (`viewer_render_samples`, its "Samples per ray" slider).
- Sampling (`render_latents`, used by the quality curve, `ns-eval`'s scores, `hypernerfgan samples` and
  `video`): many latents, one camera each, rendered several views per pass of the field.

Both run the target MLP only at the samples that can lie inside the object sphere, where the density bound allows
density (`points_to_query`): the rest render as empty space without it. On CUDA they render in the precision the
presets train in (`eval_mixed_precision`).

The adversarial losses need the discriminator, so they live with it in the pipeline
(`hypernerfgan_ns.training.losses`); the model renders.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Dict, List, Optional, Sequence, Tuple, Type

import torch
import torch.utils.checkpoint
from jaxtyping import Float, Int
from torch import Tensor
from torch.nn import Parameter

from hypernerfgan_ns.data.dataset_presets import DatasetPreset
from hypernerfgan_ns.fields.target_field import ObjectWeights, TargetField
from hypernerfgan_ns.model_components.colliders import ObjectShellCollider
from hypernerfgan_ns.model_components.object_bound import points_inside_first
from hypernerfgan_ns.model_components.ray_samplers import LinspaceSampler, merged_samples, require_samples_per_ray
from hypernerfgan_ns.networks.generator import Generator
from hypernerfgan_ns.utils.compiling import call_compiled
from hypernerfgan_ns.utils.config_compat import DefaultsForMissingFields
from hypernerfgan_ns.viewer.object_controls import ObjectViewerControls
from hypernerfgan_ns.viewer.render_controls import RenderViewerControls
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.model_components.ray_samplers import PDFSampler
from nerfstudio.model_components.renderers import AccumulationRenderer, DepthRenderer, RGBRenderer
from nerfstudio.models.base_model import Model, ModelConfig
from nerfstudio.utils import colormaps, colors

BACKGROUND_COLOR = "white"
"""Renders are composited on white, as the training photos are."""

NO_SKIP = -1
"""Value of `skip_layer` that disables the skip connection."""

MIN_OPACITY = 1e-6
"""Opacity a composite is divided by at least, to take the background out of a ray that hardly meets the object."""

COMPILE_TARGET_FIELD_OPTION = "--pipeline.model.compile-target-field"
"""The option `compile_target_field` is set with, named where compiling fails."""


@dataclass
class HyperNeRFGANModelConfig(DefaultsForMissingFields, ModelConfig):
    """The generator (hypernetwork + target NeRF) and how its objects are rendered."""

    _target: Type = field(default_factory=lambda: HyperNeRFGANModel)
    latent_dim: int = 128
    """Dimensionality of the latent z ~ N(0, I)."""
    w_dim: int = 128
    """Dimensionality of the mapping network's output w."""
    mapping_layers: int = 2
    """Fully connected layers of the mapping network."""
    mapping_lr_multiplier: float = 0.01
    """Learning-rate multiplier of the mapping network (equalized learning rate)."""
    w_avg_beta: float = 0.995
    """Decay of the running mean of w that truncation pulls towards."""
    fmm_rank: int = 10
    """Rank r of each target layer's factorised multiplicative modulation."""
    hidden_width: int = 128
    """Width of the target NeRF MLP."""
    num_hidden_layers: Optional[int] = None
    """Hidden layers of the target NeRF MLP; None: the dataset preset's (4 or 8)."""
    skip_layer: Optional[int] = None
    """0-based hidden layer after which the encoded input is concatenated again; None: the dataset preset's;
    -1: no skip."""
    num_octaves: int = 10
    """Positional-encoding frequencies of the position (10 gives 63 input channels)."""
    frequency_annealing_images: int = 0
    """Fade the positional encoding's octaves in one after another, coarse to fine, over this many training images
    (BARF's schedule): objects take shape before they take detail. 0: every octave from the start (the reference)."""
    density_noise_std: float = 1.0
    """Std of the Gaussian noise added to the raw density in training (regularises towards solid surfaces)."""
    density_prior_radius: float = 0.6
    """Radius of the soft sphere added to the raw density, so that a new generator renders a blob, not fog."""
    density_prior_slope: float = 10.0
    """The prior adds slope * (radius - |x|) to the raw density: more towards the centre, less outside the sphere;
    0 turns the prior off (the reference has none)."""
    density_softplus_shift: Optional[float] = None
    """Density = softplus(raw - shift) instead of relu(raw): EG3D's activation (shift 1). A ReLU has no gradient
    where the raw density is negative, so a region that lost its density gets none back from the discriminator; a
    softplus gives one that fades exponentially below the shift (next to none far below it), at the price of a faint
    density everywhere in the object sphere. None: ReLU (the reference's)."""
    bound_density_to_object: bool = True
    """Zero density outside the object sphere (the camera prior's radius - near, or far - radius if smaller): the
    only place the prior frames as an object. No sample can then be a bar across the frame or a wall at the far
    plane. The reference has no bound (off for imported checkpoints)."""
    num_coarse_samples: int = 64
    """Samples per ray, evenly spaced between near and far (stratified in training)."""
    num_render_samples: Optional[int] = None
    """Evenly spaced samples per ray for renders outside training (the quality curve, ns-eval, ns-render, the viewer,
    `hypernerfgan samples` and videos), at their linspace points; None: `num_coarse_samples`. The viewer starts from it,
    and its "Samples per ray" slider changes the viewer's own count. More than training's draw surfaces between
    training's depths, where its fixed depths leave stacked lines on sloped sides, for proportionally more field queries
    per view: `hypernerfgan-lite` after 10,000 images, FID 162.6 and 192.2 at its 32, 154.2 and 185.2 at 64 on two seeds
    (docs/ablations.md, "More samples per ray in renders"). Our commands take `--num-render-samples` to render a trained
    run otherwise."""
    num_importance_samples: int = 0
    """Extra samples per ray placed by nerfstudio's PDFSampler where the coarse pass found density, and composited
    with the coarse ones (pi-GAN's hierarchical sampling: each sample evaluated once, all of them trained through);
    0: off."""
    opaque_far_plane: bool = False
    """Treat the last sample's interval as infinite, as the reference implementation does (on for imported
    checkpoints, and in the `no-density-bound` ablation). Off by default: with the density bound nothing lies beyond
    the far plane, and as the object sphere touches it, the last training sample of a ray near the optical axis can
    lie inside the sphere, where an infinite interval would turn the least density into an opaque disk that
    evaluation renders never show."""
    recompute_ray_chunk: Optional[int] = None
    """Memory saver: keep no target-MLP activations for the backward pass but recompute them, this many rays per
    object at a time (torch.utils.checkpoint), so activation memory stops growing with patch x samples, for about
    one more MLP forward pass; None: keep all activations."""
    compile_target_field: bool = False
    """Run the trained generator's target field in training (both phases) through `torch.compile`
    (`utils.compiling`): each layer's bias added in the pass that applies its ReLU, the ReLU's
    backward and the bias gradient's sum in one pass, the encoding and the heads a kernel each, where eager runs
    separate passes over the activations; the same renders and gradients to float rounding (the density noise comes
    from other random numbers). Compiling takes tens of seconds at the first iterations (a graph per grad mode;
    again after a change of patch size) and needs a C++ compiler on the CPU, Triton on a GPU. Renders outside
    training stay eager: their point counts change with every view. Off: as fast as eager on the CPU, where fp32
    matmuls set the pace; `hypernerfgan bench --variants compiled-target-field` measures it on a GPU."""
    eval_num_rays_per_chunk: int = 1 << 16
    """Rays rendered at a time outside training (quality curve, ns-eval, ns-render, samples, the viewer): whole
    views when they fit, several objects' views in one pass of the field, so four 128x128 views of the paper's model
    take 114 operations each instead of 467 (one view per pass), for about 0.44 GB of transient memory per view held
    (fp32, with `eval_query_inside_bound_only`; 1.5 GB without). A view larger than a chunk renders in row-major
    chunks."""
    eval_query_inside_bound_only: bool = True
    """Outside training (quality curve, ns-eval, ns-render, samples, the viewer), run the target MLP only at the
    samples inside the object sphere, where the density bound allows density: the same renders for about a quarter
    of the MLP's work and memory per view (3.6x faster views of the paper's model on the CPU). No effect without
    the bound (`bound_density_to_object`)."""
    train_query_inside_bound_only: bool = True
    """In training, run the target MLP at no more of each object's samples than a training patch can have inside the
    object sphere (the most any patch of a prior camera can, counted once from the patch size and the samples'
    intervals; `model_components.object_bound`): the same renders and gradients for less MLP work where patches
    are smaller than the sphere's image (a quarter on whole-image patches). Only with unscaled patches, coarse
    samples only and the bound on; the pipeline sets the count."""
    train_query_min_saving: float = 0.1
    """Run the training MLP inside the bound only when that leaves out at least this fraction of a patch's samples:
    below it the selection (a sort, a gather and a scatter per render: 42 more operations per iteration) costs what
    it saves. 32-pixel crops of 128-pixel images (`hypernerfgan-lite` with the `crops` row) can all lie on the
    sphere's image, which leaves out 4%."""
    eval_mixed_precision: bool = False
    """Outside training, run the target MLP in fp16 autocast on CUDA, as training does with mixed precision (the
    presets that train in fp16 set it): a view of the paper's model is 72 GFLOP of target-MLP matmuls, which a
    Tesla T4 runs on tensor cores at 65 TFLOP/s in fp16 against 8 TFLOP/s in fp32. Colours and densities come out
    in fp32 either way. The CPU renders in fp32, as nerfstudio trains there (its fp16 matmuls are slower)."""
    render_with_ema: bool = True
    """Show and score the EMA generator (the viewer, ns-render, ns-eval, the quality curve, tensorboard's samples and
    patch SWD); False: the trained one."""
    viewed_seed: int = 0
    """Seed of the object shown first in the viewer and by ns-render."""
    viewed_truncation: float = 1.0
    """Truncation psi of the viewed object (1: untruncated, 0: the average object)."""


class HyperNeRFGANModel(Model):
    """Generator, EMA generator, samplers and renderers; see the module docstring."""

    config: HyperNeRFGANModelConfig

    def populate_modules(self) -> None:
        # Not calling super(): nerfstudio's default collider uses fixed near/far distances; ours follows the camera.
        preset: DatasetPreset = self.kwargs["metadata"]["dataset_preset"]
        self.dataset_preset = preset
        self.num_hidden_layers, self.skip_layer = self.resolve_architecture(self.config, preset)
        prior = preset.camera_prior
        self.collider = ObjectShellCollider(radius=prior.radius, near=prior.near, far=prior.far)

        self.generator = Generator(
            num_hidden_layers=self.num_hidden_layers,
            hidden_width=self.config.hidden_width,
            skip_layer=self.skip_layer,
            num_octaves=self.config.num_octaves,
            latent_dim=self.config.latent_dim,
            w_dim=self.config.w_dim,
            mapping_layers=self.config.mapping_layers,
            mapping_lr_multiplier=self.config.mapping_lr_multiplier,
            w_avg_beta=self.config.w_avg_beta,
            fmm_rank=self.config.fmm_rank,
            density_prior_radius=self.config.density_prior_radius,
            density_prior_slope=self.config.density_prior_slope,
            object_radius=prior.object_radius if self.config.bound_density_to_object else None,
            density_softplus_shift=self.config.density_softplus_shift,
        )
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False).eval()

        if self.config.num_render_samples is not None:
            require_samples_per_ray(
                self.config.num_render_samples,
                "--pipeline.model.num-render-samples; leave it unset to render with the training count",
            )
        self.sampler_coarse = LinspaceSampler(
            num_samples=self.config.num_coarse_samples,
            opaque_far_plane=self.config.opaque_far_plane,
            spacing_bins=self.config.num_importance_samples > 0,
        )
        self.sampler_importance = (
            PDFSampler(num_samples=self.config.num_importance_samples, include_original=False)
            if self.config.num_importance_samples > 0
            else None
        )
        self.renderer_rgb = RGBRenderer(background_color=BACKGROUND_COLOR)
        self.renderer_accumulation = AccumulationRenderer()
        self.renderer_depth = DepthRenderer(method="expected")

        self.training_query_capacity: Optional[int] = None
        """Coarse samples per object the target MLP runs at in training (`train_query_inside_bound_only`, set by the
        pipeline); None: all of them."""
        self.training_importance_capacity: Optional[int] = None
        """The same for the importance samples."""

        self.register_buffer("viewed_latent", self.latent_from_seed(self.config.viewed_seed))
        self.register_buffer("viewed_seed", torch.tensor(self.config.viewed_seed, dtype=torch.long))
        self.register_buffer("viewed_truncation", torch.tensor(self.config.viewed_truncation))
        self.object_controls = ObjectViewerControls(self)
        self.viewer_render_samples: Optional[int] = None
        """Samples per ray of the viewer's renders (its "Samples per ray" slider); None: `render_samples`. An
        attribute, not a buffer or the config: not saved, and set by nothing but the slider, so that ns-render (the
        viewer's way in too, with no slider moved), ns-eval and the quality curve keep the run's count while the viewer
        shows another during ns-train."""
        self.render_controls = RenderViewerControls(self)

    @staticmethod
    def resolve_architecture(config: HyperNeRFGANModelConfig, preset: DatasetPreset) -> Tuple[int, Optional[int]]:
        """Target-MLP depth and skip layer: the config's where given, else the dataset preset's."""
        num_hidden_layers = (
            config.num_hidden_layers if config.num_hidden_layers is not None else preset.num_hidden_layers
        )
        skip_layer = config.skip_layer if config.skip_layer is not None else preset.skip_layer
        if skip_layer == NO_SKIP:
            skip_layer = None
        return num_hidden_layers, skip_layer

    def set_training_progress(self, images_seen: int) -> None:
        """Opens the positional encoding's octaves as far as `images_seen` training images take the annealing."""
        annealing = self.config.frequency_annealing_images
        alpha = self.config.num_octaves * images_seen / annealing if annealing > 0 else float(self.config.num_octaves)
        for generator in (self.generator, self.generator_ema):
            generator.field.encoding.set_progress(alpha)

    def train(self, mode: bool = True) -> "HyperNeRFGANModel":
        """The EMA generator always stays in evaluation mode: its running statistics are copied, not learned."""
        super().train(mode)
        self.generator_ema.eval()
        return self

    # ------------------------------------------------------------------ latents and the viewed object

    def latent_from_seed(self, seed: int) -> Float[Tensor, "1 latent_dim"]:
        """The latent z of a seed: the same object on every machine."""
        generator = torch.Generator().manual_seed(int(seed))
        return torch.randn(1, self.config.latent_dim, generator=generator)

    def latents_from_seeds(self, seeds: Sequence[int]) -> Float[Tensor, "seeds latent_dim"]:
        """The latent z of each seed (the same objects as the viewer's and ns-render's seeds)."""
        return torch.cat([self.latent_from_seed(seed) for seed in seeds])

    def set_viewed_object(
        self, latent: Float[Tensor, "1 latent_dim"], seed: int, truncation: Optional[float] = None
    ) -> None:
        """Makes `latent` the object that the viewer, ns-render and ns-eval show."""
        self.viewed_latent.copy_(latent.to(self.viewed_latent))
        self.viewed_seed.fill_(int(seed))
        if truncation is not None:
            self.viewed_truncation.fill_(float(truncation))

    @property
    def render_samples(self) -> int:
        """Evenly spaced samples per ray of renders outside training (before any importance samples)."""
        return self.config.num_render_samples or self.config.num_coarse_samples

    def set_viewer_render_samples(self, samples_per_ray: int) -> None:
        """Renders the viewer's frames with `samples_per_ray` evenly spaced samples per ray from now on."""
        require_samples_per_ray(samples_per_ray, "viewer_render_samples")
        self.viewer_render_samples = int(samples_per_ray)

    def rendering_generator(self) -> Generator:
        """The generator whose objects are shown: the EMA one unless configured otherwise."""
        return self.generator_ema if self.config.render_with_ema else self.generator

    # ------------------------------------------------------------------ rendering

    def get_param_groups(self) -> Dict[str, List[Parameter]]:
        return {"generator": list(self.generator.parameters())}

    def forward(self, ray_bundle: RayBundle, latents: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Renders rays of a batch of objects with the trained generator (or of the viewed object if no latents).

        Args:
            ray_bundle: rays grouped per object in equal blocks; `camera_indices` name each ray's object.
            latents: [objects, latent_dim], one latent per object; None renders the viewed object.
        """
        if latents is None:
            return self.get_outputs(ray_bundle)
        weights = self.generator.object_weights(latents)
        return self.render_rays(self.collider(ray_bundle), self.generator, weights)

    def get_outputs(self, ray_bundle: RayBundle) -> Dict[str, Tensor]:
        """Renders rays of the viewed object (generating its weights; prefer `get_outputs_for_camera`)."""
        generator = self.rendering_generator()
        weights = generator.object_weights(self.viewed_latent, float(self.viewed_truncation))
        return self.render_rays(self.collider(ray_bundle), generator, weights)

    @torch.no_grad()
    def get_outputs_for_camera_ray_bundle(self, camera_ray_bundle: RayBundle) -> Dict[str, Tensor]:
        """Renders a whole camera of the viewed object: weights once, rays in chunks of bounded memory."""
        generator = self.rendering_generator()
        weights = generator.object_weights(self.viewed_latent, float(self.viewed_truncation))
        return self.render_camera(camera_ray_bundle, generator, weights, self.viewer_render_samples)

    @torch.no_grad()
    def render_latent(
        self, latent: Float[Tensor, "1 latent_dim"], camera: Cameras, truncation_psi: float = 1.0
    ) -> Dict[str, Tensor]:
        """Renders the object of `latent` (EMA generator unless configured otherwise) from a single camera.

        Returns `rgb` [height, width, 3] in [0, 1] on white, `accumulation` and `depth` [height, width, 1].
        """
        return {name: output[0] for name, output in self.render_latents(latent, camera, truncation_psi).items()}

    @torch.no_grad()
    def render_latents(
        self, latents: Float[Tensor, "views latent_dim"], cameras: Cameras, truncation_psi: float = 1.0
    ) -> Dict[str, Tensor]:
        """Renders the object of `latents[i]` from `cameras[i]`, as many views at once as `eval_num_rays_per_chunk`
        holds: one pass of the field then serves several objects, so each view takes fewer operations.

        Returns `rgb` [views, height, width, 3] in [0, 1] on white, `accumulation` and `depth` [views, height,
        width, 1].
        """
        num_views = cameras.shape[0]
        if latents.shape[0] != num_views or cameras.camera_to_worlds.dim() != 3:
            raise ValueError(f"One latent per camera is needed, got {latents.shape[0]} latents and cameras of shape "
                             f"{tuple(cameras.shape)}.")
        if not (torch.all(cameras.height == cameras.height[0]) and torch.all(cameras.width == cameras.width[0])):
            raise ValueError("Views rendered together must share one image size; render cameras of other sizes apart.")
        generator = self.rendering_generator()
        weights = generator.object_weights(latents.to(self.device), truncation_psi)
        cameras = cameras.to(self.device)
        pixel_coords = cameras.get_image_coords()  # [height, width, 2]; the views share one size
        height, width = pixel_coords.shape[:2]
        view_indices = torch.arange(num_views, device=self.device)[:, None, None, None]
        rays = cameras.generate_rays(
            camera_indices=view_indices.expand(num_views, height, width, 1),
            coords=pixel_coords.expand(num_views, height, width, 2),
        )
        outputs = self.render_views(rays.reshape((num_views, height * width)), generator, weights)
        return {name: output.view(num_views, height, width, -1) for name, output in outputs.items()}

    @torch.no_grad()
    def render_camera(
        self,
        camera_ray_bundle: RayBundle,
        generator: Generator,
        weights: ObjectWeights,
        samples_per_ray: Optional[int] = None,
    ) -> Dict[str, Tensor]:
        """Renders an [height, width] ray bundle of one object in chunks of `eval_num_rays_per_chunk` rays, with
        `samples_per_ray` evenly spaced samples (None: `render_samples`)."""
        image_height, image_width = camera_ray_bundle.origins.shape[:2]
        rays = camera_ray_bundle.reshape((1, image_height * image_width))
        outputs = self.render_views(rays, generator, weights, samples_per_ray)
        return {name: output.view(image_height, image_width, -1) for name, output in outputs.items()}

    def views_per_chunk(self, rays_per_view: int) -> int:
        """Whole views of `rays_per_view` rays that one chunk of `eval_num_rays_per_chunk` rays holds (at least 1)."""
        return max(1, self.config.eval_num_rays_per_chunk // rays_per_view)

    @torch.no_grad()
    def render_views(
        self,
        ray_bundle: RayBundle,
        generator: Generator,
        weights: ObjectWeights,
        samples_per_ray: Optional[int] = None,
    ) -> Dict[str, Tensor]:
        """Renders a [views, rays] ray bundle, view i of object i, `eval_num_rays_per_chunk` rays at a time: whole
        views together when they fit, else a view's rays in row-major chunks. Returns [views, rays, channels]."""
        num_views, rays_per_view = ray_bundle.shape
        if weights.num_objects != num_views:
            raise ValueError(f"One object per view is needed, got {weights.num_objects} for {num_views} views.")
        views_at_once = min(num_views, self.views_per_chunk(rays_per_view))
        rays_at_once = min(rays_per_view, self.config.eval_num_rays_per_chunk)
        view_groups: List[Dict[str, Tensor]] = []
        with self.evaluation_autocast():
            for first in range(0, num_views, views_at_once):
                last = min(first + views_at_once, num_views)
                group_weights = weights.select(slice(first, last))
                chunks: Dict[str, List[Tensor]] = defaultdict(list)
                for start in range(0, rays_per_view, rays_at_once):
                    chunk = ray_bundle[first:last, start : start + rays_at_once].to(self.device)
                    chunk.camera_indices = torch.arange(last - first, device=self.device)[:, None, None].expand(
                        chunk.shape + (1,)
                    )  # each view's object in the group, as `render_rays` reads it
                    outputs = self.render_rays(
                        self.collider(chunk.flatten()), generator, group_weights, samples_per_ray
                    )
                    for name, output in outputs.items():
                        chunks[name].append(output.float().view(last - first, -1, output.shape[-1]))
                view_groups.append({name: torch.cat(parts, dim=1) for name, parts in chunks.items()})
        return {name: torch.cat([group[name] for group in view_groups]) for name in view_groups[0]}

    def evaluation_autocast(self) -> ContextManager[Any]:
        """The precision renders outside training run in: fp16 autocast on CUDA with `eval_mixed_precision`, else
        whatever the caller's context is (fp32 unless the caller entered an autocast)."""
        if self.config.eval_mixed_precision and self.device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def render_rays(
        self,
        ray_bundle: RayBundle,
        generator: Generator,
        weights: ObjectWeights,
        samples_per_ray: Optional[int] = None,
    ) -> Dict[str, Tensor]:
        """Volume-renders rays of `weights.num_objects` objects (sample, query the target field, composite): colour
        and opacity, and outside training depth. Training samples `num_coarse_samples` per ray; other renders
        `samples_per_ray` (None: `render_samples`)."""
        density_noise = self.config.density_noise_std if self.training else 0.0
        render_count = samples_per_ray or self.render_samples
        ray_samples = self.sampler_coarse(ray_bundle, num_samples=None if self.training else render_count)
        field_outputs = self.query_field(ray_samples, generator, weights, density_noise, self.training_query_capacity)
        outputs: Dict[str, Tensor] = {}
        if self.sampler_importance is not None:
            # Where to place more samples is not differentiated (the PDF sampler detaches its bins anyway).
            coarse_weights = ray_samples.get_weights(field_outputs[FieldHeadNames.DENSITY].detach())
            if not self.training:  # the coarse pass alone, for the viewer and ns-render; nothing trains on it
                outputs["rgb_coarse"] = self.renderer_rgb(rgb=field_outputs[FieldHeadNames.RGB], weights=coarse_weights)
            importance_samples = self.sampler_importance(ray_bundle, ray_samples, coarse_weights)
            importance_outputs = self.query_field(
                importance_samples, generator, weights, density_noise, self.training_importance_capacity
            )
            ray_samples, order = merged_samples(ray_bundle, ray_samples, importance_samples)
            field_outputs = {
                name: torch.cat([value, importance_outputs[name]], dim=1).gather(
                    1, order[..., None].expand(-1, -1, value.shape[-1])
                )
                for name, value in field_outputs.items()
            }
        sample_weights = ray_samples.get_weights(field_outputs[FieldHeadNames.DENSITY])
        outputs["rgb"] = self.renderer_rgb(rgb=field_outputs[FieldHeadNames.RGB], weights=sample_weights)
        outputs["accumulation"] = self.renderer_accumulation(weights=sample_weights)
        if not self.training:  # the discriminator sees colours only: depth is for views (ns-render, the viewer)
            outputs["depth"] = self.renderer_depth(weights=sample_weights, ray_samples=ray_samples)
        return outputs

    def query_field(
        self,
        ray_samples: RaySamples,
        generator: Generator,
        weights: ObjectWeights,
        density_noise_std: float,
        training_capacity: Optional[int] = None,
    ) -> Dict[FieldHeadNames, Tensor]:
        """Evaluates each object's target field at its own rays' samples, batched over objects; in training at
        `training_capacity` of each object's samples, those in the object sphere first (None: at all of them)."""
        num_objects = weights.num_objects
        positions = ray_samples.frustums.get_positions()  # [rays, samples, 3]
        num_rays, num_samples = positions.shape[:2]
        if num_objects > 1:
            self.check_rays_grouped_by_object(ray_samples.camera_indices[:, 0, 0], num_objects)
        points_per_object = (num_rays // num_objects) * num_samples
        grouped = positions.reshape(num_objects, points_per_object, 3)
        queried = self.points_to_query(grouped, generator.field, training_capacity)
        if queried is not None:
            grouped = grouped.gather(1, queried[..., None].expand(-1, -1, 3))
        field = self.field_to_run(generator)
        chunk = self.config.recompute_ray_chunk
        if chunk is not None and self.training and torch.is_grad_enabled():
            outputs = self.query_field_recomputed(grouped, field, weights, density_noise_std, chunk * num_samples)
        else:
            outputs = field(grouped, weights, density_noise_std=density_noise_std)
        if queried is not None:  # back in place; the samples not queried have no density (nor colour)
            outputs = {name: self.unpacked(value, queried, points_per_object) for name, value in outputs.items()}
        return {name: value.reshape(num_rays, num_samples, -1) for name, value in outputs.items()}

    def points_to_query(
        self, positions: Float[Tensor, "objects points 3"], field: TargetField, training_capacity: Optional[int]
    ) -> Optional[Int[Tensor, "objects queried"]]:
        """The indices of each object's points the target MLP runs at, those the density bound leaves density at
        first (`model_components.object_bound`); None: all of them.

        Outside training they are counted (the host waits for the device once per render); in training there are
        `training_capacity` (the model's `training_query_capacity` for coarse samples, `training_importance_capacity`
        for importance samples), which the patches' geometry guarantees, checked on the device without waiting.
        """
        if field.object_radius is None:
            return None
        if self.training:
            if training_capacity is None or training_capacity >= positions.shape[1]:
                return None
            capacity = training_capacity
            inside = field.may_have_density(positions)
            message = (
                f"More than {capacity} samples of an object's training patch lie inside the object sphere: its rays "
                "are not a prior camera's (at the prior's radius, looking at the origin). Query every sample with "
                "--pipeline.model.train-query-inside-bound-only False."
            )
            torch._assert_async((inside.sum(dim=1) <= capacity).all(), message)
        elif self.config.eval_query_inside_bound_only and not torch.is_grad_enabled():
            inside = field.may_have_density(positions)
            capacity = int(inside.sum(dim=1).max())
        else:
            return None
        return points_inside_first(inside)[:, :capacity]

    def training_points_per_object(self, rays_per_object: int) -> int:
        """Samples per object the target MLP runs at in a training render of `rays_per_object` rays: the coarse and
        the importance samples' capacities where they are set, else all of their samples."""
        coarse, importance = self.training_query_capacity, self.training_importance_capacity
        if coarse is None:
            coarse = rays_per_object * self.config.num_coarse_samples
        if importance is None:
            importance = rays_per_object * self.config.num_importance_samples
        return coarse + importance

    def field_to_run(self, generator: Generator) -> Callable[..., Dict[FieldHeadNames, Tensor]]:
        """`generator.field` as this render runs it: compiled for the trained generator in training with
        `compile_target_field`, else eager."""
        if not (self.config.compile_target_field and self.training and generator is self.generator):
            return generator.field
        return functools.partial(call_compiled, TargetField.forward, COMPILE_TARGET_FIELD_OPTION, generator.field)

    @staticmethod
    def unpacked(
        values: Float[Tensor, "objects queried channels"], queried: Int[Tensor, "objects queried"], num_points: int
    ) -> Float[Tensor, "objects points channels"]:
        """Values of the queried points at their places among all `num_points` of each object; zero elsewhere."""
        full = values.new_zeros(values.shape[0], num_points, values.shape[-1])
        return full.scatter(1, queried[..., None].expand(-1, -1, values.shape[-1]), values)

    @staticmethod
    def query_field_recomputed(
        positions: Float[Tensor, "objects points 3"],
        field: Callable[..., Dict[FieldHeadNames, Tensor]],
        weights: ObjectWeights,
        density_noise_std: float,
        chunk_points: int,
    ) -> Dict[FieldHeadNames, Tensor]:
        """The field over chunks of points whose activations are recomputed in the backward pass.

        Checkpointing restores the random-number state, so the density noise of the recomputation is the same.
        """
        chunks = [
            torch.utils.checkpoint.checkpoint(
                field, positions[:, start : start + chunk_points], weights, density_noise_std,
                use_reentrant=False,
            )
            for start in range(0, positions.shape[1], chunk_points)
        ]
        return {name: torch.cat([chunk[name] for chunk in chunks], dim=1) for name in chunks[0]}

    @staticmethod
    def check_rays_grouped_by_object(object_indices: Tensor, num_objects: int) -> None:
        """Batched rendering needs rays ordered by object in equal blocks; anything else is a caller bug.

        The layout is checked where the indices are, without the host waiting for the device (a training
        iteration waits once, for the grad scaler): on a GPU a wrong layout fails the next synchronisation with this
        message, on the CPU it fails here.
        """
        num_rays = object_indices.shape[0]
        message = (
            f"Rays must come grouped by object in {num_objects} equal contiguous blocks (camera_indices "
            f"0,0,...,1,1,...); got {num_rays} rays with another layout."
        )
        if num_rays % num_objects != 0:
            raise ValueError(message)
        objects = torch.arange(num_objects, device=object_indices.device)
        torch._assert_async((object_indices.view(num_objects, -1) == objects[:, None]).all(), message)

    # ------------------------------------------------------------------ nerfstudio's evaluation hooks

    def get_rgba_image(self, outputs: Dict[str, Tensor], output_name: str = "rgb") -> Float[Tensor, "*rays 4"]:
        """The object's own colour and its opacity, the background taken out of the composite: what `ns-render
        --rendered-output-names rgba` writes, and what `ns-export pointcloud` and `poisson` keep a ray's point by (an
        opacity above one half). nerfstudio's own version gives every ray an opacity of 1 where the background is a
        fixed colour, which turned the background's rays into a shell of points at the near plane."""
        opacity = outputs[output_name.replace("rgb", "accumulation")]
        background = colors.get_color(BACKGROUND_COLOR).to(opacity)
        colour = (outputs[output_name] - (1.0 - opacity) * background) / opacity.clamp(min=MIN_OPACITY)
        return torch.cat([colour.clamp(0.0, 1.0), opacity], dim=-1)

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, Tensor]:
        """The model has no losses of its own: the adversarial losses need the discriminator (see the pipeline)."""
        return {}

    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Any]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        """A render of the viewed object beside its depth; a GAN has no ground truth for this view."""
        depth = colormaps.apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"])
        return {}, {"render": torch.cat([outputs["rgb"], depth], dim=1)}
