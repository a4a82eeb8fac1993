"""`unposed-images`: image collections without camera poses, the data of a 3D GAN.

Accepted `--data`:

- a folder of images (PNG, JPEG, WebP, BMP, TIFF), searched recursively;
- a zip of images (the StyleGAN2-ADA dataset layout HyperNeRFGAN's datasets are published in);
- an SRN ShapeNet folder, `<instance>/rgb/*.png` (its poses are ignored);
- a built-in procedural set, `cars`, `chairs` or `planes`, rendered on the CPU into a cache on first use.

Images are decoded once into a uint8 cache at the training resolution (see `image_collection`). Since the photos
have no poses, the cameras this dataparser returns are a ring of orbit cameras drawn from the dataset preset's
camera prior: the viewer shows them as frustums, and `ns-render interpolate` flies along them for a 360-degree
orbit. Training cameras are drawn from the prior by the datamanager, not from this ring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Type

import torch
from rich.markup import escape
from rich.table import Table

from hypernerfgan_ns.data.builtin.datasets import BUILTIN_DATASETS, ensure_builtin_dataset
from hypernerfgan_ns.data.dataset_presets import (
    DEFAULT_PRESET,
    DatasetPreset,
    guess_preset_name,
    load_preset,
    preset_files,
)
from hypernerfgan_ns.data.image_collection import ImageStore, build_image_store
from hypernerfgan_ns.errors import DatasetError
from hypernerfgan_ns.utils.config_compat import DefaultsForMissingFields
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.utils.rich_utils import CONSOLE

SCENE_BOX_HALF_EXTENT = 1.0
"""The object lives in [-1, 1]^3 around the origin (the camera prior's near/far shell)."""

AUTO_PRESET = "auto"
"""`preset` value that picks the preset from the data's name."""

ImageNeed = Literal["required", "optional", "none"]
"""Whether a use of the dataparser needs the training images."""


@dataclass
class UnposedImagesDataParserConfig(DefaultsForMissingFields, DataParserConfig):
    """Unposed image collections: a folder, a zip, an SRN tree, or a built-in set (cars, chairs, planes)."""

    _target: Type = field(default_factory=lambda: UnposedImagesDataParser)
    data: Path = Path("cars")
    """Image folder, zip, SRN folder, or the name of a built-in set: cars, chairs, planes."""
    preset: str = AUTO_PRESET
    """Dataset preset (camera prior, target depth, R1 gamma): carla, cars, chairs, planes, a YAML path, or auto
    (from the data's name, else cars)."""
    resolution: int = 128
    """Training resolution: every image becomes a square RGB image of this size."""
    non_square: Literal["pad", "center-crop"] = "pad"
    """How non-square images become square: padded with white, or centre-cropped."""
    min_image_size: int = 64
    """Images whose square side is smaller are skipped: they cannot provide a training patch without blur."""
    min_num_images: int = 16
    """Training refuses to start with fewer usable images than this."""
    num_orbit_cameras: int = 24
    """Cameras in the orbit ring shown in the viewer and used by ns-render for 360-degree videos."""
    builtin_num_images: int = 2000
    """Images rendered for a built-in set (one random object each)."""
    builtin_seed: int = 0
    """Seed of a built-in set's objects and cameras."""
    cache_dir: Optional[Path] = None
    """Where decoded images and built-in sets are cached; default $HYPERNERFGAN_CACHE or ~/.cache/hypernerfgan_ns."""


class UnposedImagesDataParser(DataParser):
    """Resolves the collection and its preset, decodes the images, and builds the orbit cameras."""

    config: UnposedImagesDataParserConfig

    def __init__(self, config: UnposedImagesDataParserConfig) -> None:
        super().__init__(config=config)
        self._preset_reported = False

    def resolve_source(self) -> Path:
        """The folder or zip to read: the given path, or a built-in set's cache folder."""
        data = Path(self.config.data).expanduser()
        if not data.exists() and str(self.config.data) in BUILTIN_DATASETS:
            return ensure_builtin_dataset(
                str(self.config.data),
                num_images=self.config.builtin_num_images,
                resolution=self.config.resolution,
                seed=self.config.builtin_seed,
                cache_root=self.config.cache_dir,
                camera_prior=self.resolve_preset().camera_prior,
            )
        return data

    def resolve_preset(self) -> DatasetPreset:
        """The preset given by name or path, else the one named like the data, else the default."""
        if self.config.preset != AUTO_PRESET:
            return load_preset(self.config.preset)
        return load_preset(guess_preset_name(Path(self.config.data)) or DEFAULT_PRESET)

    def _generate_dataparser_outputs(self, split: str = "train", images: ImageNeed = "required") -> DataparserOutputs:
        """Orbit cameras plus metadata holding the image store and the dataset preset.

        Args:
            split: "train", "val" or "test"; every split sees the same collection and orbit.
            images: "required" (training: raise if they cannot be found), "optional" (evaluating: warn and continue
                without them), or "none" (rendering only: do not touch them).
        """
        preset = self.resolve_preset()
        store = self.load_images(images == "required") if images != "none" else None
        if not self._preset_reported:
            self.report(preset, store, training=images == "required")
            self._preset_reported = True
        prior = preset.camera_prior
        cameras = prior.cameras(prior.orbit_poses(self.config.num_orbit_cameras), self.config.resolution)
        extent = SCENE_BOX_HALF_EXTENT
        return DataparserOutputs(
            image_filenames=[Path(self.config.data) / f"orbit_{index:03d}.png" for index in range(len(cameras))],
            cameras=cameras,
            alpha_color=torch.ones(3),
            scene_box=SceneBox(aabb=torch.tensor([[-extent] * 3, [extent] * 3], dtype=torch.float32)),
            metadata={"image_store": store, "dataset_preset": preset},
        )

    def load_images(self, images_required: bool) -> Optional[ImageStore]:
        """Decodes the collection into the cache (or reuses it); None if it is gone and not required."""
        try:
            source = self.resolve_source()
            return build_image_store(
                source,
                resolution=self.config.resolution,
                non_square=self.config.non_square,
                min_image_size=self.config.min_image_size,
                min_num_images=self.config.min_num_images,
                cache_root=self.config.cache_dir,
            )
        except DatasetError as error:
            if images_required:
                raise
            CONSOLE.print(
                f"[bold yellow]The training images are not available ({error}). Rendering works without them; "
                "metrics against real images and the viewer's thumbnails do not."
            )
            return None

    def report(self, preset: DatasetPreset, store: Optional[ImageStore], training: bool = True) -> None:
        """Prints the chosen preset and camera prior, so a wrong guess is visible at start; how to choose another is
        said when training only (a trained run is rendered and scored with its own)."""
        prior = preset.camera_prior
        table = Table(title=f"Dataset preset [bold]{preset.name}[/bold]: {preset.description}", show_header=False)
        table.add_row("preset file", str(preset.source))
        table.add_row("images", f"{store.num_images} at {store.resolution}x{store.resolution}" if store else "none")
        table.add_row(
            "camera prior", f"radius {prior.radius}, fov {prior.fov:.4f} rad, near {prior.near}, far {prior.far}"
        )
        table.add_row("azimuth / elevation", f"{prior.azimuth_range} / {prior.elevation_range} degrees")
        skip = "no skip" if preset.skip_layer is None else f"skip after {preset.skip_layer}"
        table.add_row("preset's target MLP", f"{preset.num_hidden_layers} hidden layers, {skip}")
        table.add_row("preset's R1 gamma", str(preset.r1_gamma))
        CONSOLE.print(table)
        if training and self.config.preset == AUTO_PRESET and guess_preset_name(Path(self.config.data)) is None:
            CONSOLE.print(
                f"[bold yellow]No preset is named like {escape(Path(self.config.data).name)}, so the default "
                f"({DEFAULT_PRESET}) frames the objects. If its camera prior does not fit your photos, choose one at "
                f"the end of the ns-train command: unposed-images --preset {'|'.join(sorted(preset_files()))}|FILE.yml"
            )
