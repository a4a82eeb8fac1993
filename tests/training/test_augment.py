"""Tests of the discriminator's differentiable augmentations and of the adaptive probability p (ADA)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, List

import pytest
import torch
import torch.nn.functional as F

from hypernerfgan_ns.training.augment import CUTOUT_FILL, AdaptiveAugment, AugmentConfig

OFF = dict(xflip=0.0, translation=0.0, cutout=0.0, color=0.0)
"""Every multiplier at zero; tests switch on the one they exercise."""


def make(**overrides) -> AdaptiveAugment:
    """An augmentation module with `initial_p=1` and the given config fields."""
    return AugmentConfig(**{"initial_p": 1.0, **overrides}).setup()


def random_images(batch: int = 8, size: int = 16, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=generator) * 2 - 1


# ---------------------------------------------------------------------------------------------------------------------
# Identity and shapes.


def test_p_zero_returns_input_unchanged():
    images = random_images()
    augment = AugmentConfig().setup()  # initial_p = 0 with every augmentation on
    torch.manual_seed(0)
    assert torch.equal(augment(images), images)


def test_all_multipliers_zero_returns_input_unchanged():
    images = random_images()
    torch.manual_seed(0)
    assert torch.equal(make(**OFF)(images), images)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_full_augmentation_keeps_shape_and_dtype_and_changes_values(dtype):
    images = random_images(size=20).to(dtype)
    torch.manual_seed(0)
    out = make()(images)
    assert out.shape == images.shape
    assert out.dtype == dtype
    assert not torch.equal(out, images)


# ---------------------------------------------------------------------------------------------------------------------
# Individual augmentations.


@pytest.mark.parametrize("p, mirrored", [(1.0, 0.5), (0.5, 0.25)])
def test_xflip_mirrors_with_half_of_p_as_stylegan2_ada(p: float, mirrored: float):
    """At most half the images: a distribution and its mirror image must not augment into the same one."""
    images = random_images(batch=4000, size=4)
    torch.manual_seed(0)
    out = make(**{**OFF, "xflip": 1.0}, initial_p=p)(images)
    flipped = (out == images.flip(-1)).flatten(1).all(1)
    unchanged = (out == images).flatten(1).all(1)
    assert bool((flipped ^ unchanged).all()), "every image is either flipped or untouched"
    assert abs(flipped.float().mean().item() - mirrored) < 0.04


def test_translation_is_an_integer_shift_with_replicated_edges():
    size, fraction = 16, 0.25
    largest = round(fraction * size)
    images = random_images(batch=32, size=size)
    torch.manual_seed(0)
    out = make(**{**OFF, "translation": 1.0}, translation_fraction=fraction)(images)
    padded = F.pad(images, (largest,) * 4, mode="replicate")
    shifts_seen = set()
    for index in range(images.shape[0]):
        matches = [
            (dy, dx)
            for dy in range(-largest, largest + 1)
            for dx in range(-largest, largest + 1)
            if torch.equal(
                out[index],
                padded[index, :, largest - dy : largest - dy + size, largest - dx : largest - dx + size],
            )
        ]
        assert matches, f"image {index} is not an edge-replicating shift of at most {largest} pixels"
        shifts_seen.add(matches[0])
    assert len(shifts_seen) > 5, "the shifts should vary from image to image"


def test_translation_keeps_a_white_image_white_and_never_fills_grey():
    torch.manual_seed(0)
    augment = make(**{**OFF, "translation": 1.0}, translation_fraction=0.5)
    white = torch.ones(16, 3, 12, 12)
    assert torch.equal(augment(white), white)
    framed = -torch.ones(16, 3, 12, 12)  # dark interior inside a one-pixel bright frame
    framed[..., 0, :] = framed[..., -1, :] = framed[..., :, 0] = framed[..., :, -1] = 1.0
    out = augment(framed)
    assert not torch.equal(out, framed)
    assert bool(((out == 1.0) | (out == -1.0)).all()), "no grey or zero fill may appear"


def test_cutout_fills_one_clipped_square_with_grey():
    size, fraction, batch = 16, 0.5, 2000
    side = round(fraction * size)
    torch.manual_seed(0)
    out = make(**{**OFF, "cutout": 1.0}, cutout_fraction=fraction)(torch.ones(batch, 3, size, size))
    assert bool(((out == 1.0) | (out == CUTOUT_FILL)).all()), "pixels outside the hole are untouched"
    hole = out[:, 0] == CUTOUT_FILL
    assert torch.equal(hole.unsqueeze(1).expand_as(out), out == CUTOUT_FILL), "the hole covers every channel"
    rows, cols = hole.any(2), hole.any(1)
    assert torch.equal(hole, rows[:, :, None] & cols[:, None, :]), "every hole is an axis-aligned rectangle"
    heights, widths = rows.sum(1), cols.sum(1)
    assert int(heights.max()) == side and int(widths.max()) == side
    assert int(heights.min()) >= side - side // 2, "clipping leaves at least half the hole"
    # The centre is uniform over the patch: the mean area is the product of the mean clipped extents.
    extents = [min(centre - side // 2 + side, size) - max(centre - side // 2, 0) for centre in range(size)]
    expected_area = (sum(extents) / size) ** 2
    assert abs(hole.float().sum((1, 2)).mean().item() / expected_area - 1) < 0.03
    assert bool((hole.sum((1, 2)) == side * side).any()), "holes away from the border have the full area"


def test_color_changes_values_but_not_shape():
    images = random_images()
    torch.manual_seed(0)
    out = make(**{**OFF, "color": 1.0})(images)
    assert out.shape == images.shape
    assert not torch.equal(out, images)


def test_brightness_adds_one_offset_per_image():
    images = random_images()
    torch.manual_seed(0)
    out = make(**{**OFF, "color": 1.0}, saturation_std=0.0, contrast_std=0.0)(images)
    offset = (out - images).flatten(1)
    assert torch.allclose(offset, offset[:, :1].expand_as(offset), atol=1e-6)
    assert offset[:, 0].abs().min() > 0


def test_saturation_keeps_grey_values_and_contrast_keeps_image_means():
    images = random_images()
    torch.manual_seed(0)
    saturated = make(**{**OFF, "color": 1.0}, brightness_std=0.0, contrast_std=0.0)(images)
    assert not torch.equal(saturated, images)
    assert torch.allclose(saturated.mean(1), images.mean(1), atol=1e-5)
    contrasted = make(**{**OFF, "color": 1.0}, brightness_std=0.0, saturation_std=0.0)(images)
    assert not torch.equal(contrasted, images)
    assert torch.allclose(contrasted.mean((1, 2, 3)), images.mean((1, 2, 3)), atol=1e-5)


def test_color_multiplier_zero_changes_nothing():
    images = random_images()
    torch.manual_seed(0)
    assert torch.equal(make(**{**OFF, "color": 0.0})(images), images)


# ---------------------------------------------------------------------------------------------------------------------
# Gradients and randomness.


def test_gradients_reach_the_input():
    images = random_images(size=20).requires_grad_(True)
    torch.manual_seed(0)
    out = make()(images)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    assert images.grad is not None
    assert bool(torch.isfinite(images.grad).all())
    assert images.grad.abs().sum() > 0
    images.grad = None
    make()(images).sum().backward()
    assert bool(torch.isfinite(images.grad).all()) and images.grad.abs().sum() > 0


def test_same_seed_gives_same_output():
    images = random_images(size=20)
    augment = make(initial_p=0.7)
    torch.manual_seed(123)
    first = augment(images)
    torch.manual_seed(123)
    second = augment(images)
    torch.manual_seed(124)
    third = augment(images)
    assert torch.equal(first, second)
    assert not torch.equal(first, third)


def test_a_batch_that_drew_no_transform_is_returned_itself():
    """At a small p, as early in training, most batches draw nothing: they cost the device no operation at all."""
    images = random_images(batch=4)
    torch.manual_seed(0)
    assert make(initial_p=1e-6)(images) is images


def every_transform_applied(augment: AdaptiveAugment, images: torch.Tensor):
    """What `augment(images)` computes without skipping a transform that no image drew (with the same draws: a
    transform applied to no image draws its parameters from a copy of the generator), and which transforms some
    image drew."""
    transforms = augment.transforms()
    probabilities = torch.tensor([augment.host_values()[0] * rate for rate, _ in transforms])
    chosen = torch.rand(len(transforms), images.shape[0]) < probabilities[:, None]
    for (_, transform), chosen_images in zip(transforms, chosen):
        with torch.random.fork_rng(devices=[], enabled=not chosen_images.any()):
            images = transform(images, chosen_images)
    return images, chosen.any(dim=1)


def test_skipping_the_transforms_that_no_image_drew_changes_no_image_and_no_gradient():
    images = random_images(batch=4, size=12)
    augment = make(initial_p=0.15)
    skipped, applied = 0, 0
    for seed in range(12):
        results = []
        for run in (augment, lambda x: every_transform_applied(augment, x)[0]):
            inputs = images.clone().requires_grad_(True)
            torch.manual_seed(seed)
            out = run(inputs)
            (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
            results.append((out.detach(), inputs.grad))
        torch.manual_seed(seed)
        drawn = every_transform_applied(augment, images)[1]
        skipped, applied = skipped + int((~drawn).sum()), applied + int(drawn.sum())
        assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1]), seed
    assert skipped > 0 and applied > 0, "the seeds exercise both kinds of transform"


# ---------------------------------------------------------------------------------------------------------------------
# Adaptive p.

BATCH = 8
INTERVAL = 4
ADJUSTMENT = 1000


def ada(**overrides) -> AdaptiveAugment:
    fields = dict(initial_p=0.0, update_interval=INTERVAL, adjustment_images=ADJUSTMENT, target=0.6)
    return AugmentConfig(**{**fields, **overrides}).setup()


def run_steps(augment: AdaptiveAugment, logits: torch.Tensor, steps: range) -> list:
    p_after = []
    for step in steps:
        augment.accumulate(logits)
        augment.update(step, BATCH)
        p_after.append(float(augment.p))
    return p_after


def test_overfitting_raises_p_by_one_interval_of_images():
    augment = ada()
    p_after = run_steps(augment, torch.ones(BATCH, 1), range(INTERVAL))
    assert p_after[:-1] == [0.0] * (INTERVAL - 1), "p only moves at the end of an interval"
    assert p_after[-1] == pytest.approx(BATCH * INTERVAL / ADJUSTMENT)
    assert augment.r_t == 1.0
    assert augment.stats() == {"augment_p": pytest.approx(BATCH * INTERVAL / ADJUSTMENT), "augment_rt": 1.0}
    assert float(augment.sign_count) == 0.0, "the statistic is reset after an update"
    run_steps(augment, torch.ones(BATCH, 1), range(INTERVAL, 2 * INTERVAL))
    assert float(augment.p) == pytest.approx(2 * BATCH * INTERVAL / ADJUSTMENT)


def test_underfitting_keeps_p_clamped_at_zero_and_overfitting_at_max():
    augment = ada()
    run_steps(augment, -torch.ones(BATCH, 1), range(3 * INTERVAL))
    assert float(augment.p) == 0.0
    assert augment.r_t == -1.0
    saturated = ada(initial_p=0.99, max_p=1.0)
    run_steps(saturated, torch.ones(BATCH, 1), range(INTERVAL))
    assert float(saturated.p) == 1.0


def test_r_t_equal_to_target_leaves_p_alone():
    augment = ada(initial_p=0.5, target=0.5)
    logits = torch.tensor([[1.0], [1.0], [1.0], [-1.0]])  # mean sign 0.5
    run_steps(augment, logits, range(INTERVAL))
    assert augment.r_t == 0.5 and float(augment.p) == 0.5


def test_non_adaptive_p_never_changes():
    augment = ada(adaptive=False, initial_p=0.3)
    run_steps(augment, torch.ones(BATCH, 1), range(5 * INTERVAL))
    assert float(augment.p) == pytest.approx(0.3)
    assert augment.r_t == 1.0, "r_t is still computed for logging"


def test_state_dict_holds_p_and_statistic_and_resume_continues_exactly():
    logits = torch.tensor([[2.0], [-1.0], [3.0], [0.5], [0.2], [1.0], [4.0], [3.0]])  # r_t = 0.75
    uninterrupted = ada()
    run_steps(uninterrupted, logits, range(3 * INTERVAL + 2))
    state = uninterrupted.state_dict()
    assert {"p", "sign_sum", "sign_count", "last_r_t"} <= set(state)
    assert float(state["p"]) > 0 and float(state["sign_count"]) == 2 * BATCH, "mid-interval statistic is saved"

    resumed = ada()
    resumed.load_state_dict(state)
    assert float(resumed.p) == float(uninterrupted.p)
    run_steps(uninterrupted, logits, range(3 * INTERVAL + 2, 5 * INTERVAL))
    run_steps(resumed, logits, range(3 * INTERVAL + 2, 5 * INTERVAL))
    assert float(resumed.p) == float(uninterrupted.p)
    assert resumed.r_t == uninterrupted.r_t


@pytest.fixture
def host_reads(monkeypatch) -> List[str]:
    """The tensor methods called while the test runs that hand a tensor's values to the host: on a GPU, each waits
    for the device's queued work."""
    reads: List[str] = []
    for name in ("tolist", "item", "cpu", "numpy", "__float__", "__int__", "__bool__"):
        original = getattr(torch.Tensor, name)

        def read(tensor: torch.Tensor, *args: Any, original: Callable = original, name: str = name, **kwargs: Any):
            reads.append(name)
            return original(tensor, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, read)
    return reads


def test_an_update_reads_the_device_once_and_the_batches_after_it_not_at_all(host_reads: List[str]) -> None:
    """p and r_t move as the buffers' float32 arithmetic on the device moved them (to the bit), from one transfer per
    update; the batches, `r_t` and the logged stats until the next update use the host's copy (a batch's only read
    is of its own draws, made on the host)."""
    augment, p = ada(initial_p=0.001), torch.tensor(0.001)
    for interval, signs in enumerate(([1, 1, 1, -1], [1, -1, 1, -1], [1, 1, 1, 1], [-1, -1, -1, 1], [1, 1, -1, 1])):
        logits = torch.tensor(signs * 2, dtype=torch.float32)[:, None]
        for step in range(interval * INTERVAL, (interval + 1) * INTERVAL):
            augment.accumulate(logits)
            del host_reads[:]
            augment.update(step, BATCH)
            assert len(host_reads) == (step % INTERVAL == INTERVAL - 1), f"step {step}: {host_reads}"
        del host_reads[:]
        values = (augment.host_values(), augment.r_t, augment.stats())  # the batches' p is `host_values()[0]`
        assert host_reads == [], "nothing read between updates"
        r_t = torch.tensor(float(sum(signs) * 2)) / torch.tensor(float(len(signs) * 2))  # the update as on the device
        p = (p + torch.sign(r_t - 0.6) * (BATCH * INTERVAL) / ADJUSTMENT).clamp(0.0, 1.0)
        assert values == ((p.item(), r_t.item()), r_t.item(), {"augment_p": p.item(), "augment_rt": r_t.item()})
        assert augment.p.item() == p.item() and augment.last_r_t.item() == r_t.item(), "the device's buffers too"


def test_update_under_torch_distributed(tmp_path):
    """A one-process gloo group exercises the all-reduce path; p moves by batch * world * interval images."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        augment = ada()
        run_steps(augment, torch.ones(BATCH, 1), range(INTERVAL))
        assert float(augment.p) == pytest.approx(BATCH * INTERVAL / ADJUSTMENT)
    finally:
        torch.distributed.destroy_process_group()


# ---------------------------------------------------------------------------------------------------------------------
# Config.


def test_setup_builds_the_module_with_p_buffer():
    augment = AugmentConfig(initial_p=0.25).setup()
    assert isinstance(augment, AdaptiveAugment)
    assert float(augment.p) == 0.25 and augment.p.dim() == 0
    assert augment.stats() == {"augment_p": 0.25, "augment_rt": 0.0}


@pytest.mark.parametrize(
    "overrides",
    [
        {"xflip": -1.0},
        {"translation_fraction": 1.5},
        {"cutout_fraction": -0.1},
        {"initial_p": 0.8, "max_p": 0.5},
        {"target": 1.0},
        {"update_interval": 0},
        {"adjustment_images": 0},
    ],
)
def test_invalid_config_is_rejected(overrides):
    with pytest.raises(ValueError):
        AugmentConfig(**overrides)


def test_every_config_field_has_a_docstring():
    """tyro turns the field docstrings into command-line help."""
    import inspect

    source = inspect.getsource(AugmentConfig)
    for config_field in dataclasses.fields(AugmentConfig):
        marker = f"    {config_field.name}:"
        start = source.index(marker)
        following = source[start:].splitlines()[1].strip()
        assert following.startswith('"""'), f"{config_field.name} has no docstring"
