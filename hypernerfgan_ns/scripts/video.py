"""`hypernerfgan video`: generated objects in motion, as .mp4 (needs ffmpeg) or .gif (needs nothing).

    hypernerfgan video interpolation --load-config RUN/config.yml --output morph.mp4 --seeds 0 1 2 3
    hypernerfgan video grid --load-config RUN/config.yml --output grid.gif --num-seeds 16

`interpolation` morphs object A into B into C ... and back into A while the camera orbits once, so the video loops
without a jump. It interpolates the latent z spherically (slerp): z ~ N(0, I) lies near a sphere of radius
sqrt(latent_dim), and a straight line between two latents cuts through the inside of it, where latents of that
small norm never occur in training. `grid` shows many objects at once, every cell orbiting in sync.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple, Union

import mediapy
import numpy as np
import torch
import tyro
from jaxtyping import Float, UInt8
from PIL import Image
from torch import Tensor
from typing_extensions import Annotated

from hypernerfgan_ns.data.cache import atomic_output
from hypernerfgan_ns.errors import ExportError
from hypernerfgan_ns.scripts.rendering import (
    DEFAULT_RESOLUTION,
    WHITE,
    RenderedView,
    check_output,
    grid_shape,
    load_model,
    rendered_views,
    report_written,
    require_at_least,
    require_render_samples,
    tile,
)
from hypernerfgan_ns.utils.latents import slerp

MP4_SUFFIX = ".mp4"
"""H.264 in MP4 through mediapy, which runs ffmpeg."""

GIF_SUFFIX = ".gif"
"""Animated GIF through PIL: no ffmpeg needed, larger files, 256 colours per frame."""

VIDEO_SUFFIXES = (MP4_SUFFIX, GIF_SUFFIX)
"""File types a video can be written as."""

FFMPEG = "ffmpeg"
"""The program mediapy runs to encode MP4."""

DEFAULT_FPS = 30.0
"""Frames per second: smooth on every player."""

DEFAULT_FRAMES_PER_TRANSITION = 60
"""Frames from one object to the next: 2 seconds at 30 fps, slow enough to follow the morph."""

DEFAULT_INTERPOLATION_SEEDS = (0, 1, 2, 3)
"""Objects the interpolation visits: four transitions, an 8-second loop at the defaults."""

DEFAULT_GRID_SEEDS = 16
"""Objects in the grid video: a 4x4 grid, 518 px square at the default resolution."""

DEFAULT_GRID_FRAMES = 120
"""Frames of one orbit in the grid video: 4 seconds at 30 fps."""

H264_CRF = 18
"""x264's constant rate factor: visually lossless for renders on white, a few MB per minute at 512 px."""

MP4_FFMPEG_ARGS = ("-f", "mp4", "-movflags", "+faststart")
"""Name the container (the file is written under a temporary name first) and put the index at the start, so the
video starts playing before it is fully downloaded."""

YUV420_BLOCK = 2
"""H.264 in yuv420p, the pixel format every player and browser plays, needs frame sides that are multiples of 2."""

MILLISECONDS_PER_SECOND = 1000.0
"""GIF frame durations are given in milliseconds (and stored in hundredths of a second)."""

GIF_MIN_FRAME_HUNDREDTHS = 2
"""Shortest GIF frame time that browsers honour (20 ms: 50 fps); shorter ones are played at 100 ms."""

GIF_LOOP_FOREVER = 0
"""GIF loop count that means 'repeat forever'."""

def require_encoder(suffix: str) -> None:
    """Fails before any rendering when the video could not be written at the end."""
    if suffix == MP4_SUFFIX and shutil.which(FFMPEG) is None:
        raise ExportError(
            "Writing an .mp4 needs ffmpeg, which is not on the PATH. Install it (apt-get install ffmpeg, or "
            "conda install -c conda-forge ffmpeg), or write a .gif instead (--output video.gif), which needs no "
            "ffmpeg."
        )


def interpolation_latents(
    keyframes: Float[Tensor, "objects latent_dim"], frames_per_transition: int
) -> Float[Tensor, "frames latent_dim"]:
    """Latents of a closed loop through the keyframes (the last one morphs back into the first)."""
    frames = []
    for index, start in enumerate(keyframes):
        end = keyframes[(index + 1) % len(keyframes)]
        frames += [slerp(start, end, step / frames_per_transition) for step in range(frames_per_transition)]
    return torch.stack(frames)


def pad_to_even(frame: UInt8[np.ndarray, "height width 3"]) -> UInt8[np.ndarray, "even_height even_width 3"]:
    """The frame with a white row or column added where a side is odd (yuv420p needs even sides)."""
    height, width = frame.shape[:2]
    pad_height, pad_width = -height % YUV420_BLOCK, -width % YUV420_BLOCK
    if pad_height == pad_width == 0:
        return frame
    return np.pad(frame, ((0, pad_height), (0, pad_width), (0, 0)), constant_values=WHITE)


def gif_frame_milliseconds(fps: float) -> int:
    """A GIF frame's time for `fps`: whole hundredths of a second (what GIF stores), at least 20 ms."""
    hundredths = max(GIF_MIN_FRAME_HUNDREDTHS, round(100 / fps))
    return round(hundredths * MILLISECONDS_PER_SECOND / 100)


def write_video(frames: Iterator[UInt8[np.ndarray, "height width 3"]], output: Path, fps: float) -> None:
    """Writes the frames as the output's suffix says, under a temporary name renamed at the end.

    MP4 frames are streamed to ffmpeg as they come; GIF frames are gathered first (PIL writes them at once).
    """
    with atomic_output(output) as temporary:
        if output.suffix.lower() == GIF_SUFFIX:
            images = [Image.fromarray(frame) for frame in frames]
            images[0].save(
                temporary,
                format="GIF",
                save_all=True,
                append_images=images[1:],
                duration=gif_frame_milliseconds(fps),
                loop=GIF_LOOP_FOREVER,
            )
            return
        first = pad_to_even(next(frames))
        with mediapy.VideoWriter(
            temporary, first.shape[:2], fps=fps, crf=H264_CRF, ffmpeg_args=list(MP4_FFMPEG_ARGS)
        ) as writer:
            writer.add_image(first)
            for frame in frames:
                writer.add_image(pad_to_even(frame))


def grid_frames(
    views: Iterator[RenderedView], cells: int, rows: int, columns: int
) -> Iterator[UInt8[np.ndarray, "grid_height grid_width 3"]]:
    """Groups consecutive views `cells` at a time into tiled frames."""
    while True:
        frame: List[np.ndarray] = [view.rgb for _, view in zip(range(cells), views)]
        if not frame:
            return
        yield tile(frame, rows, columns)


@dataclass
class VideoOptions:
    """What both kinds of video share."""

    load_config: Path
    """config.yml of the training run, e.g. outputs/cars/hypernerfgan/<timestamp>/config.yml."""
    output: Path
    """Video to write: .mp4 (needs ffmpeg) or .gif (needs nothing); folders are created."""
    fps: float = DEFAULT_FPS
    """Frames per second (GIF stores frame times in hundredths of a second, so it plays at the nearest such rate,
    50 at most)."""
    resolution: int = DEFAULT_RESOLUTION
    """Side of each object's view in pixels."""
    truncation: float = 1.0
    """Truncation psi: 1 shows the generator's full variety; 0.5-0.7 pulls every object towards the average one."""
    num_render_samples: Optional[int] = None
    """Samples per ray; default: the run's (--pipeline.model.num-render-samples, else its training count). More
    draw sloped surfaces without the stacked lines of training's fixed depths, for proportionally more time."""

    def prepare(self) -> Path:
        """Checks the output and the options before the (slow) loading and rendering; returns the output path."""
        output = self.output.expanduser()
        require_encoder(check_output(output, VIDEO_SUFFIXES, "the video"))
        require_at_least("--resolution", self.resolution, 1)
        require_render_samples(self.num_render_samples)
        if self.fps <= 0:
            raise ExportError(f"--fps must be positive, got {self.fps}.")
        return output


@dataclass
class InterpolationVideo(VideoOptions):
    """Morph object A into B into C ... and back into A while the camera orbits once: a seamless loop."""

    seeds: Tuple[int, ...] = DEFAULT_INTERPOLATION_SEEDS
    """Seeds of the objects visited, in order (at least two)."""
    frames_per_transition: int = DEFAULT_FRAMES_PER_TRANSITION
    """Frames from one object to the next; the video has len(seeds) x this many frames."""

    def main(self) -> None:
        """Renders one frame per interpolated latent, from a camera that orbits once over the whole video."""
        output = self.prepare()
        if len(self.seeds) < 2:
            raise ExportError(
                f"An interpolation needs at least two --seeds, got {list(self.seeds)}. For an orbit around one "
                "object, use `hypernerfgan video grid --num-seeds 1`."
            )
        require_at_least("--frames-per-transition", self.frames_per_transition, 1)
        model = load_model(self.load_config, self.num_render_samples)
        latents = interpolation_latents(model.latents_from_seeds(self.seeds), self.frames_per_transition)
        poses = model.dataset_preset.camera_prior.orbit_poses(len(latents))
        views = rendered_views(
            model, latents, poses, self.resolution, self.truncation, description=f"Rendering {len(latents)} frames"
        )
        write_video((view.rgb for view in views), output, self.fps)
        report_written(output, f"{len(latents)} frames morphing through seeds {list(self.seeds)}")


@dataclass
class GridVideo(VideoOptions):
    """A square grid of objects (seeds 0, 1, ...), every cell orbiting in sync."""

    num_seeds: int = DEFAULT_GRID_SEEDS
    """Number of objects; the grid is the squarest one that holds them, filled row by row."""
    frames: int = DEFAULT_GRID_FRAMES
    """Frames of the video: one full orbit."""

    def main(self) -> None:
        """Renders every object from the same orbit camera per frame and tiles them."""
        output = self.prepare()
        require_at_least("--num-seeds", self.num_seeds, 1)
        require_at_least("--frames", self.frames, 1)
        model = load_model(self.load_config, self.num_render_samples)
        rows, columns = grid_shape(self.num_seeds)
        latents = model.latents_from_seeds(range(self.num_seeds)).repeat(self.frames, 1)  # frame by frame
        poses = model.dataset_preset.camera_prior.orbit_poses(self.frames).repeat_interleave(self.num_seeds, dim=0)
        views = rendered_views(
            model,
            latents,
            poses,
            self.resolution,
            self.truncation,
            description=f"Rendering {self.frames} frames x {self.num_seeds} objects",
        )
        write_video(grid_frames(views, self.num_seeds, rows, columns), output, self.fps)
        report_written(output, f"{self.frames} frames of a {rows}x{columns} grid of seeds 0-{self.num_seeds - 1}")


@dataclass
class VideoCommands:
    """Render a video of generated objects: a morph from object to object, or a grid of objects, orbiting."""

    command: Annotated[
        Union[
            Annotated[InterpolationVideo, tyro.conf.subcommand("interpolation", prefix_name=False)],
            Annotated[GridVideo, tyro.conf.subcommand("grid", prefix_name=False)],
        ],
        tyro.conf.OmitArgPrefixes,
    ]

    def main(self) -> None:
        self.command.main()
