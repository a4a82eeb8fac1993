"""`hypernerfgan samples`, `video` and `export-mesh` on a micro run trained once for the module."""

from __future__ import annotations

import shutil
from pathlib import Path

import mediapy
import numpy as np
import pytest
import torch
import trimesh
import yaml
from PIL import Image

from hypernerfgan_ns.errors import CheckpointError, ExportError
from hypernerfgan_ns.scripts.cli import parse
from hypernerfgan_ns.scripts.export_mesh import ExportMeshCommand
from hypernerfgan_ns.scripts.rendering import GUTTER_PIXELS
from hypernerfgan_ns.scripts.samples import SamplesCommand
from hypernerfgan_ns.scripts.video import GridVideo, InterpolationVideo, VideoCommands, write_video
from hypernerfgan_ns.utils.latents import slerp
from tests.helpers import micro_config, train

RESOLUTION = 16
"""Side of every rendered view: the micro run's training resolution."""

MESH_RESOLUTION = 24
"""Density grid points per side for the mesh tests."""

MESH_THRESHOLD = 1.0
"""A 2-iteration run's densities peak near 6 (its soft density sphere), well below the default threshold of 10."""

NEAR_WHITE = 250
"""Pixels darker than this in some channel are content, not the white background."""

needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="writing .mp4 needs ffmpeg: apt-get install ffmpeg"
)


@pytest.fixture(scope="module")
def run_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """config.yml of a 2-iteration micro run."""
    config = micro_config(tmp_path_factory.mktemp("run"), max_num_iterations=2)
    train(config)
    return config.get_base_dir() / "config.yml"


def grid_side(cells: int) -> int:
    """Pixels along a grid side of `cells` views separated by gutters."""
    return cells * RESOLUTION + (cells - 1) * GUTTER_PIXELS


def assert_only(folder: Path, name: str) -> None:
    """The folder holds exactly the finished file: no temporary leftovers."""
    assert [path.name for path in folder.iterdir()] == [name]


def video_frames(path: Path) -> np.ndarray:
    """[frames, height, width, 3] of an .mp4 or .gif."""
    if path.suffix == ".gif":
        with Image.open(path) as gif:
            frames = []
            for index in range(gif.n_frames):
                gif.seek(index)
                frames.append(np.asarray(gif.convert("RGB")))
        return np.stack(frames)
    return np.asarray(mediapy.read_video(path))


# ---------------------------------------------------------------------------------------------------------- samples


def test_samples_grid_has_a_row_per_seed_and_depth_and_a_column_per_view(run_config: Path, tmp_path: Path) -> None:
    output = tmp_path / "new" / "samples.png"
    SamplesCommand(
        load_config=run_config, output=output, seeds=[3, 1], views=3, resolution=RESOLUTION, depth=True
    ).main()
    with Image.open(output) as image:
        assert image.mode == "RGB"
        pixels = np.asarray(image)
    assert pixels.shape == (grid_side(4), grid_side(3), 3)  # 2 seeds x (rgb + depth) rows, 3 views
    first_cell = pixels[:RESOLUTION, :RESOLUTION]
    assert (first_cell.min(axis=-1) < NEAR_WHITE).any(), "the first object renders nothing"
    assert (pixels[:, RESOLUTION : RESOLUTION + GUTTER_PIXELS] == 255).all(), "gutters are white"
    assert_only(output.parent, "samples.png")


def test_samples_through_the_cli(run_config: Path, tmp_path: Path, capsys) -> None:
    output = tmp_path / "samples.png"
    common = ["samples", "--load-config", str(run_config), "--output", str(output), "--resolution", str(RESOLUTION)]
    assert parse([*common, "--num-seeds", "5"]).seeds is None
    command = parse([*common, "--seeds", "2", "0", "--views", "1", "--num-render-samples", "12"])
    assert isinstance(command, SamplesCommand) and command.seeds == [2, 0]
    command.main()
    assert "12 samples per ray" in " ".join(capsys.readouterr().out.split())
    with Image.open(output) as image:
        assert image.size == (grid_side(1), grid_side(2))


def test_a_wrong_output_is_refused_before_loading(tmp_path: Path) -> None:
    missing_run = tmp_path / "no_run" / "config.yml"
    with pytest.raises(ExportError, match=r"\.png"):
        SamplesCommand(load_config=missing_run, output=tmp_path / "samples.jpg").main()
    with pytest.raises(ExportError, match=r"\.mp4 or \.gif"):
        InterpolationVideo(load_config=missing_run, output=tmp_path / "video.avi").main()
    with pytest.raises(ExportError, match=r"\.ply or \.obj"):
        ExportMeshCommand(load_config=missing_run, seed=0, output=tmp_path / "mesh.stl").main()
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ExportError, match="is a folder"):
        SamplesCommand(load_config=missing_run, output=tmp_path / "folder.png").main()
    for command, output in ((SamplesCommand, "samples.png"), (GridVideo, "grid.gif")):
        with pytest.raises(ExportError, match="--num-render-samples must be at least 2"):
            command(load_config=missing_run, output=tmp_path / output, num_render_samples=1).main()
    with pytest.raises(CheckpointError):
        SamplesCommand(load_config=missing_run, output=tmp_path / "samples.png").main()


def test_a_run_trained_elsewhere_loads_from_its_folder(run_config: Path, tmp_path: Path, monkeypatch) -> None:
    """ns-train keeps `--output-dir outputs` relative to where it ran; the run is found where its config.yml is."""
    output_dir = run_config.parents[3]
    shutil.copytree(output_dir, tmp_path / "copied" / "outputs")
    moved = tmp_path / "copied" / "outputs" / run_config.relative_to(output_dir)
    config = yaml.load(moved.read_text(encoding="utf8"), Loader=yaml.Loader)
    config.output_dir = Path("outputs")
    moved.write_text(yaml.dump(config), encoding="utf8")
    monkeypatch.chdir(tmp_path)  # not where the run was trained: outputs/ is not here
    SamplesCommand(load_config=moved.parent, output=tmp_path / "samples.png", views=1, resolution=RESOLUTION).main()
    assert (tmp_path / "samples.png").is_file()


# ---------------------------------------------------------------------------------------------------------- videos


@pytest.mark.parametrize("fps, milliseconds", [(30, 30), (60, 20), (150, 20), (12, 80)])
def test_gif_frames_last_whole_hundredths_browsers_honour(tmp_path: Path, fps: float, milliseconds: int) -> None:
    frames = (np.full((4, 4, 3), value, np.uint8) for value in (0, 128, 255))
    write_video(frames, tmp_path / "video.gif", fps)
    with Image.open(tmp_path / "video.gif") as gif:
        assert gif.n_frames == 3 and gif.info["duration"] == milliseconds


def test_slerp_keeps_a_typical_latent_norm() -> None:
    generator = torch.Generator().manual_seed(0)
    start, end = torch.randn(2, 128, generator=generator)
    assert torch.allclose(slerp(start, end, 0.0), start, atol=1e-5)
    assert torch.allclose(slerp(start, end, 1.0), end, atol=1e-5)
    halfway = slerp(start, end, 0.5)
    assert torch.isclose(halfway.norm(), (start.norm() + end.norm()) / 2)  # the norm moves linearly
    assert torch.lerp(start, end, 0.5).norm() < 0.8 * halfway.norm()  # what a straight line would give
    assert torch.allclose(slerp(start, 2 * start, 0.5), 1.5 * start)  # parallel: a straight line


@needs_ffmpeg
def test_interpolation_mp4_has_a_frame_per_step(run_config: Path, tmp_path: Path) -> None:
    output = tmp_path / "videos" / "morph.mp4"
    InterpolationVideo(
        load_config=run_config, output=output, seeds=(0, 1, 2), frames_per_transition=3, resolution=RESOLUTION, fps=8
    ).main()
    frames = video_frames(output)
    assert frames.shape == (9, RESOLUTION, RESOLUTION, 3)  # 3 transitions, back to the first seed
    assert (frames.min(axis=-1) < NEAR_WHITE).any()
    assert_only(output.parent, "morph.mp4")


def test_interpolation_gif_through_the_cli(run_config: Path, tmp_path: Path) -> None:
    output = tmp_path / "morph.gif"
    command = parse(
        ["video", "interpolation", "--load-config", str(run_config), "--output", str(output), "--seeds", "0", "1",
         "--frames-per-transition", "2", "--resolution", str(RESOLUTION)]
    )
    assert isinstance(command, VideoCommands) and isinstance(command.command, InterpolationVideo)
    command.main()
    assert video_frames(output).shape == (4, RESOLUTION, RESOLUTION, 3)


def test_interpolation_needs_two_seeds(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="at least two"):
        InterpolationVideo(load_config=tmp_path / "config.yml", output=tmp_path / "v.gif", seeds=(5,)).main()


@needs_ffmpeg
def test_grid_video_tiles_the_seeds_in_a_square(run_config: Path, tmp_path: Path) -> None:
    output = tmp_path / "grid.mp4"
    command = parse(
        ["video", "grid", "--load-config", str(run_config), "--output", str(output), "--num-seeds", "3", "--frames",
         "4", "--resolution", str(RESOLUTION)]
    )
    assert isinstance(command.command, GridVideo)
    command.main()
    frames = video_frames(output)
    assert frames.shape == (4, grid_side(2), grid_side(2), 3)  # 3 seeds fill a 2x2 grid
    assert (frames[:, -RESOLUTION:, -RESOLUTION:] > NEAR_WHITE).all(), "the unused cell stays white"


def test_without_ffmpeg_mp4_fails_up_front_and_gif_still_works(
    run_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(ExportError, match="apt-get install ffmpeg") as error:
        GridVideo(load_config=run_config, output=tmp_path / "grid.mp4", num_seeds=1, frames=2).main()
    assert ".gif" in str(error.value)
    assert not any(tmp_path.iterdir())
    output = tmp_path / "grid.gif"
    GridVideo(load_config=run_config, output=output, num_seeds=2, frames=3, resolution=RESOLUTION).main()
    assert video_frames(output).shape == (3, grid_side(1), grid_side(2), 3)


# ---------------------------------------------------------------------------------------------------------- meshes


def check_mesh(mesh: trimesh.Trimesh) -> None:
    """A non-empty, outward-facing mesh inside the scene box with a colour per vertex."""
    assert len(mesh.vertices) > 0 and len(mesh.faces) > 0
    assert (mesh.bounds >= -1.0).all() and (mesh.bounds <= 1.0).all()
    assert mesh.visual.kind == "vertex"
    assert mesh.visual.vertex_colors.shape == (len(mesh.vertices), 4)
    assert mesh.volume > 0, "faces wind counter-clockwise seen from outside"


def test_mesh_export_writes_coloured_ply_and_obj(run_config: Path, tmp_path: Path) -> None:
    ply = tmp_path / "meshes" / "object.ply"
    ExportMeshCommand(
        load_config=run_config, seed=0, output=ply, resolution=MESH_RESOLUTION, density_threshold=MESH_THRESHOLD
    ).main()
    mesh = trimesh.load(ply, process=False)
    check_mesh(mesh)
    assert_only(ply.parent, "object.ply")

    obj = tmp_path / "object.obj"
    command = parse(
        ["export-mesh", "--load-config", str(run_config), "--seed", "0", "--output", str(obj), "--resolution",
         str(MESH_RESOLUTION), "--density-threshold", str(MESH_THRESHOLD)]
    )
    assert isinstance(command, ExportMeshCommand)
    command.main()
    from_obj = trimesh.load(obj, process=False)
    check_mesh(from_obj)
    assert np.allclose(from_obj.vertices, mesh.vertices, atol=1e-5)  # the same object in both formats


def test_a_threshold_above_the_densest_point_says_how_dense_it_gets(run_config: Path, tmp_path: Path) -> None:
    output = tmp_path / "mesh.ply"
    with pytest.raises(ExportError, match="highest density in the scene box is") as error:
        ExportMeshCommand(
            load_config=run_config, seed=0, output=output, resolution=MESH_RESOLUTION, density_threshold=1e6
        ).main()
    assert "lower threshold" in str(error.value)
    assert not output.exists()
