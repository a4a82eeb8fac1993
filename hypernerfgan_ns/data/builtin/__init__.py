"""Built-in procedural datasets (cars, chairs, planes) rendered on the CPU: try the GAN with no download."""

from hypernerfgan_ns.data.builtin.datasets import (
    BUILTIN_DATASETS,
    ensure_builtin_dataset,
    render_builtin_dataset,
)
from hypernerfgan_ns.data.builtin.renderer import RenderedView, render_scene
from hypernerfgan_ns.data.builtin.shapes import BUILTIN_SHAPES

__all__ = [
    "BUILTIN_DATASETS",
    "BUILTIN_SHAPES",
    "RenderedView",
    "ensure_builtin_dataset",
    "render_builtin_dataset",
    "render_scene",
]
