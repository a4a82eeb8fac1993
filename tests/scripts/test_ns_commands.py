"""nerfstudio's own commands on our method, as a user runs them: ns-train (bad data, Ctrl-C, resume), ns-render,
ns-eval."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest
import torch

from hypernerfgan_ns.cameras.camera_prior import CameraPriorConfig

pytestmark = pytest.mark.slow

NS_BIN = Path(sys.executable).parent
MICRO_MODEL = [
    "--pipeline.datamanager.batch-size", "4",
    "--pipeline.datamanager.patch-size", "16",
    "--pipeline.model.hidden-width", "16",
    "--pipeline.model.num-hidden-layers", "2",
    "--pipeline.model.num-coarse-samples", "8",
    "--pipeline.discriminator.channel-base", "256",
    "--pipeline.discriminator.channel-max", "32",
    "--pipeline.num-eval-images", "8",
    "--pipeline.sample-grid-seeds", "2",
    "--pipeline.evaluation.num-generated", "16",
    "--logging.steps-per-log", "1",
]
MICRO_DATA = ["unposed-images", "--resolution", "16", "--min-image-size", "8", "--builtin-num-images", "64"]
TIMEOUT = 300
"""Seconds any one command may take."""


def ns_train(args: List[str], cwd: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [str(NS_BIN / "ns-train"), "hypernerfgan-tiny", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        **kwargs,
    )


def test_ns_train_with_a_missing_folder_says_so_without_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_folder"
    process = ns_train(["--data", str(missing), "--max-num-iterations", "1"], cwd=tmp_path)
    output, _ = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 2, output
    assert "Traceback" not in output
    assert "DatasetError" in output and "no_such_folder" in output


def test_ctrl_c_saves_a_checkpoint_that_resumes_renders_and_evaluates(tmp_path: Path) -> None:
    process = ns_train(
        ["--data", "cars", "--max-num-iterations", "100000", "--experiment-name", "interrupted"]
        + [*MICRO_MODEL, *MICRO_DATA],
        cwd=tmp_path,
    )
    lines: List[str] = []
    deadline = time.monotonic() + TIMEOUT
    assert process.stdout is not None
    for line in process.stdout:  # wait until a few iterations have been logged
        lines.append(line)
        if line.lstrip().startswith("3 (") or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=TIMEOUT)
    output = "".join(lines) + output
    assert process.returncode == 130, output
    assert "Traceback" not in output and "Resume with" in output
    assert "--data cars --load-dir" in " ".join(output.split())  # the hint names the data the run trained on

    run = next((tmp_path / "outputs" / "interrupted" / "hypernerfgan-tiny").iterdir())
    checkpoints = sorted((run / "nerfstudio_models").glob("step-*.ckpt"))
    assert len(checkpoints) == 1
    state = torch.load(checkpoints[0], map_location="cpu", weights_only=True)  # as ns-render loads it
    assert state["step"] >= 3

    resumed = ns_train(
        ["--data", "cars", "--max-num-iterations", str(state["step"] + 3), "--experiment-name", "resumed",
         "--load-dir", str(run / "nerfstudio_models"), *MICRO_MODEL, *MICRO_DATA],
        cwd=tmp_path,
    )
    output, _ = resumed.communicate(timeout=TIMEOUT)
    assert resumed.returncode == 0, output
    assert f"Resuming from {checkpoints[0]}" in output.replace("\n", "")
    resumed_run = next((tmp_path / "outputs" / "resumed" / "hypernerfgan-tiny").iterdir())
    final = torch.load(next((resumed_run / "nerfstudio_models").glob("*.ckpt")), weights_only=True)
    assert final["step"] == state["step"] + 2

    evaluation = subprocess.run(
        [str(NS_BIN / "ns-eval"), "--load-config", str(run / "config.yml")]
        + ["--output-path", str(tmp_path / "eval.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert evaluation.returncode == 0, evaluation.stdout + evaluation.stderr
    results = json.loads((tmp_path / "eval.json").read_text())["results"]
    assert results["swd"] > 0

    if shutil.which("ffmpeg") is None:
        pytest.skip("ns-render needs ffmpeg on the PATH: apt-get install ffmpeg")
    video = tmp_path / "renders" / "orbit.mp4"
    render = subprocess.run(
        [str(NS_BIN / "ns-render"), "interpolate", "--load-config", str(run / "config.yml"),
         "--output-path", str(video), "--interpolation-steps", "1", "--frame-rate", "8"],
        cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert render.returncode == 0, render.stdout + render.stderr
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames,width,height", "-of", "csv=p=0", str(video)],
        capture_output=True, text=True, check=True,
    )
    width, height, frames = (int(value) for value in probe.stdout.strip().split(","))
    assert (width, height) == (16, 16) and frames >= 20


def test_ns_render_spiral_and_a_camera_path_from_the_viewer(tmp_path: Path) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ns-render needs ffmpeg on the PATH: apt-get install ffmpeg")
    from tests.helpers import micro_config, train

    config = micro_config(tmp_path, max_num_iterations=1)
    train(config)
    config_path = config.get_base_dir() / "config.yml"
    prior = config.pipeline.datamanager.dataparser
    poses = torch.cat([CameraPriorConfig().orbit_poses(6), torch.tensor([[[0.0, 0.0, 0.0, 1.0]]]).expand(6, 1, 4)], 1)
    path = {  # the layout of a camera path exported from nerfstudio's viewer
        "camera_type": "perspective",
        "render_height": 24,
        "render_width": 24,
        "camera_path": [{"camera_to_world": pose.flatten().tolist(), "fov": 40.0, "aspect": 1.0} for pose in poses],
        "fps": 6,
        "seconds": 1.0,
    }
    path_file = tmp_path / "camera_path.json"
    path_file.write_text(json.dumps(path))
    commands = {
        "camera_path.mp4": ["camera-path", "--camera-path-filename", str(path_file)],
        "spiral.mp4": ["spiral", "--seconds", "1", "--frame-rate", "6"],
    }
    for name, arguments in commands.items():
        result = subprocess.run(
            [str(NS_BIN / "ns-render"), *arguments, "--load-config", str(config_path)]
            + ["--output-path", str(tmp_path / name)],
            cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
             "-show_entries", "stream=nb_read_frames,width,height", "-of", "csv=p=0", str(tmp_path / name)],
            capture_output=True, text=True, check=True,
        )
        width, height, frames = (int(value) for value in probe.stdout.strip().split(","))
        assert frames == 6, name
        assert (width, height) == ((24, 24) if name == "camera_path.mp4" else (prior.resolution, prior.resolution))


def test_ns_export_tsdf_and_pointcloud_and_ns_eval_without_the_training_images(tmp_path: Path) -> None:
    """`ns-export tsdf` exports the viewed object's mesh, `ns-export pointcloud` its surface points. Our errors met
    inside nerfstudio's own commands are shown as ns-train shows them, a panel and not a traceback: with the run's
    images moved away, ns-eval says how to score anyway (and, the run being trained, gives no advice on presets)."""
    from PIL import Image

    from tests.helpers import micro_config, train

    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(16):
        Image.new("RGB", (16, 16), (index * 15, 90, 200 - index * 10)).save(photos / f"{index:02d}.png")
    config = micro_config(tmp_path, data=str(photos), max_num_iterations=1)
    train(config)
    config_path = str(config.get_base_dir() / "config.yml")

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(NS_BIN / command[0]), *command[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT,
            env={**os.environ, "COLUMNS": "200"},
        )

    mesh = run("ns-export", "tsdf", "--load-config", config_path, "--output-dir", str(tmp_path / "tsdf"),
               "--resolution", "32", "--downscale-factor", "1", "--texture-method", "tsdf")
    assert mesh.returncode == 0, mesh.stdout + mesh.stderr
    assert (tmp_path / "tsdf" / "tsdf_mesh.ply").stat().st_size > 0

    # ns-export pointcloud: the viewed object's surface seen from random prior cameras, inside the object sphere (no
    # shell of background points at the near plane).
    cloud = run("ns-export", "pointcloud", "--load-config", config_path, "--output-dir", str(tmp_path / "cloud"),
                "--num-points", "500", "--num-rays-per-batch", "4096", "--normal-method", "open3d")
    assert cloud.returncode == 0, cloud.stdout + cloud.stderr
    import numpy as np
    import open3d

    cloud_file = str(tmp_path / "cloud" / "point_cloud.ply")
    points = torch.from_numpy(np.asarray(open3d.io.read_point_cloud(cloud_file).points))
    assert points.shape[0] > 100 and float(points.norm(dim=1).max()) <= CameraPriorConfig().object_radius * 1.001

    photos.rename(tmp_path / "photos_moved")
    evaluation = run("ns-eval", "--load-config", config_path, "--output-path", str(tmp_path / "eval.json"))
    output = " ".join((evaluation.stdout + evaluation.stderr).split())
    assert evaluation.returncode != 0 and "Traceback" not in output, output
    assert "DatasetError" in output and str(photos) in output
    assert "hypernerfgan score samples.zip --data COPY" in output
    assert "No preset is named like" not in output
    assert not (tmp_path / "eval.json").exists()
