"""Web-viewer control of *how* the viewed object is rendered: its samples per ray, for the viewer alone.

A run renders outside training at one count (`num_render_samples`, else training's), shared by the quality curve,
`ns-eval`, `ns-render` and the viewer, so that every score of a run is comparable. At training's count the fixed
depths of the samples draw thin lines stacked along sloped sides (docs/ablations.md, "More samples per ray in
renders"); twice the count draws them smooth. The slider sets the viewer's own count, the model's
`viewer_render_samples`: not saved in checkpoints, and used only where a camera of the viewed object is rendered
(`get_outputs_for_camera_ray_bundle`), never by the quality curve's or `ns-eval`'s samples, so moving it while
`ns-train` runs changes no point of the curve; `ns-render`, which moves no slider, keeps the run's count.

Like `ObjectViewerControls`, the module keeps a bound method of the model, not the model (see that module's
docstring).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from torch import nn

from hypernerfgan_ns.model_components.ray_samplers import MIN_SAMPLES_PER_RAY
from nerfstudio.viewer.viewer_elements import ViewerSlider

if TYPE_CHECKING:
    from hypernerfgan_ns.models.hypernerfgan import HyperNeRFGANModel

MAX_SAMPLES_FACTOR = 4
"""The slider reaches this many times the run's render count: four times training's count scored no better than
twice on `hypernerfgan-lite` (docs/ablations.md, "More samples per ray in renders"), and each frame's time grows
with the count."""
SAMPLES_STEP = 1
"""Resolution of the slider: any whole count."""


class RenderViewerControls(nn.Module):
    """The viewer's "how it is rendered" panel; parameter-free, so it adds nothing to checkpoints."""

    def __init__(self, model: "HyperNeRFGANModel") -> None:
        super().__init__()
        self._set_viewer_render_samples: Callable[[int], None] = model.set_viewer_render_samples
        run_count = model.render_samples
        self.samples_per_ray = ViewerSlider(
            "Samples per ray",
            run_count,
            MIN_SAMPLES_PER_RAY,
            MAX_SAMPLES_FACTOR * run_count,
            step=SAMPLES_STEP,
            cb_hook=self._on_change,
            hint=(
                f"Samples per ray of the viewer's renders only; the run renders with {run_count} elsewhere (ns-render, "
                "ns-eval, the quality curve). More draws sloped sides smooth, at proportionally more time a frame."
            ),
        )

    def _on_change(self, element: ViewerSlider) -> None:
        """The slider moved: the viewer renders with its count from the next frame on."""
        count = min(max(int(round(element.value)), MIN_SAMPLES_PER_RAY), int(element.max))
        self._set_viewer_render_samples(count)
