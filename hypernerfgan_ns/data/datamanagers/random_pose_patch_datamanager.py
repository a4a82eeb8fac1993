"""Where a GAN's training batch comes from: random cameras for the fakes, random crops of photos for the reals.

Each batch is B random cameras drawn from the dataset preset's camera prior, with rays through one contiguous
P x P patch of each camera's full-resolution pixel grid at a random offset (unscaled: the patch has the photos'
level of detail), plus B random real photos with an independent random P x P crop each. Rays come grouped per
camera, which is the object each ray belongs to: `camera_indices` 0..B-1.

With GRAF's patch-scale annealing (`patch_scale_annealing_images`), a patch instead covers a square of F >= P
pixels, its P x P rays spread evenly over it, and the real patch is the photo sampled bilinearly at the same points
(or at the pixels they fall in, `scaled_real_patches`).
F is drawn uniformly between a smallest footprint and the whole image, and the smallest footprint shrinks from the
whole image to P over the annealing: the discriminator judges whole objects first and detail later. Whole-image
patches (`whole_image_patches`) keep F the whole image throughout. Each patch's scale, F / R, goes with it (the rays'
`metadata["patch_scale"]`, the reals' batch "patch_scale"), for a discriminator told the scale
(`patch_scale_conditioning`).

With progressive growing (`training.progressive_growing`), a batch can be `downscale` = d times coarser: P / d x P / d
patches of the cameras' and the photos' grids at resolution R / d, the photos sampled at the coarse pixels' centres
(or averaged over them, `coarse_real_patches`). Such a patch covers what a full-resolution patch covers, in d^2 fewer
rays.

The random draws are made on the CPU; what reaches the GPU is small (the poses and patch offsets, through pinned
memory without waiting), and the training images themselves stay on the GPU when they fit (`max_device_images_gb`).
A ray is nerfstudio's ray of the prior's camera (`Cameras.generate_rays`) carried by the camera's rigid pose: its
direction, pixel area and direction norm do not depend on the pose, so they are generated once per pixel of the
full-resolution grid at the identity pose, held on the training device, and a batch's rays are a gather of its
patches' pixels and one rotation per camera. Generating them per batch on the CPU took 36 to 38 ms of host time
per iteration of the paper's configuration on 2 CPU cores (two batches of 16,384 rays, `hypernerfgan bench`'s
"batch ms"): host time a GPU waits for. Annealed patches fall between pixel centres; their camera-space rays are
generated per batch. A whole-image patch's rays are the pixel centres of the grid at the patch's resolution (at
(i + 0.5) R / P, the points its real pixels are read at), from that grid's table; at a random phase
(`whole_image_patch_phase`) they are every s-th pixel of the full grid from a random first one, gathered from its
table as a crop's are, and the real patch is the same lattice of photo pixels.

The evaluation side is nerfstudio's: a dataset of orbit cameras for the viewer, `ns-render` and `ns-eval`.
`ns-export pointcloud` and `poisson` render the viewed object along the rays of training batches, as many cameras per
batch as the rays they ask for (`PatchBatchRays`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Literal, Optional, Tuple, Type, Union

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int, UInt8
from torch import Tensor

from hypernerfgan_ns.cameras.camera_prior import CameraPriorConfig
from hypernerfgan_ns.data.dataparsers.unposed_images_dataparser import ImageNeed, UnposedImagesDataParserConfig
from hypernerfgan_ns.data.datasets.unposed_images_dataset import UnposedImagesDataset
from hypernerfgan_ns.data.image_collection import ImageStore
from hypernerfgan_ns.errors import ConfigError, DatasetError
from hypernerfgan_ns.utils.config_compat import DefaultsForMissingFields
from hypernerfgan_ns.utils.transfers import to_device
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.configs.dataparser_configs import AnnotatedDataParserUnion
from nerfstudio.data.datamanagers.base_datamanager import DataManager, VanillaDataManager, VanillaDataManagerConfig
from nerfstudio.data.utils.dataloaders import FixedIndicesEvalDataloader, RandIndicesEvalDataloader
from nerfstudio.utils.rich_utils import CONSOLE

UINT8_MAX = 255.0
"""Scale of the decoded images."""

GIB = float(1 << 30)
"""Bytes per GiB."""


IDENTITY_POSE = torch.eye(3, 4)
"""The camera-to-world matrix of a camera at the origin looking down -z (nerfstudio's camera frame)."""


def posed_rays(
    rays: Float[Tensor, "cameras rays 5"], camera_to_worlds: Float[Tensor, "cameras 3 4"]
) -> RayBundle:
    """The ray bundle of camera-space rays (`RandomPosePatchDataManager.camera_space_rays`) seen by cameras with
    these poses, grouped per camera (`camera_indices`), as `Cameras.generate_rays` makes it: origins at the
    cameras' centres, directions rotated with them; pixel areas and direction norms are the same in any pose.
    Always in fp32: the training phases call the datamanager inside their fp16 autocast."""
    num_cameras, num_rays = rays.shape[:2]
    rotations, centres = camera_to_worlds[:, :, :3], camera_to_worlds[:, :, 3]
    with torch.autocast(device_type=rays.device.type, enabled=False):
        directions = torch.bmm(rays[..., :3], rotations.transpose(1, 2))
    camera_indices = torch.arange(num_cameras, device=rays.device)[:, None].expand(num_cameras, num_rays)
    return RayBundle(
        origins=centres[:, None, :].expand(num_cameras, num_rays, 3).reshape(-1, 3),
        directions=directions.reshape(-1, 3),
        pixel_area=rays[..., 3:4].reshape(-1, 1),
        camera_indices=camera_indices.reshape(-1, 1),
        metadata={"directions_norm": rays[..., 4:5].reshape(-1, 1)},
    )


def pixel_centres(resolution: int) -> Float[Tensor, "pixels 2"]:
    """(row, column) coordinates of every pixel centre of a square grid, row by row."""
    centres = torch.arange(resolution) + 0.5
    return torch.stack(torch.meshgrid(centres, centres, indexing="ij"), dim=-1).flatten(0, 1)


def resample_patches(
    images: UInt8[Tensor, "images height width 3"],
    indices: Int[Tensor, "batch"],
    rows: Float[Tensor, "batch patch"],
    columns: Float[Tensor, "batch patch"],
    reading: Literal["bilinear", "nearest"] = "bilinear",
) -> Float[Tensor, "batch patch patch 3"]:
    """Image `indices[i]` sampled at the points (rows[i, u], columns[i, v]), in pixel units with pixel centres at
    k + 0.5, as values in [0, 1]: "bilinear" blends the four nearest pixels; "nearest" takes the pixel each point falls
    in (pixel k spans [k, k + 1)), every value a photo pixel, none a blend of neighbours."""
    if reading == "nearest":
        height, width = images.shape[1:3]
        pixel_rows = rows.floor().long().clamp_(0, height - 1)[:, :, None]  # [batch, patch, 1]
        pixel_columns = columns.floor().long().clamp_(0, width - 1)[:, None, :]  # [batch, 1, patch]
        return images[indices[:, None, None], pixel_rows, pixel_columns].float() / UINT8_MAX
    chosen = images[indices].permute(0, 3, 1, 2).float() / UINT8_MAX  # [batch, 3, H, W]
    height, width = chosen.shape[-2:]
    y = (2.0 * rows / height - 1.0)[:, :, None].expand(-1, -1, columns.shape[1])
    x = (2.0 * columns / width - 1.0)[:, None, :].expand(-1, rows.shape[1], -1)
    grid = torch.stack([x, y], dim=-1)  # grid_sample's (x, y) order
    return F.grid_sample(chosen, grid, mode="bilinear", align_corners=False).permute(0, 2, 3, 1)


def crop_patches(
    images: UInt8[Tensor, "images height width 3"],
    indices: Int[Tensor, "batch"],
    offsets: Int[Tensor, "batch 2"],
    patch: int,
    stride: int = 1,
) -> UInt8[Tensor, "batch patch patch 3"]:
    """The patch x patch crop at (row, column) `offsets[i]` of image `indices[i]` (every `stride`-th pixel from there),
    all in one gather."""
    steps = torch.arange(patch, device=images.device) * stride
    rows = (offsets[:, :1] + steps)[:, :, None]  # [batch, patch, 1]
    columns = (offsets[:, 1:] + steps)[:, None, :]  # [batch, 1, patch]
    return images[indices[:, None, None], rows, columns]

IMAGES_NEEDED: Dict[str, ImageNeed] = {"val": "required", "test": "optional", "inference": "none"}
"""Training needs the images; evaluation (ns-eval, ns-render, ns-viewer) uses them if present; rendering does not."""


@dataclass
class RandomPosePatchDataManagerConfig(DefaultsForMissingFields, VanillaDataManagerConfig):
    """Random camera poses and patches for the generator, random crops of real photos for the discriminator."""

    _target: Type = field(default_factory=lambda: RandomPosePatchDataManager)
    dataparser: AnnotatedDataParserUnion = field(default_factory=UnposedImagesDataParserConfig)
    """The unposed image collection (the `unposed-images` dataparser)."""
    batch_size: int = 4
    """Objects (and real photos) per batch and device."""
    patch_size: int = 64
    """Side of the square patch rendered per object and cropped per photo (at most the dataparser's resolution)."""
    mirror_real_images: bool = True
    """Flip each real photo horizontally with probability 1/2 (the reference x-flips the dataset)."""
    patch_scale_annealing_images: int = 0
    """GRAF's patch-scale annealing over this many training images: patches start by covering the whole image at
    low resolution and come to include unscaled ones (footprints uniform between P and the shrinking smallest
    footprint, up to the whole image). 0: unscaled patches only (the reference)."""
    whole_image_patches: bool = False
    """Spread each patch's P x P rays evenly over the whole image, never annealed (GRAF's largest patch scale): the
    discriminator judges every object whole, at the patch's resolution, for the rays of an unscaled patch. With P a
    divisor of the image's side the rays pass at a regular lattice of the photo's pixels, which `scaled_real_patches`
    "nearest" reads exactly: on 16-pixel patches of the tiny preset's 32-pixel cars, FID 107 against 133 for crops
    (3 seeds, better on each) in three quarters of the minutes, where read bilinearly 147 (docs/ablations.md, "Real
    pixels for scaled patches"), and 77 at a random phase (`whole_image_patch_phase`; "Whole-image patches at a random
    phase"). The MLP runs only where the object sphere can be, as for crops. Not with patch-scale annealing."""
    whole_image_patch_phase: Literal["centre", "random"] = "centre"
    """Where a whole-image patch's rays pass within each s x s block of photo pixels (s = R / P, the rays' spacing):
    "centre", at the block's centre, the same points in every batch (at s = 2 a corner of four photo pixels, so each
    real pixel is read at a point between pixels, as `scaled_real_patches` says); "random", at the centre of one of
    the block's pixels, the same one in every block of a patch and drawn per patch, so that every real pixel is
    exactly the photo pixel its ray passes through (no reading to choose) and over training every pixel of the frame
    is some patch's ray, as in the evaluation's full-resolution renders. "random" needs P to divide R. On the tiny
    preset (FID, 5 seeds) "random" was better on the chairs at s = 2 and 4 (87 against 97, 175 against 199), worse
    on the planes at both (65 against 62, 165 against 134), and on the cars better at s = 2 (77 against 107, 3
    seeds) and worse at s = 4 (157 against 119): docs/ablations.md, "Whole-image patches at a random phase" and
    "Whole-image patches against whole images, at equal arithmetic"."""
    scaled_real_patches: Literal["bilinear", "nearest"] = "bilinear"
    """How a scaled patch's real pixels are read from the photo at the points its rays pass through (GRAF's patches:
    patch-scale annealing). "bilinear" blends the four nearest pixels, as GRAF's grid_sample does: a patch that
    covers the whole image at half resolution samples between pixels and so averages 2 x 2 of them, and an unscaled
    patch at a fractional offset is blurred, where a fake pixel is one ray of the field however large the footprint;
    "nearest" takes the pixel each point falls in, so that every real pixel is a photo pixel, as at full resolution,
    but where the rays' spacing is not a whole number of pixels (annealed footprints) it skips pixels unevenly."""
    coarse_real_patches: Literal["point", "box"] = "point"
    """How progressive growing's coarser real patches (d times coarser) are made: "point" samples the photo
    bilinearly at the coarse pixels' centres, where the generator's single ray per pixel passes (as GRAF samples its
    scaled patches); "box" averages each d x d block of pixels, as a resized photo, which the generator's point
    samples cannot match (docs/ablations.md: FID 104.5 against 72.5 for "point" on `hypernerfgan-tiny`)."""
    max_device_images_gb: float = 2.0
    """Hold the decoded training images on the training device when they take at most this many GiB (8-bit; 2,000
    images at 128 px take 0.09 GiB) and cut the real patches there: no disk read and no host-to-device copy per
    batch. Larger collections are read from the disk cache batch by batch. 0: always read from disk."""

    @property
    def scales_patches(self) -> bool:
        """Whether patches smaller than the images are scaled (GRAF's): annealed or spread over the whole image."""
        return self.patch_scale_annealing_images > 0 or self.whole_image_patches

    def unfit_reason(self, resolution: int) -> Optional[str]:
        """Why these patches cannot be cut from `resolution` px images, with the flags that fit, or None: refused as
        the run is set up, and skipped by `hypernerfgan ablate` before any work."""
        patch = self.patch_size
        if patch > resolution:
            return (
                f"The patch size ({patch}) is larger than the training resolution ({resolution}): lower "
                "--pipeline.datamanager.patch-size or raise the dataparser's --resolution"
            )
        if self.whole_image_patches and self.patch_scale_annealing_images > 0:
            return (
                "Whole-image patches (--pipeline.datamanager.whole-image-patches) never change scale, and patch-scale "
                "annealing (--pipeline.datamanager.patch-scale-annealing-images) changes it: choose one"
            )
        if self.whole_image_patch_phase == "random" and not self.whole_image_patches:
            return (
                "A random phase (--pipeline.datamanager.whole-image-patch-phase random) places whole-image patches' "
                "rays; add --pipeline.datamanager.whole-image-patches True, or leave the phase at centre"
            )
        if self.whole_image_patch_phase == "random" and resolution % patch:
            return (
                f"Whole-image patches at a random phase need the patch size ({patch}) to divide the images' side "
                f"({resolution}), so that their rays pass through pixel centres: choose a divisor for "
                "--pipeline.datamanager.patch-size, or --pipeline.datamanager.whole-image-patch-phase centre"
            )
        return None


class PatchBatchRays:
    """The rays per training batch, where nerfstudio's exporters set them: `ns-export pointcloud` and `poisson` set
    `datamanager.train_pixel_sampler.num_rays_per_batch`, then render the viewed object along the rays of batches
    from `next_train`. A batch here is whole patches, one per random prior camera, so the count sets how many cameras
    (and real crops) a batch has: as many patches as it holds, at least one."""

    def __init__(self, config: RandomPosePatchDataManagerConfig) -> None:
        self.config = config

    @property
    def num_rays_per_batch(self) -> int:
        return self.config.batch_size * self.config.patch_size**2

    @num_rays_per_batch.setter
    def num_rays_per_batch(self, num_rays: int) -> None:
        self.config.batch_size = max(1, num_rays // self.config.patch_size**2)


class RandomPosePatchDataManager(VanillaDataManager[UnposedImagesDataset]):
    """Random-pose patch batches for training; nerfstudio's orbit-camera datasets for evaluation.

    Args:
        config: the datamanager config.
        device: where batches are placed.
        test_mode: "val" for training (the images must exist), "test" for evaluating a trained model (images used
            when present), "inference" for rendering one (images not read).
        world_size: number of training processes.
        local_rank: rank of this process.
    """

    config: RandomPosePatchDataManagerConfig

    def __init__(  # pylint: disable=super-init-not-called
        self,
        config: RandomPosePatchDataManagerConfig,
        device: Union[torch.device, str] = "cpu",
        test_mode: Literal["test", "val", "inference"] = "val",
        world_size: int = 1,
        local_rank: int = 0,
        **kwargs,
    ) -> None:
        # VanillaDataManager.__init__ would build image dataloaders and pixel samplers that a GAN does not use, and
        # cannot tell the dataparser that rendering a trained model needs no images. Set up what is used, here.
        if not isinstance(config.dataparser, UnposedImagesDataParserConfig):
            raise DatasetError(
                f"HyperNeRFGAN trains on unposed image collections; the {type(config.dataparser).__name__} dataparser "
                "is not supported. Use the `unposed-images` dataparser (the default)."
            )
        reason = config.unfit_reason(config.dataparser.resolution)  # before any image is read
        if reason is not None:
            raise ConfigError(f"{reason}.")
        self.config = config
        self.device = device
        self.world_size = world_size
        self.local_rank = local_rank
        self.sampler = None
        self.test_mode = test_mode
        self.test_split = "test" if test_mode in ["test", "inference"] else "val"
        if config.data is not None:
            config.dataparser.data = config.data  # nerfstudio's --data alias, as VanillaDataManager applies it
        self.dataparser_config = config.dataparser
        self.dataparser = config.dataparser.setup()
        self.includes_time = False
        self.train_dataparser_outputs = self.dataparser.get_dataparser_outputs(
            split="train", images=IMAGES_NEEDED[test_mode]
        )
        self.train_dataset = UnposedImagesDataset(self.train_dataparser_outputs)
        self.eval_dataset = UnposedImagesDataset(self.train_dataparser_outputs)
        self.exclude_batch_keys_from_device = self.train_dataset.exclude_batch_keys_from_device
        self.camera_prior: CameraPriorConfig = self.train_dataparser_outputs.metadata["dataset_preset"].camera_prior
        self.resolution = config.dataparser.resolution
        self.train_pixel_sampler = PatchBatchRays(config)  # type: ignore[assignment]  # where exporters set rays
        self._device_images: Optional[Tensor] = None
        self._pixel_rays: Dict[int, Tensor] = {}
        self._patch_pixel_offsets: Dict[Tuple[int, int, int], Tensor] = {}
        self._prior_depth_range: Optional[Tensor] = None
        DataManager.__init__(self)

    def training_images(self) -> ImageStore:
        """The decoded training images, for what cannot do without them (training, metrics against them).

        A method, not a property: nerfstudio's viewer reads every property of the pipeline's parts, and a run shown
        without its images (they moved) must not fail there."""
        store = self.train_dataset.image_store
        if store is None:
            raise DatasetError(
                f"The training images are not at {self.config.dataparser.data}, where the run found them, and "
                "comparing samples with them (ns-eval, `hypernerfgan score --load-config`) needs them. Put them back "
                "there, or render the samples and score them against a copy: `hypernerfgan render-samples "
                "--load-config RUN/config.yml --output samples.zip`, then `hypernerfgan score samples.zip --data COPY`."
            )
        return store

    # ------------------------------------------------------------------ training batches

    def setup_train(self) -> None:
        if self.train_dataset.image_store is None:
            return  # rendering a trained model: there will be no training batches
        CONSOLE.print(
            f"Training batches: {self.config.batch_size} random cameras x {self.config.patch_size}^2-pixel patches "
            f"of {self.resolution}^2 images, and {self.config.batch_size} random crops of "
            f"{self.training_images().num_images} photos."
        )

    def sample_cameras(self, num_cameras: int) -> Cameras:
        """Full-resolution cameras drawn from the camera prior, on the CPU (where batches are prepared)."""
        return self.camera_prior.cameras(self.camera_prior.sample_poses(num_cameras), self.resolution)

    @property
    def scaled_patches(self) -> bool:
        """Whether training patches are GRAF's scaled ones: annealed or spread over the whole image, on patches
        smaller than the images."""
        return self.config.scales_patches and self.config.patch_size < self.resolution

    @property
    def patch_stride(self) -> int:
        """Pixels between neighbouring rays of a patch, for patches whose rays pass through pixel centres: 1 for crops,
        R / P for whole-image patches at a random phase (the photo's every s-th pixel, from a random first one)."""
        if self.scaled_patches and self.config.whole_image_patch_phase == "random":
            return self.resolution // self.config.patch_size
        return 1

    @staticmethod
    def patch_scales(ray_bundle: RayBundle, num_patches: int) -> Optional[Float[Tensor, "patches"]]:
        """Each patch's scale, from the rays of `num_patches` patches (None for unscaled patches)."""
        scales = ray_bundle.metadata.get("patch_scale")
        return None if scales is None else scales.view(num_patches, -1)[:, 0]

    def patch_footprints(self, num_patches: int, step: int) -> Optional[Float[Tensor, "patches"]]:
        """Side in pixels of the image square each patch covers, drawn as GRAF does at iteration `step`; None for
        unscaled patches (no annealing)."""
        if not self.scaled_patches:
            return None
        if self.config.whole_image_patches:
            return torch.full((num_patches,), float(self.resolution))
        annealing, patch, resolution = self.config.patch_scale_annealing_images, self.config.patch_size, self.resolution
        images_seen = step * self.config.batch_size * self.world_size
        smallest = resolution - (resolution - patch) * min(1.0, images_seen / annealing)
        return smallest + torch.rand(num_patches) * (resolution - smallest)

    def patch_points(
        self, footprints: Float[Tensor, "patches"]
    ) -> Tuple[Float[Tensor, "patches patch"], Float[Tensor, "patches patch"]]:
        """Rows and columns, in pixel units, of the P x P points spread over a random square of each footprint."""
        patch = self.config.patch_size
        offsets = torch.rand(len(footprints), 2) * (self.resolution - footprints)[:, None]
        steps = (torch.arange(patch) + 0.5) / patch * footprints[:, None]  # [patches, P]
        return offsets[:, :1] + steps, offsets[:, 1:] + steps

    def check_downscale(self, downscale: int, footprints: Optional[Tensor]) -> None:
        """Refuses a coarser batch that the patch, the images or scaled patches do not allow."""
        if downscale == 1:
            return
        if self.config.patch_size % downscale or self.resolution % downscale:
            raise ValueError(
                f"Patches of {self.config.patch_size} px of {self.resolution} px images cannot be made {downscale} "
                "times coarser: both must divide by it."
            )
        if footprints is not None:
            raise ValueError("Progressive growing and scaled patches cannot be combined; choose one.")

    def sample_patch_rays(self, cameras: Cameras, footprints: Optional[Tensor] = None, downscale: int = 1) -> RayBundle:
        """Rays through one random P x P patch of each (CPU) camera's pixel grid (spread over `footprints`, if
        given; P / d x P / d of the grid at R / d with `downscale` d), grouped per camera, on the training device."""
        self.check_downscale(downscale, footprints)
        num_cameras, patch = cameras.shape[0], self.config.patch_size // downscale
        if footprints is not None and self.config.whole_image_patches and self.patch_stride == 1:
            # The whole image at the patch's resolution: every pixel centre of that grid, from the table.
            rays = self.pixel_rays(patch)[None].expand(num_cameras, -1, -1)
        elif footprints is None or self.patch_stride > 1:
            # Pixels of the grid s apart from a random first one: a crop (s = 1), or a random phase of the lattice.
            resolution, stride = self.resolution // downscale, self.patch_stride
            offsets = self.lattice_offsets(num_cameras, resolution, patch)
            corners = to_device(offsets[:, 0] * resolution + offsets[:, 1], self.device)
            rays = self.pixel_rays(resolution)[corners[:, None] + self.patch_pixel_offsets(patch, resolution, stride)]
        else:
            rows, columns = self.patch_points(footprints)
            coords = torch.stack(torch.broadcast_tensors(rows[:, :, None], columns[:, None, :]), dim=-1)
            rays = to_device(self.camera_space_rays(coords.flatten(1, 2)), self.device)
        bundle = posed_rays(rays, to_device(cameras.camera_to_worlds, self.device))
        bundle.nears, bundle.fars = self.prior_depth_range(len(bundle))
        if footprints is not None:
            scales = to_device(footprints / self.resolution, self.device)
            bundle.metadata["patch_scale"] = scales[:, None].expand(num_cameras, patch * patch).reshape(-1, 1)
        return bundle

    def prior_depth_range(self, num_rays: int) -> Tuple[Float[Tensor, "rays 1"], Float[Tensor, "rays 1"]]:
        """Every training ray's near and far distances: the camera prior's, as every training camera sits at its
        radius. The model's collider keeps distances a bundle has, so a training render does not compute them from
        each ray's origin; these are views of one tensor made on first use (no operation per batch)."""
        if self._prior_depth_range is None:
            depths = torch.tensor([[self.camera_prior.near, self.camera_prior.far]], device=self.device)
            self._prior_depth_range = depths
        return self._prior_depth_range[:, :1].expand(num_rays, 1), self._prior_depth_range[:, 1:].expand(num_rays, 1)

    def camera_space_rays(
        self, coords: Float[Tensor, "*rays 2"], resolution: Optional[int] = None
    ) -> Float[Tensor, "*rays 5"]:
        """nerfstudio's rays of the prior's camera at the identity pose (its grid at `resolution`, the training
        images' by default) through the pixel coordinates `coords` (row, column): unit direction, pixel area and
        direction norm, the parts of a ray its pose does not change."""
        camera = self.camera_prior.cameras(IDENTITY_POSE[None], resolution or self.resolution)
        bundle = camera.generate_rays(
            camera_indices=torch.zeros(*coords.shape[:-1], 1, dtype=torch.long), coords=coords.float()
        )
        return torch.cat([bundle.directions, bundle.pixel_area, bundle.metadata["directions_norm"]], dim=-1)

    def pixel_rays(self, resolution: Optional[int] = None) -> Float[Tensor, "pixels 5"]:
        """`camera_space_rays` of every pixel centre of the grid at `resolution` (the training images' by default),
        row by row, on the training device (made on first use: resolution^2 x 20 bytes, 0.3 MiB at 128 px)."""
        resolution = resolution or self.resolution
        if resolution not in self._pixel_rays:
            centres = pixel_centres(resolution)
            self._pixel_rays[resolution] = self.camera_space_rays(centres, resolution).to(self.device)
        return self._pixel_rays[resolution]

    def lattice_offsets(self, num_patches: int, resolution: int, patch: int) -> Int[Tensor, "patches 2"]:
        """Random (row, column) of each patch's top-left pixel on the grid at `resolution`: anywhere a crop fits, or,
        for a lattice of pixels `patch_stride` apart, its phase (one of the first s x s pixels)."""
        stride = self.patch_stride
        return torch.randint(0, resolution - patch + 1 if stride == 1 else stride, (num_patches, 2))

    def patch_pixel_offsets(self, patch: int, resolution: int, stride: int = 1) -> Int[Tensor, "patch_pixels"]:
        """Indices into `pixel_rays(resolution)` of a patch's pixels (patch x patch of them, `stride` apart) relative
        to its top-left pixel, on the device."""
        if (patch, resolution, stride) not in self._patch_pixel_offsets:
            steps = torch.arange(patch) * stride
            offsets = (steps[:, None] * resolution + steps[None, :]).flatten()
            self._patch_pixel_offsets[patch, resolution, stride] = offsets.to(self.device)
        return self._patch_pixel_offsets[patch, resolution, stride]

    def device_images(self) -> Optional[UInt8[Tensor, "images height width 3"]]:
        """Every training image on the training device, loaded on first use, if they fit `max_device_images_gb`."""
        store = self.training_images()
        image_bytes = store.num_images * store.resolution**2 * 3
        if self._device_images is None and image_bytes <= self.config.max_device_images_gb * GIB:
            self._device_images = torch.from_numpy(np.array(store.array(), copy=True)).to(self.device)
        return self._device_images

    def sample_real_patches(
        self, num_images: int, footprints: Optional[Tensor] = None, downscale: int = 1
    ) -> Float[Tensor, "batch patch patch 3"]:
        """Random crops of random photos in [0, 1] (sampled over `footprints`, if given; with `downscale` d, P / d
        pixels on a side made as `coarse_real_patches` says), x-flipped with probability 1/2 when mirroring.

        The random draws are made on the CPU in the same order either way, so holding the images on the device
        changes where the crops are cut, not which.
        """
        self.check_downscale(downscale, footprints)
        store, patch = self.training_images(), self.config.patch_size
        indices = torch.randint(0, store.num_images, (num_images,))
        points: Optional[Tuple[Tensor, Tensor]] = None  # (rows, columns) to sample at; None: a crop of pixels
        if footprints is None or self.patch_stride > 1:  # a crop, or a lattice of photo pixels at a random phase
            # On the coarse grid: a crop of the downscaled photo starts at d times a coarse offset.
            offsets = self.lattice_offsets(num_images, self.resolution // downscale, patch // downscale) * downscale
            if downscale > 1 and self.config.coarse_real_patches == "point":
                centres = (torch.arange(patch // downscale) + 0.5) * downscale  # the coarse pixels' centres
                points = offsets[:, :1] + centres, offsets[:, 1:] + centres
        else:
            points = self.patch_points(footprints)
        flip = torch.rand(num_images) < 0.5 if self.config.mirror_real_images else None
        images = self.device_images()
        if images is None:  # read the chosen photos from disk and bring them to the device
            images = to_device(torch.from_numpy(np.ascontiguousarray(store.read(indices.tolist()))), self.device)
            indices = torch.arange(num_images)
        indices = to_device(indices, self.device)
        if points is None:
            offsets = to_device(offsets, self.device)
            patches = crop_patches(images, indices, offsets, patch, self.patch_stride).float() / UINT8_MAX
            if downscale > 1:
                patches = F.avg_pool2d(patches.permute(0, 3, 1, 2), downscale).permute(0, 2, 3, 1)
        else:
            rows, columns = to_device(torch.stack(points), self.device)
            reading = self.config.scaled_real_patches if footprints is not None else "bilinear"
            patches = resample_patches(images, indices, rows, columns, reading)
        if flip is not None:
            patches = torch.where(to_device(flip, self.device).view(-1, 1, 1, 1), patches.flip(2), patches)
        return patches

    def next_train_rays(self, step: int, downscale: int = 1) -> RayBundle:
        """Rays of B random camera patches (`downscale` times coarser): what the generator phase renders."""
        footprints = self.patch_footprints(self.config.batch_size, step)
        return self.sample_patch_rays(self.sample_cameras(self.config.batch_size), footprints, downscale)

    def next_train_reals(self, step: int, downscale: int = 1) -> Dict[str, Tensor]:
        """B real patches (`downscale` times coarser) under "image", with the footprints of the patch-scale schedule at
        `step`; scaled patches also have their scales, F / R, under "patch_scale"."""
        footprints = self.patch_footprints(self.config.batch_size, step)
        batch = {"image": self.sample_real_patches(self.config.batch_size, footprints, downscale)}
        if footprints is not None:
            batch["patch_scale"] = to_device(footprints / self.resolution, self.device)
        return batch

    def next_train(self, step: int, downscale: int = 1) -> Tuple[RayBundle, Dict]:
        """Rays of B random camera patches, and the batch of B real patches (`next_train_reals`; both `downscale`
        times coarser): what the discriminator phase sees."""
        self.train_count += 1
        rays = self.next_train_rays(step, downscale)
        return rays, self.next_train_reals(step, downscale)

    # ------------------------------------------------------------------ evaluation

    def setup_eval(self) -> None:
        self.eval_dataloader = RandIndicesEvalDataloader(input_dataset=self.eval_dataset, device=self.device)
        self.fixed_indices_eval_dataloader = FixedIndicesEvalDataloader(
            input_dataset=self.eval_dataset, device=self.device
        )

    def next_eval(self, step: int) -> Tuple[RayBundle, Dict]:
        """A fresh training-like batch (random cameras, real patches) for evaluation losses and metrics."""
        self.eval_count += 1
        return self.next_train(step)

    def next_eval_image(self, step: int) -> Tuple[Cameras, Dict]:
        """A random orbit camera and its thumbnail."""
        return self.eval_dataloader.get_camera(image_idx=int(torch.randint(0, len(self.eval_dataset), ()).item()))

    def get_eval_rays_per_batch(self) -> int:
        return self.get_train_rays_per_batch()

    def get_datapath(self) -> Optional[Path]:
        return self.config.dataparser.data
