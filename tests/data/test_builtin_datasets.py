"""Tests of the built-in procedural datasets: shapes, ray caster, renderer, cache and `hypernerfgan data synth`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest
import torch
from PIL import Image

from hypernerfgan_ns.cameras.camera_prior import CameraPriorConfig, look_at_origin_poses
from hypernerfgan_ns.data.builtin import datasets
from hypernerfgan_ns.data.builtin.datasets import (
    BUILTIN_DATASETS,
    IMAGES_FOLDER,
    TRANSFORMS_FILE,
    builtin_dataset_folder,
    ensure_builtin_dataset,
    render_builtin_dataset,
)
from hypernerfgan_ns.data.builtin.primitives import (
    box,
    cylinder,
    ellipsoid,
    intersect,
    prism,
    scene_bounding_radius,
)
from hypernerfgan_ns.data.builtin.renderer import camera_rays, render_scene, trace
from hypernerfgan_ns.data.builtin.shapes import BUILTIN_SHAPES, sample_scenes
from hypernerfgan_ns.data.dataparsers.unposed_images_dataparser import UnposedImagesDataParserConfig
from hypernerfgan_ns.errors import DatasetError
from hypernerfgan_ns.scripts.data_synth import SynthCommand
from tests.helpers import own_preset

SET_SIZE = 6
"""Images in the small sets rendered by these tests."""
SET_RESOLUTION = 48
"""Side of the images in the small sets rendered by these tests."""
OBJECT_RADIUS = 0.95
"""Every instance must lie inside this sphere (the prior renders the ball of radius 1 around the origin)."""
GREY = (0.5, 0.5, 0.5)
FLAT_PATCH_TOLERANCE = 0.004
"""Largest colour spread in a 3x3 patch that still counts as one flat, uniformly lit face."""
HALF_PIXEL_SHADING_TOLERANCE = 0.01
"""Colour change of smooth shading over half a pixel on curved parts (cylinders, ellipsoids) at 96 px."""


# ----------------------------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def prior() -> CameraPriorConfig:
    return CameraPriorConfig()


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("builtin_cache")


@pytest.fixture(scope="module")
def rendered_sets(module_cache: Path) -> Dict[str, Path]:
    """A small rendered set of every category, through the cache."""
    return {
        name: ensure_builtin_dataset(name, SET_SIZE, SET_RESOLUTION, seed=0, cache_root=module_cache)
        for name in BUILTIN_DATASETS
    }


def load_images(folder: Path) -> np.ndarray:
    paths = sorted((folder / IMAGES_FOLDER).glob("*.png"))
    return np.stack([np.asarray(Image.open(path)) for path in paths])


def flat_patches(view) -> torch.Tensor:
    """Pixels whose 3x3 neighbourhood is all object, of one colour (within FLAT_PATCH_TOLERANCE)."""
    rgb = view.rgb.permute(2, 0, 1)[None]
    spread = torch.nn.functional.max_pool2d(rgb, 3, 1, 1) + torch.nn.functional.max_pool2d(-rgb, 3, 1, 1)
    covered = -torch.nn.functional.max_pool2d(-view.mask.float()[None, None], 3, 1, 1)
    return (spread.amax(dim=1)[0] < FLAT_PATCH_TOLERANCE) & (covered[0, 0] > 0)


def two_views(azimuths: Tuple[float, float], elevations: Tuple[float, float]) -> torch.Tensor:
    return look_at_origin_poses(torch.tensor(azimuths), torch.tensor(elevations), CameraPriorConfig().radius)


# ----------------------------------------------------------------------------------------------------------------------
# Rendered sets


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_rendered_set_shows_one_object_per_image_on_white(name: str, rendered_sets: Dict[str, Path]) -> None:
    folder = rendered_sets[name]
    images = load_images(folder)
    assert images.shape == (SET_SIZE, SET_RESOLUTION, SET_RESOLUTION, 3)
    assert images.dtype == np.uint8
    corners = images[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == 255).all(), "the background must be pure white"
    coverage = (images < 255).any(axis=-1).mean(axis=(1, 2))
    assert (coverage > 0.02).all() and (coverage < 0.5).all(), f"object covers {coverage} of the images"
    # Different instances and colours: no two images alike.
    flat = images.reshape(SET_SIZE, -1).astype(np.int16)
    assert all(np.abs(flat[i] - flat[j]).mean() > 1 for i in range(SET_SIZE) for j in range(i))


def test_transforms_describe_the_prior_cameras(rendered_sets: Dict[str, Path], prior: CameraPriorConfig) -> None:
    transforms = json.loads((rendered_sets["cars"] / TRANSFORMS_FILE).read_text())
    assert transforms["w"] == transforms["h"] == SET_RESOLUTION
    assert transforms["fl_x"] == pytest.approx(prior.focal_length(SET_RESOLUTION))
    assert transforms["fl_y"] == pytest.approx(prior.focal_length(SET_RESOLUTION))
    assert transforms["cx"] == transforms["cy"] == SET_RESOLUTION / 2
    assert transforms["camera_angle_x"] == pytest.approx(prior.fov)
    frames = transforms["frames"]
    assert [frame["file_path"] for frame in frames] == [f"images/{i:05d}.png" for i in range(SET_SIZE)]
    assert [frame["instance"] for frame in frames] == list(range(SET_SIZE))
    assert all((rendered_sets["cars"] / frame["file_path"]).is_file() for frame in frames)
    expected_poses, _ = datasets.plan_builtin_dataset(SET_SIZE, 0, prior)
    poses = torch.tensor([frame["transform_matrix"] for frame in frames])
    assert torch.allclose(poses[:, :3], expected_poses, atol=1e-6)
    assert torch.equal(poses[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(SET_SIZE, 4))


def test_same_seed_renders_identical_images_in_any_number_of_processes(tmp_path: Path) -> None:
    first = render_builtin_dataset("planes", tmp_path / "a", 4, 32, seed=5, num_workers=0)
    second = render_builtin_dataset("planes", tmp_path / "b", 4, 32, seed=5, num_workers=2)
    other = render_builtin_dataset("planes", tmp_path / "c", 4, 32, seed=6, num_workers=0)
    for index in range(4):
        name = f"{IMAGES_FOLDER}/{index:05d}.png"
        assert (first / name).read_bytes() == (second / name).read_bytes()
    assert not np.array_equal(load_images(first), load_images(other))
    assert (first / TRANSFORMS_FILE).read_text() == (second / TRANSFORMS_FILE).read_text()


def test_a_built_in_set_is_seen_from_the_training_presets_camera_prior(tmp_path: Path) -> None:
    """`--data cars --preset mine.yml` trains with that preset's cameras: the images are rendered from them."""
    wide_preset = own_preset(tmp_path, prior_changes={"fov": 0.9})
    options = dict(data=Path("cars"), resolution=16, builtin_num_images=3, min_num_images=1, cache_dir=tmp_path)
    wide = UnposedImagesDataParserConfig(**options, preset=str(wide_preset)).setup().resolve_source()
    shipped = UnposedImagesDataParserConfig(**options).setup().resolve_source()
    assert shipped == builtin_dataset_folder("cars", 3, 16, 0, tmp_path) and wide.parent == shipped.parent != wide
    focal = json.loads((wide / TRANSFORMS_FILE).read_text())["fl_x"]
    assert focal == pytest.approx(CameraPriorConfig(fov=0.9).focal_length(16))
    assert focal < json.loads((shipped / TRANSFORMS_FILE).read_text())["fl_x"], "a wider field of view"


def test_cache_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = ensure_builtin_dataset("chairs", 3, 24, seed=2, cache_root=tmp_path)
    assert folder == builtin_dataset_folder("chairs", 3, 24, 2, tmp_path)
    assert folder.parent == tmp_path / "builtin"
    assert folder.name == f"chairs-n3-r24-s2-v{datasets.BUILTIN_DATASET_VERSION}"
    assert len(list((folder / IMAGES_FOLDER).iterdir())) == 3

    def must_not_render(*args, **kwargs):
        raise AssertionError("the cached set was rendered again")

    monkeypatch.setattr(datasets, "render_builtin_dataset", must_not_render)
    assert ensure_builtin_dataset("chairs", 3, 24, seed=2, cache_root=tmp_path) == folder
    assert [p.name for p in (tmp_path / "builtin").iterdir()] == [folder.name], "no stray partial folders"


def test_interrupted_render_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fail_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    original = datasets._render_chunk
    monkeypatch.setattr(datasets, "_render_chunk", fail_on_third)
    with pytest.raises(KeyboardInterrupt):
        ensure_builtin_dataset("cars", 5, 16, cache_root=tmp_path)
    assert list((tmp_path / "builtin").iterdir()) == []


@pytest.mark.parametrize("call", [
    lambda root: ensure_builtin_dataset("boats", 4, 32, cache_root=root),
    lambda root: render_builtin_dataset("boats", root / "out", 4, 32),
    lambda root: SynthCommand(name="boats", output=root / "out", num_images=4, resolution=32).main(),
])
def test_unknown_name_lists_the_builtin_sets(call, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="boats") as error:
        call(tmp_path)
    assert all(name in str(error.value) for name in BUILTIN_DATASETS)
    assert not (tmp_path / "out").exists() and not (tmp_path / "builtin").exists()


# ----------------------------------------------------------------------------------------------------------------------
# Shapes


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_every_instance_lies_inside_the_rendered_ball(name: str) -> None:
    scenes = sample_scenes(name, 150, seed=11)
    for scene in scenes:
        assert max(primitive.bounding_radius() for primitive in scene) <= OBJECT_RADIUS
    # Independently of the analytic bounds: surface points found by casting rays at a few instances.
    generator = torch.Generator().manual_seed(0)
    for scene in scenes[:10]:
        origins = torch.nn.functional.normalize(torch.randn(4000, 3, generator=generator), dim=-1) * 4.0
        targets = torch.nn.functional.normalize(torch.randn(4000, 3, generator=generator), dim=-1) * 0.6
        directions = torch.nn.functional.normalize(targets - origins, dim=-1)
        hits = intersect(scene, origins, directions)
        points = origins[hits.hit] + hits.t[hits.hit, None] * directions[hits.hit]
        assert hits.hit.sum() > 100
        assert points.norm(dim=-1).max() <= min(OBJECT_RADIUS, scene_bounding_radius(scene)) + 1e-4


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_instances_are_deterministic_and_varied(name: str) -> None:
    def signature(scene) -> torch.Tensor:
        return torch.cat([torch.cat([p.bounds()[0], p.bounds()[1], p.colour]) for p in scene])

    first, second = sample_scenes(name, 5, seed=3), sample_scenes(name, 5, seed=3)
    assert all(torch.equal(signature(a), signature(b)) for a, b in zip(first, second))
    colours = torch.stack([scene[0].colour for scene in sample_scenes(name, 40, seed=4)])
    assert colours.std(dim=0).max() > 0.05, "instances should not all share one colour"
    sizes = torch.stack([torch.cat(scene[0].bounds()) for scene in sample_scenes(name, 40, seed=4)])
    assert sizes.std(dim=0).max() > 0.02, "instances should not all share one shape"


def test_instances_are_upright_and_centred() -> None:
    for name, sampler in BUILTIN_SHAPES.items():
        scene = sampler(torch.Generator().manual_seed(1))
        low = torch.stack([p.bounds()[0] for p in scene]).amin(dim=0)
        high = torch.stack([p.bounds()[1] for p in scene]).amax(dim=0)
        assert torch.allclose((low + high) / 2, torch.zeros(3), atol=1e-5), name
    car = BUILTIN_SHAPES["cars"](torch.Generator().manual_seed(1))
    extent = torch.stack([p.bounds()[1] for p in car]).amax(dim=0) * 2
    assert extent[0] > extent[1] > 0 and extent[0] > extent[2], "a car is longer (x) than wide (y) or high (z)"


# ----------------------------------------------------------------------------------------------------------------------
# Primitives


def test_primitive_hits_distances_and_normals() -> None:
    origins = torch.tensor([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0], [5.0, 5.0, 5.0]])
    towards_origin = torch.nn.functional.normalize(-origins, dim=-1)

    hits = intersect([box((0.0, 0.0, 0.0), (1.0, 0.5, 0.25), GREY)], origins, towards_origin)
    assert torch.allclose(hits.t[:3], torch.tensor([4.0, 4.5, 4.75]))
    assert torch.allclose(hits.normal[:3], torch.eye(3))
    assert hits.hit.all()

    hits = intersect([cylinder((0.0, 0.0, 0.0), (0.0, 0.0, 2.0), 0.5, 1.0, GREY)], origins, towards_origin)
    assert torch.allclose(hits.t[:3], torch.tensor([4.5, 4.5, 4.0]))
    assert torch.allclose(hits.normal[:3], torch.eye(3), atol=1e-6)

    hits = intersect([ellipsoid((0.0, 0.0, 0.0), (1.0, 2.0, 0.5), GREY)], origins, towards_origin)
    assert torch.allclose(hits.t[:3], torch.tensor([4.0, 3.0, 4.5]))
    assert torch.allclose(hits.normal[:3], torch.eye(3), atol=1e-6)

    missing = intersect([box((0.0, 0.0, 3.0), (0.1, 0.1, 0.1), GREY)], origins[:2], towards_origin[:2])
    assert not missing.hit.any() and torch.isinf(missing.t).all()


def test_nearest_primitive_wins_and_colours_follow() -> None:
    red, blue = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
    scene = [box((0.0, 0.0, 0.0), (0.5, 0.5, 0.5), red), box((1.0, 0.0, 0.0), (0.2, 0.2, 0.2), blue)]
    origins = torch.tensor([[5.0, 0.0, 0.0], [-5.0, 0.0, 0.0]])
    directions = torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    hits = intersect(scene, origins, directions)
    assert torch.allclose(hits.t, torch.tensor([3.8, 4.5]))
    assert torch.equal(hits.colour, torch.tensor([blue, red]))


def test_prism_rejects_a_concave_profile() -> None:
    with pytest.raises(ValueError, match="convex"):
        prism(torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 0.2], [2.0, 1.0], [0.0, 1.0]]), 0.1, GREY)


# ----------------------------------------------------------------------------------------------------------------------
# Renderer


def test_pixel_rays_are_nerfstudios(prior: CameraPriorConfig) -> None:
    resolution = 40
    pose = prior.sample_poses(1, torch.Generator().manual_seed(7))[0]
    nerfstudio_rays = prior.cameras(pose[None], resolution).generate_rays(camera_indices=0, keep_shape=True)
    origin, directions = camera_rays(pose, prior, resolution, supersampling=1)
    assert torch.allclose(directions[:, :, 0], nerfstudio_rays.directions, atol=1e-6)
    assert torch.allclose(origin.expand(resolution, resolution, 3), nerfstudio_rays.origins)

    # The depth of a pixel, put on nerfstudio's ray for that pixel, lands on the surface rendered there.
    centre, half = torch.tensor([0.1, -0.05, 0.0]), torch.tensor([0.4, 0.3, 0.25])
    scene = [box(centre, half, GREY)]
    for supersampling in (1, 2):
        view = render_scene(scene, pose, prior, resolution, supersampling=supersampling)
        assert 0.05 < view.mask.float().mean() < 0.5
        assert torch.isinf(view.depth[~view.mask]).all()
        points = nerfstudio_rays.origins + nerfstudio_rays.directions * view.depth[..., None]
        on_surface = ((points[view.mask] - centre).abs() / half).amax(dim=-1)
        assert torch.allclose(on_surface, torch.ones_like(on_surface), atol=1e-4)


def test_supersampling_antialiases_edges_only(prior: CameraPriorConfig) -> None:
    pose = two_views((30.0, 0.0), (20.0, 0.0))[0]
    scene = BUILTIN_SHAPES["chairs"](torch.Generator().manual_seed(0))
    sharp = render_scene(scene, pose, prior, 64, supersampling=1)
    smooth = render_scene(scene, pose, prior, 64, supersampling=3)
    assert torch.equal(smooth.depth, sharp.depth) and torch.equal(smooth.mask, sharp.mask)
    background = ~sharp.mask & (smooth.rgb == 1.0).all(dim=-1)
    assert (sharp.rgb[~sharp.mask] == 1.0).all() and background.float().mean() > 0.5
    assert ((smooth.rgb - sharp.rgb).abs().amax(dim=-1) > 0.05).any(), "edges should blend with the background"
    assert 0.0 <= smooth.rgb.min() and smooth.rgb.max() <= 1.0


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_a_surface_point_has_the_same_colour_from_every_view(name: str, prior: CameraPriorConfig) -> None:
    """No view dependence: pixels of view A, back-projected and seen again in view B, keep their colour."""
    resolution = 96
    scene = BUILTIN_SHAPES[name](torch.Generator().manual_seed(21))
    pose_a, pose_b = two_views((20.0, 75.0), (25.0, 50.0))
    view_a = render_scene(scene, pose_a, prior, resolution, supersampling=1)
    view_b = render_scene(scene, pose_b, prior, resolution, supersampling=1)
    origin_a, directions_a = camera_rays(pose_a, prior, resolution, supersampling=1)
    points = origin_a + directions_a[:, :, 0][view_a.mask] * view_a.depth[view_a.mask][:, None]
    colours_a = view_a.rgb[view_a.mask]

    # Project into B (OpenGL camera: looks along -z, image y up) and read B's pixel there.
    origin_b = pose_b[:, 3]
    camera = (points - origin_b) @ pose_b[:, :3]
    focal, centre = prior.focal_length(resolution), resolution / 2
    column = torch.floor(centre + focal * camera[:, 0] / -camera[:, 2]).long()
    row = torch.floor(centre - focal * camera[:, 1] / -camera[:, 2]).long()
    inside = (column >= 0) & (column < resolution) & (row >= 0) & (row < resolution)
    column, row = column.clamp(0, resolution - 1), row.clamp(0, resolution - 1)
    distance_b = (points - origin_b).norm(dim=-1)
    pixel_footprint = distance_b * 2 * math.tan(prior.fov / 2) / resolution
    visible = inside & view_b.mask[row, column] & ((view_b.depth[row, column] - distance_b).abs() < pixel_footprint)
    assert visible.sum() > 300, "the two views should share many surface points"
    # B samples its pixel centre, up to half a pixel from the point: compare where that cannot cross an edge or a
    # crease, i.e. inside patches of one colour in both views. On curved parts the shading still varies smoothly
    # across that half pixel, hence the tolerance; the exact check follows.
    flat = visible & flat_patches(view_a)[view_a.mask] & flat_patches(view_b)[row, column]
    assert flat.sum() > 100
    difference = (view_b.rgb[row, column] - colours_a).abs().amax(dim=-1)
    assert difference[flat].max() < HALF_PIXEL_SHADING_TOLERANCE

    # Exactly at the point: B's ray through it sees it, in A's colour.
    directions_b = torch.nn.functional.normalize(points - origin_b, dim=-1)
    colours_b, depths_b, hit_b = trace(scene, origin_b, directions_b)
    seen = hit_b & ((depths_b - distance_b).abs() < 1e-4)
    assert seen.sum() > 300
    # float32 hit points differ by ~1e-5 between the two rays, which moves a curved surface's normal a little.
    assert torch.allclose(colours_b[seen], colours_a[seen], atol=1e-3)


# ----------------------------------------------------------------------------------------------------------------------
# hypernerfgan data synth


def test_synth_command_writes_images_and_cameras_looking_at_the_origin(
    tmp_path: Path, prior: CameraPriorConfig
) -> None:
    output = tmp_path / "chairs"
    SynthCommand(name="chairs", output=output, num_images=5, resolution=32, seed=1).main()
    assert load_images(output).shape == (5, 32, 32, 3)
    transforms = json.loads((output / TRANSFORMS_FILE).read_text())
    poses = torch.tensor([frame["transform_matrix"] for frame in transforms["frames"]])
    assert poses.shape == (5, 4, 4)
    positions = poses[:, :3, 3]
    assert torch.allclose(positions.norm(dim=-1), torch.full((5,), prior.radius), atol=1e-5)
    looking = -poses[:, :3, 2]  # OpenGL: the camera looks along its -z axis
    assert torch.allclose(looking, -positions / prior.radius, atol=1e-5)
    assert torch.allclose(torch.linalg.det(poses[:, :3, :3]), torch.ones(5), atol=1e-5)


def test_synth_command_refuses_a_folder_with_files(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(DatasetError, match="another"):
        SynthCommand(name="cars", output=tmp_path, num_images=2, resolution=16).main()
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    SynthCommand(name="cars", output=empty, num_images=2, resolution=16).main()
    assert len(list((empty / IMAGES_FOLDER).iterdir())) == 2


def test_synth_command_line(tmp_path: Path) -> None:
    from hypernerfgan_ns.scripts.cli import parse

    args = ["data", "synth", "planes", "--output", str(tmp_path / "p"), "--num-images", "7", "--resolution", "64"]
    command = parse(args).command
    assert command == SynthCommand(name="planes", output=tmp_path / "p", num_images=7, resolution=64, seed=0)
    defaults = parse(["data", "synth", "cars", "--output", "x"]).command
    assert (defaults.num_images, defaults.resolution, defaults.seed) == (2000, 128, 0)
