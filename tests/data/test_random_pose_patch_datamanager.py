"""The dataparser and datamanager: presets, orbit cameras, random-pose patch rays and real crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hypernerfgan_ns.cameras.camera_prior import CameraPriorConfig
from hypernerfgan_ns.data.datamanagers.random_pose_patch_datamanager import (
    RandomPosePatchDataManager,
    RandomPosePatchDataManagerConfig,
)
from hypernerfgan_ns.data.dataparsers.unposed_images_dataparser import UnposedImagesDataParserConfig
from hypernerfgan_ns.errors import ConfigError, DatasetError
from hypernerfgan_ns.model_components.colliders import ObjectShellCollider
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig

RESOLUTION = 16
PATCH = 8


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "chairs_train"
    folder.mkdir()
    generator = np.random.default_rng(0)
    for index in range(6):
        pixels = generator.integers(0, 256, size=(RESOLUTION, RESOLUTION, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}.png")
    return folder


def make_datamanager(
    data: Path, test_mode: str = "val", max_device_images_gb: float = 2.0, **dataparser_options
) -> RandomPosePatchDataManager:
    options = dict(data=data, resolution=RESOLUTION, min_image_size=PATCH, min_num_images=2, num_orbit_cameras=12)
    options.update(dataparser_options)
    config = RandomPosePatchDataManagerConfig(
        dataparser=UnposedImagesDataParserConfig(**options), batch_size=3, patch_size=PATCH,
        max_device_images_gb=max_device_images_gb,
    )
    return config.setup(device="cpu", test_mode=test_mode)


def test_preset_is_guessed_from_the_name_and_can_be_chosen(image_folder: Path) -> None:
    guessed = make_datamanager(image_folder)
    assert guessed.train_dataparser_outputs.metadata["dataset_preset"].name == "chairs"
    chosen = make_datamanager(image_folder, preset="planes")
    assert chosen.train_dataparser_outputs.metadata["dataset_preset"].name == "planes"
    with pytest.raises(DatasetError, match="Unknown dataset preset 'boats'"):
        make_datamanager(image_folder, preset="boats")


def test_orbit_cameras_and_thumbnails_for_the_viewer(image_folder: Path) -> None:
    datamanager = make_datamanager(image_folder)
    dataset = datamanager.train_dataset
    assert len(dataset) == 12 and len(dataset.cameras) == 12
    positions = dataset.cameras.camera_to_worlds[:, :, 3]
    assert torch.allclose(positions.norm(dim=-1), torch.full((12,), 4.0), atol=1e-5)
    thumbnail = dataset[0]["image"]
    assert thumbnail.shape == (RESOLUTION, RESOLUTION, 3)
    assert torch.allclose(thumbnail, torch.from_numpy(datamanager.training_images().read([0])[0]).float() / 255)


def test_patch_rays_are_a_contiguous_block_of_each_cameras_full_grid(image_folder: Path) -> None:
    datamanager = make_datamanager(image_folder)
    cameras = datamanager.sample_cameras(3)
    bundle = datamanager.sample_patch_rays(cameras)
    assert bundle.shape == (3 * PATCH * PATCH,)
    blocks = bundle.camera_indices[:, 0].view(3, PATCH * PATCH)
    assert torch.equal(blocks, torch.arange(3)[:, None].expand(3, PATCH * PATCH))
    for index in range(3):
        full = cameras.generate_rays(camera_indices=index, keep_shape=True)  # nerfstudio's rays of the whole image
        patch = bundle.directions.view(3, PATCH, PATCH, 3)[index]
        matches = ((full.directions - patch[0, 0]).norm(dim=-1) < 1e-6).nonzero()
        assert len(matches) == 1
        y, x = matches[0].tolist()
        expected = full[y : y + PATCH, x : x + PATCH].flatten()
        rays = bundle[index * PATCH * PATCH : (index + 1) * PATCH * PATCH]
        assert_same_rays(rays, expected, datamanager.camera_prior)


def test_the_rays_an_exporter_asks_for_per_batch_set_how_many_whole_patches_a_batch_has(image_folder: Path) -> None:
    """`ns-export pointcloud` and `poisson` set `train_pixel_sampler.num_rays_per_batch`, then draw batches."""
    datamanager = make_datamanager(image_folder)
    assert datamanager.get_train_rays_per_batch() == 3 * PATCH * PATCH
    datamanager.train_pixel_sampler.num_rays_per_batch = 5 * PATCH * PATCH + 1
    rays, batch = datamanager.next_train(0)
    assert rays.shape == (5 * PATCH * PATCH,) and batch["image"].shape[0] == 5
    assert datamanager.get_train_rays_per_batch() == 5 * PATCH * PATCH
    datamanager.train_pixel_sampler.num_rays_per_batch = 1
    assert datamanager.next_train(0)[0].shape == (PATCH * PATCH,), "at least one patch"


def test_patch_rays_stay_fp32_inside_the_training_phases_autocast(image_folder: Path) -> None:
    datamanager = make_datamanager(image_folder)
    cameras = datamanager.sample_cameras(2)
    torch.manual_seed(0)
    plain = datamanager.sample_patch_rays(cameras)
    torch.manual_seed(0)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):  # what fp16 autocast is to a GPU's matmuls
        autocast = datamanager.sample_patch_rays(cameras)
    assert autocast.directions.dtype == torch.float32
    assert torch.equal(autocast.directions, plain.directions)


def assert_same_rays(bundle: RayBundle, expected: RayBundle, prior: CameraPriorConfig) -> None:
    """Every field a ray of `Cameras.generate_rays` has, to float precision (the camera index aside), and the near
    and far distances the model's collider would give its rays."""
    for name in ("origins", "directions", "pixel_area"):
        torch.testing.assert_close(getattr(bundle, name), getattr(expected, name), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(
        bundle.metadata["directions_norm"], expected.metadata["directions_norm"], atol=1e-6, rtol=1e-5
    )
    collided = ObjectShellCollider(prior.radius, prior.near, prior.far).set_nears_and_fars(expected)
    torch.testing.assert_close(bundle.nears, collided.nears, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(bundle.fars, collided.fars, atol=1e-6, rtol=1e-5)
    assert bundle.times is None


def test_real_patches_are_crops_of_the_photos(image_folder: Path) -> None:
    datamanager = make_datamanager(image_folder)
    store = datamanager.training_images().array()
    _, batch = datamanager.next_train(0)
    patches = batch["image"]
    assert patches.shape == (3, PATCH, PATCH, 3) and 0.0 <= patches.min() and patches.max() <= 1.0
    for patch in (patches * 255).round().to(torch.uint8).numpy():
        candidates = [store[i] for i in range(len(store))] + [store[i][:, ::-1] for i in range(len(store))]
        found = any(
            np.array_equal(image[y : y + PATCH, x : x + PATCH], patch)
            for image in candidates
            for y in range(RESOLUTION - PATCH + 1)
            for x in range(RESOLUTION - PATCH + 1)
        )
        assert found, "every real patch is a (possibly mirrored) crop of a training image"


def test_coarser_batches_are_patches_of_the_downscaled_cameras_and_photos(image_folder: Path) -> None:
    """Progressive growing's batches: P / 2 x P / 2 patches of the cameras' grids at R / 2 (nerfstudio's rays of a
    camera at half the resolution), and crops of the photos halved (averages of 2 x 2 blocks, which the bilinear
    sample at each coarse pixel's centre is)."""
    datamanager = make_datamanager(image_folder)
    cameras = datamanager.sample_cameras(3)
    bundle = datamanager.sample_patch_rays(cameras, downscale=2)
    half, coarse = PATCH // 2, RESOLUTION // 2
    assert bundle.shape == (3 * half * half,)
    for index in range(3):
        poses = cameras.camera_to_worlds[index : index + 1]
        full = datamanager.camera_prior.cameras(poses, coarse).generate_rays(camera_indices=0, keep_shape=True)
        patch = bundle.directions.view(3, half, half, 3)[index]
        y, x = ((full.directions - patch[0, 0]).norm(dim=-1) < 1e-6).nonzero()[0].tolist()
        rays = bundle[index * half * half : (index + 1) * half * half]
        assert_same_rays(rays, full[y : y + half, x : x + half].flatten(), datamanager.camera_prior)

    store = torch.from_numpy(datamanager.training_images().array().copy()).permute(0, 3, 1, 2).float() / 255
    filtered = torch.nn.functional.avg_pool2d(store, 2).permute(0, 2, 3, 1)
    candidates = torch.cat([filtered, filtered.flip(2)])
    for patch in datamanager.sample_real_patches(3, downscale=2):
        assert patch.shape == (half, half, 3)
        assert any(
            torch.allclose(image[y : y + half, x : x + half], patch, atol=1e-6)
            for image in candidates
            for y in range(coarse - half + 1)
            for x in range(coarse - half + 1)
        ), "every coarse real patch is a (possibly mirrored) crop of a halved training image"
    with pytest.raises(ValueError, match="divide"):
        datamanager.sample_real_patches(3, downscale=16)


def test_coarse_real_patches_are_the_photos_at_the_coarse_pixels_centres(image_folder: Path) -> None:
    """`coarse_real_patches="point"` (the default): the photo sampled bilinearly where the coarse pixels' rays pass,
    2 x 2 blocks' averages when halved (the same as "box") and the average of each 4 x 4 block's central 2 x 2
    pixels when quartered (where "box" averages all 16), from the same random draws, on the device and from disk."""
    box, point = make_datamanager(image_folder), make_datamanager(image_folder)
    assert point.config.coarse_real_patches == "point"
    box.config.coarse_real_patches = "box"
    from_disk = make_datamanager(image_folder, max_device_images_gb=0)
    for downscale in (2, 4):
        patches = {}
        for name, datamanager in (("box", box), ("point", point), ("disk", from_disk)):
            torch.manual_seed(downscale)
            patches[name] = datamanager.sample_real_patches(3, downscale=downscale)
        torch.testing.assert_close(patches["disk"], patches["point"])
        if downscale == 2:
            torch.testing.assert_close(patches["point"], patches["box"])
            continue
        assert not torch.allclose(patches["point"], patches["box"])
        store = torch.from_numpy(point.training_images().array().copy()).permute(0, 3, 1, 2).float() / 255
        centres = torch.nn.functional.avg_pool2d(store[:, :, 1:, 1:], 2, stride=4).permute(0, 2, 3, 1)
        candidates = torch.cat([centres, centres.flip(2)])
        side, coarse = PATCH // 4, RESOLUTION // 4
        for patch in patches["point"]:
            assert any(
                torch.allclose(image[y : y + side, x : x + side], patch, atol=1e-6)
                for image in candidates
                for y in range(coarse - side + 1)
                for x in range(coarse - side + 1)
            )


def test_patches_cut_on_the_device_equal_patches_read_from_disk(image_folder: Path) -> None:
    on_device, from_disk = make_datamanager(image_folder), make_datamanager(image_folder, max_device_images_gb=0)
    patches = {}
    for name, datamanager in (("device", on_device), ("disk", from_disk)):
        torch.manual_seed(3)
        patches[name] = [datamanager.sample_real_patches(3, downscale=factor) for factor in (1, 2, 1, 4)]  # growing
    assert on_device.device_images() is not None and from_disk.device_images() is None
    assert all(torch.equal(device, disk) for device, disk in zip(patches["device"], patches["disk"]))


def test_rendering_a_trained_model_works_without_its_images(tmp_path: Path) -> None:
    missing = tmp_path / "moved_away"
    with pytest.raises(DatasetError, match="moved_away"):
        make_datamanager(missing, test_mode="val")
    datamanager = make_datamanager(missing, test_mode="test", preset="cars")
    assert datamanager.train_dataset.image_store is None
    assert datamanager.train_dataset[0]["image"].shape == (RESOLUTION, RESOLUTION, 3)


def test_patches_larger_than_the_images_are_refused(image_folder: Path) -> None:
    config = RandomPosePatchDataManagerConfig(
        dataparser=UnposedImagesDataParserConfig(data=image_folder, resolution=RESOLUTION, min_image_size=8),
        patch_size=32,
    )
    with pytest.raises(ConfigError, match="patch size \\(32\\) is larger.*--pipeline.datamanager.patch-size"):
        config.setup(device="cpu", test_mode="val")


def test_other_dataparsers_are_refused_with_a_message(image_folder: Path) -> None:
    config = RandomPosePatchDataManagerConfig(dataparser=BlenderDataParserConfig(data=image_folder))
    with pytest.raises(DatasetError, match="unposed-images"):
        config.setup(device="cpu", test_mode="val")


def test_patch_scale_annealing_spreads_patches_over_the_image_then_shrinks_them(image_folder: Path) -> None:
    datamanager = make_datamanager(image_folder)
    datamanager.config.patch_scale_annealing_images = 30  # 10 iterations of 3 images
    assert make_datamanager(image_folder).patch_footprints(3, step=0) is None, "off by default"
    torch.manual_seed(0)
    start = datamanager.patch_footprints(1000, step=0)
    assert torch.allclose(start, torch.full_like(start, RESOLUTION)), "at first every patch covers the whole image"
    later = datamanager.patch_footprints(1000, step=20)  # annealed: anywhere between P and the whole image
    assert later.min() >= PATCH and later.max() <= RESOLUTION and later.min() < PATCH + 1
    whole = make_datamanager(image_folder)
    whole.config.whole_image_patches = True
    assert whole.scaled_patches
    never = whole.patch_footprints(1000, step=10**6)
    assert torch.equal(never, torch.full_like(never, RESOLUTION)), "every patch spread over the whole image"
    both = RandomPosePatchDataManagerConfig(
        dataparser=whole.config.dataparser, patch_size=PATCH, whole_image_patches=True, patch_scale_annealing_images=30
    )
    with pytest.raises(ConfigError, match="choose one"):
        both.setup(device="cpu", test_mode="val")

    # Each patch's scale goes with its rays and with the real patches, for a discriminator told it.
    footprints = torch.tensor([float(PATCH), 0.75 * RESOLUTION, float(RESOLUTION)])
    bundle = datamanager.sample_patch_rays(datamanager.sample_cameras(3), footprints)
    assert torch.equal(datamanager.patch_scales(bundle, 3), footprints / RESOLUTION)
    rays, batch = datamanager.next_train(5)
    assert batch["patch_scale"].shape == (3,) and datamanager.patch_scales(rays, 3).shape == (3,)
    for scales in (batch["patch_scale"], datamanager.patch_scales(rays, 3)):
        assert scales.min() >= PATCH / RESOLUTION and scales.max() <= 1.0
    rays, batch = make_datamanager(image_folder).next_train(5)
    assert "patch_scale" not in batch and make_datamanager(image_folder).patch_scales(rays, 3) is None, "unscaled"

    # A whole-image patch of the real photo is the photo averaged over 2x2 blocks (P = R / 2).
    store = torch.from_numpy(datamanager.training_images().array().copy()).float() / 255
    torch.manual_seed(1)
    patches = datamanager.sample_real_patches(3, torch.full((3,), float(RESOLUTION)))
    blocks = store.view(-1, PATCH, 2, PATCH, 2, 3).mean(dim=(2, 4))
    for patch in patches:
        candidates = torch.cat([blocks, blocks.flip(2)])
        assert (candidates - patch).abs().amax(dim=(1, 2, 3)).min() < 1e-5

    # The fakes' rays go through the same points: the centres of the 2x2 blocks of the full pixel grid.
    cameras = datamanager.sample_cameras(1)
    bundle = datamanager.sample_patch_rays(cameras, torch.full((1,), float(RESOLUTION)))
    full = cameras.generate_rays(camera_indices=0, coords=torch.stack(torch.meshgrid(
        torch.arange(PATCH) * 2.0 + 1.0, torch.arange(PATCH) * 2.0 + 1.0, indexing="ij"), dim=-1))
    assert_same_rays(bundle, full.flatten(), datamanager.camera_prior)
    # Whole-image patches take them from the table of the grid at the patch's resolution: the same directions,
    # each with a coarse pixel's area.
    table = whole.sample_patch_rays(cameras, whole.patch_footprints(1, step=0))
    coarse = whole.camera_prior.cameras(cameras.camera_to_worlds, PATCH).generate_rays(
        camera_indices=0, coords=torch.stack(torch.meshgrid(
            torch.arange(PATCH) + 0.5, torch.arange(PATCH) + 0.5, indexing="ij"), dim=-1))
    assert_same_rays(table, coarse.flatten(), whole.camera_prior)
    torch.testing.assert_close(table.directions, bundle.directions, atol=1e-6, rtol=1e-5)
    assert torch.equal(whole.patch_scales(table, 1), torch.ones(1))


def test_whole_image_patches_at_a_random_phase_are_lattices_of_pixel_centres(image_folder: Path) -> None:
    """At a random phase a whole-image patch is every other pixel (P = R / 2) from a random first one: its real
    pixels are the photo's pixels, its rays pass through the centres of the same lattice of the camera's full grid,
    and over many patches every phase, so every pixel, is drawn."""
    datamanager = make_datamanager(image_folder)
    datamanager.config.whole_image_patches, datamanager.config.whole_image_patch_phase = True, "random"
    datamanager.config.mirror_real_images = False
    assert datamanager.patch_stride == 2 and make_datamanager(image_folder).patch_stride == 1
    store = torch.from_numpy(datamanager.training_images().array().copy()).float() / 255
    phases = {(row, column): store[:, row::2, column::2] for row in range(2) for column in range(2)}
    seen = []
    torch.manual_seed(1)
    for _ in range(10):
        for patch in datamanager.next_train_reals(step=0)["image"]:
            distances = {phase: (lattice - patch).abs().amax((1, 2, 3)).min() for phase, lattice in phases.items()}
            seen.append({phase for phase, distance in distances.items() if distance == 0})
    assert all(len(phase) == 1 for phase in seen), "each real patch is one lattice of photo pixels, unblended"
    assert set().union(*seen) == set(phases), "every phase drawn"

    cameras = datamanager.sample_cameras(8)
    bundle = datamanager.sample_patch_rays(cameras, datamanager.patch_footprints(8, step=0))
    assert torch.equal(datamanager.patch_scales(bundle, 8), torch.ones(8))
    ray_phases = set()
    for index in range(8):
        full = cameras.generate_rays(camera_indices=index, keep_shape=True)  # nerfstudio's rays of the whole image
        patch = bundle.directions.view(8, PATCH, PATCH, 3)[index]
        matching = [
            phase for phase in phases
            if (full.directions[phase[0] :: 2, phase[1] :: 2] - patch).norm(dim=-1).max() < 1e-6
        ]
        assert len(matching) == 1, "the centres of one lattice of the full grid's pixels"
        assert torch.allclose(bundle.origins.view(8, PATCH, PATCH, 3)[index], full.origins[::2, ::2])
        ray_phases.update(matching)
    assert len(ray_phases) > 1, "the fakes' phases drawn per patch too"

    for options, message in (({"whole_image_patches": False}, "add --pipeline.datamanager.whole-image-patches"),
                             ({"patch_size": 16 // 3 + 1}, "divide the images' side")):
        config = RandomPosePatchDataManagerConfig(
            dataparser=datamanager.config.dataparser, patch_size=PATCH, whole_image_patches=True,
            whole_image_patch_phase="random",
        )
        for name, value in options.items():
            setattr(config, name, value)
        with pytest.raises(ConfigError, match=message):
            config.setup(device="cpu", test_mode="val")


def test_scaled_real_patches_can_be_read_at_the_photo_pixels_their_points_fall_in(image_folder: Path) -> None:
    """With "nearest", every real pixel of a scaled patch is a photo pixel: a whole-image patch at half resolution
    is every other pixel of the photo (the fakes' rays pass at the corners between them, the same lattice), where
    "bilinear" averages 2x2 of them; an unscaled patch at a fractional offset is a crop of whole pixels."""
    datamanager = make_datamanager(image_folder)
    datamanager.config.whole_image_patches = True
    datamanager.config.mirror_real_images = False
    datamanager.config.scaled_real_patches = "nearest"
    store = torch.from_numpy(datamanager.training_images().array().copy()).float() / 255
    torch.manual_seed(1)
    whole = datamanager.sample_real_patches(3, torch.full((3,), float(RESOLUTION)))
    strided = store[:, 1::2, 1::2]
    for patch in whole:
        assert (strided - patch).abs().amax(dim=(1, 2, 3)).min() == 0, "every other photo pixel, unblended"

    torch.manual_seed(2)
    crops = datamanager.sample_real_patches(3, torch.full((3,), float(PATCH)))  # at fractional offsets
    for patch in crops:
        distances = [(store[i, r : r + PATCH, c : c + PATCH] - patch).abs().max()
                     for i in range(len(store)) for r in range(RESOLUTION - PATCH + 1)
                     for c in range(RESOLUTION - PATCH + 1)]
        assert min(distances) == 0, "a crop of whole pixels"
    datamanager.config.scaled_real_patches = "bilinear"
    torch.manual_seed(2)
    blended = datamanager.sample_real_patches(3, torch.full((3,), float(PATCH)))
    assert not torch.equal(blended, crops), "bilinear blends neighbours at the same fractional offsets"

    unscaled = {}
    for reading in ("bilinear", "nearest"):  # unscaled patches are crops of pixels either way
        plain = make_datamanager(image_folder)
        plain.config.scaled_real_patches = reading
        torch.manual_seed(3)
        unscaled[reading] = plain.next_train_reals(step=5)["image"]
    assert torch.equal(unscaled["bilinear"], unscaled["nearest"])
