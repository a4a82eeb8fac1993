"""The viewer's object controls: each one changes the model's viewed object as a user's change in the viewer would."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import pytest
import torch

from hypernerfgan_ns.data.dataset_presets import DatasetPreset
from hypernerfgan_ns.models.hypernerfgan import HyperNeRFGANModel
from hypernerfgan_ns.utils.latents import slerp
from hypernerfgan_ns.viewer.object_controls import (
    RANDOM_SEED_LIMIT,
    SEED_B_OFFSET,
    ObjectViewerControls,
)
from nerfstudio.viewer.utils import parse_object
from nerfstudio.viewer.viewer_elements import ViewerElement
from tests.conftest import make_model
from tests.helpers import micro_config
from tests.viewer.user_actions import change, press

SEED_A = 3
"""Object A of the interpolation tests."""
SEED_B = 11
"""Object B of the interpolation tests."""
NORM_TOLERANCE = 0.15
"""Relative distance allowed between the slerp midpoint's norm and object A's: latents lie near the shell of radius
sqrt(128) ~ 11.3 (these two seeds' norms are 10.7 and 12.7)."""
LINEAR_MIDPOINT_SHRINK = 0.8
"""A straight-line midpoint of two near-orthogonal latents has ~0.71 of their norm; slerp's must stay above this."""


@pytest.fixture
def controls(small_model: HyperNeRFGANModel) -> ObjectViewerControls:
    return small_model.object_controls


def test_the_fields_start_from_the_models_viewed_object(preset: DatasetPreset) -> None:
    model = make_model(preset, viewed_seed=7, viewed_truncation=0.5)
    controls = model.object_controls
    assert controls.object_seed.value == 7
    assert controls.object_truncation.value == pytest.approx(0.5)
    assert controls.slerp_seed_b.value == 7 + SEED_B_OFFSET
    assert controls.slerp_weight.value == 0.0


def test_a_seed_shows_the_latent_of_that_seed(small_model: HyperNeRFGANModel, controls: ObjectViewerControls) -> None:
    change(controls.object_seed, 123)
    assert int(small_model.viewed_seed) == 123
    assert torch.equal(small_model.viewed_latent, small_model.latent_from_seed(123))


def test_new_object_draws_a_seed_shows_it_and_leaves_the_training_random_streams_alone(
    small_model: HyperNeRFGANModel, controls: ObjectViewerControls
) -> None:
    change(controls.slerp_weight, 0.5)
    torch_state, python_state = torch.get_rng_state(), random.getstate()
    seeds = []
    for _ in range(2):
        press(controls.object_seed_new)
        seed = controls.object_seed.value
        seeds.append(seed)
        assert 0 <= seed < RANDOM_SEED_LIMIT
        assert controls.slerp_weight.value == 0.0, "the new object is shown on its own, not half-way to B"
        assert int(small_model.viewed_seed) == seed
        assert torch.equal(small_model.viewed_latent, small_model.latent_from_seed(seed))
    assert seeds[0] != seeds[1]
    assert torch.equal(torch.get_rng_state(), torch_state) and random.getstate() == python_state


def test_truncation_is_stored_and_keeps_the_latent(
    small_model: HyperNeRFGANModel, controls: ObjectViewerControls
) -> None:
    latent = small_model.viewed_latent.clone()
    change(controls.object_truncation, 0.3)
    assert float(small_model.viewed_truncation) == pytest.approx(0.3)
    assert torch.equal(small_model.viewed_latent, latent)
    change(controls.object_truncation, 0.0)
    assert float(small_model.viewed_truncation) == 0.0


def test_interpolation_walks_from_a_to_b_on_the_sphere(
    small_model: HyperNeRFGANModel, controls: ObjectViewerControls
) -> None:
    latent_a, latent_b = small_model.latent_from_seed(SEED_A), small_model.latent_from_seed(SEED_B)
    change(controls.object_seed, SEED_A)
    change(controls.slerp_seed_b, SEED_B)

    change(controls.slerp_weight, 0.0)
    assert torch.equal(small_model.viewed_latent, latent_a)
    change(controls.slerp_weight, 1.0)
    assert torch.equal(small_model.viewed_latent, latent_b)
    assert int(small_model.viewed_seed) == SEED_A, "the stored seed stays object A's"

    change(controls.slerp_weight, 0.5)
    middle = small_model.viewed_latent
    assert torch.allclose(middle, slerp(latent_a, latent_b, 0.5))
    norm_a, norm_middle = latent_a.norm(), middle.norm()
    assert norm_middle == pytest.approx(float(norm_a + latent_b.norm()) / 2), "the norm moves linearly from A to B"
    assert abs(norm_middle - norm_a) / norm_a < NORM_TOLERANCE
    assert (latent_a + latent_b).norm() / 2 < LINEAR_MIDPOINT_SHRINK * norm_a, "the seeds' latents are far apart"
    cosine = torch.nn.functional.cosine_similarity
    assert torch.allclose(cosine(middle, latent_a), cosine(middle, latent_b)), "half-way along the great circle"


def test_every_change_keeps_the_other_settings(small_model: HyperNeRFGANModel, controls: ObjectViewerControls) -> None:
    change(controls.object_truncation, 0.4)
    change(controls.slerp_seed_b, SEED_B)
    change(controls.slerp_weight, 0.25)
    change(controls.object_seed, SEED_A)
    expected = slerp(small_model.latent_from_seed(SEED_A), small_model.latent_from_seed(SEED_B), 0.25)
    assert torch.allclose(small_model.viewed_latent, expected)
    assert float(small_model.viewed_truncation) == pytest.approx(0.4)


@pytest.mark.parametrize("images", ["present", "moved away"])
def test_the_viewer_finds_all_six_controls_on_a_pipeline(tmp_path: Path, images: str) -> None:
    """The viewer reads every attribute of the pipeline's parts; a run whose images moved away is shown too (its
    datamanager failed on reading them, and ns-viewer with it)."""
    config = micro_config(tmp_path)
    test_mode = "val"
    if images == "moved away":
        config.pipeline.datamanager.dataparser.data = tmp_path / "moved"
        test_mode = "test"
    pipeline = config.pipeline.setup(device="cpu", test_mode=test_mode)
    found = parse_object(pipeline, ViewerElement, "Custom Elements")
    names = [element.name for _, element in found]
    objects = ["Seed", "New object", "Truncation (psi)", "Seed B", "Interpolate A -> B"]
    assert names == objects + ["Samples per ray"], "in display order"
    folders = [path.rsplit("/", 1)[0] for path, _ in found]
    assert folders == ["Custom Elements/model/object_controls"] * 5 + ["Custom Elements/model/render_controls"]


def test_the_controls_add_no_module_cycle_and_no_state(small_model: HyperNeRFGANModel) -> None:
    controls = small_model.object_controls
    assert list(controls.children()) == [] and list(controls.parameters()) == []
    assert sum(module is small_model for module in small_model.modules()) == 1
    assert not any(key.startswith("object_controls") for key in small_model.state_dict())


def test_a_state_dict_round_trip_keeps_the_viewed_object_and_the_fields(preset: DatasetPreset) -> None:
    source = make_model(preset)
    change(source.object_controls.object_seed, 42)
    change(source.object_controls.object_truncation, 0.6)
    state = source.state_dict()

    loaded = make_model(preset)
    loaded.load_state_dict(state)
    for name in ("viewed_latent", "viewed_seed", "viewed_truncation"):
        assert torch.equal(loaded.get_buffer(name), source.get_buffer(name)), name
    assert loaded.object_controls.object_seed.value == 42, "the fields show the loaded object"
    assert loaded.object_controls.object_truncation.value == pytest.approx(0.6)
    assert loaded.object_controls.slerp_seed_b.value == 42 + SEED_B_OFFSET


def test_a_copied_model_has_controls_of_its_own(small_model: HyperNeRFGANModel) -> None:
    copied = copy.deepcopy(small_model)
    change(copied.object_controls.object_seed, 99)
    assert int(copied.viewed_seed) == 99
    assert int(small_model.viewed_seed) != 99
