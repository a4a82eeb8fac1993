"""The viewer's "Samples per ray" slider: it changes the viewer's renders and nothing that a run is scored or shown
by elsewhere."""

from __future__ import annotations

import copy

import pytest
import torch

from hypernerfgan_ns.data.dataset_presets import DatasetPreset
from hypernerfgan_ns.errors import ConfigError
from hypernerfgan_ns.model_components.ray_samplers import MIN_SAMPLES_PER_RAY
from hypernerfgan_ns.models.hypernerfgan import HyperNeRFGANModel
from hypernerfgan_ns.viewer.render_controls import MAX_SAMPLES_FACTOR
from nerfstudio.cameras.cameras import Cameras
from tests.conftest import make_model
from tests.helpers import samples_per_ray_queried
from tests.viewer.user_actions import change

VIEWER_COUNT = 40
"""The count a user picks on the slider in these tests (the small model trains and renders with 16)."""
RESOLUTION = 8
"""Pixels a side of the test views."""


def a_view(preset: DatasetPreset) -> Cameras:
    prior = preset.camera_prior
    return prior.cameras(prior.orbit_poses(8)[:1], resolution=RESOLUTION)


def test_the_slider_starts_at_the_runs_render_count(preset: DatasetPreset) -> None:
    for num_render_samples, expected in ((None, 16), (24, 24)):
        slider = make_model(preset, num_render_samples=num_render_samples).render_controls.samples_per_ray
        assert slider.value == expected
        assert (slider.min, slider.max) == (MIN_SAMPLES_PER_RAY, MAX_SAMPLES_FACTOR * expected)


def test_the_slider_changes_the_viewers_renders_and_not_the_scored_ones(
    small_model: HyperNeRFGANModel, preset: DatasetPreset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The viewer renders through `get_outputs_for_camera`; the quality curve, ns-eval's scores and
    `hypernerfgan samples` through `render_latents`, which keeps the run's count while the slider is elsewhere."""
    model = small_model.eval()
    camera = a_view(preset)
    latents = model.latents_from_seeds([0])
    before_view = model.get_outputs_for_camera(camera)["rgb"]
    before_sample = model.render_latents(latents, camera)["rgb"]

    counts = samples_per_ray_queried(model, monkeypatch)
    change(model.render_controls.samples_per_ray, VIEWER_COUNT)
    viewed = model.get_outputs_for_camera(camera)["rgb"]
    sampled = model.render_latents(latents, camera)["rgb"]
    assert counts == [VIEWER_COUNT, 16], "the viewer at the slider's count, the samples at the run's"
    assert torch.equal(sampled, before_sample)
    assert not torch.equal(viewed, before_view) and (viewed - before_view).abs().mean() < 0.02, (
        "the same object, sampled finer"
    )


def test_the_slider_keeps_to_counts_that_render(small_model: HyperNeRFGANModel) -> None:
    slider = small_model.render_controls.samples_per_ray
    change(slider, 0)
    assert small_model.viewer_render_samples == MIN_SAMPLES_PER_RAY
    change(slider, 10_000)
    assert small_model.viewer_render_samples == MAX_SAMPLES_FACTOR * 16
    with pytest.raises(ConfigError, match="viewer_render_samples"):
        small_model.set_viewer_render_samples(1)


def test_the_viewers_count_is_not_saved(preset: DatasetPreset) -> None:
    """A checkpoint is rendered by ns-render and ns-eval at the run's count, whatever the viewer showed."""
    source = make_model(preset)
    change(source.render_controls.samples_per_ray, VIEWER_COUNT)
    state = source.state_dict()
    assert not any(key.startswith("render_controls") for key in state)
    loaded = make_model(preset)
    loaded.load_state_dict(state)
    assert loaded.viewer_render_samples is None and loaded.render_controls.samples_per_ray.value == 16


def test_a_copied_model_has_a_slider_of_its_own(small_model: HyperNeRFGANModel) -> None:
    copied = copy.deepcopy(small_model)
    change(copied.render_controls.samples_per_ray, VIEWER_COUNT)
    assert copied.viewer_render_samples == VIEWER_COUNT and small_model.viewer_render_samples is None
    assert list(copied.render_controls.children()) == [] and list(copied.render_controls.parameters()) == []
