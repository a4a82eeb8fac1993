"""Evaluating a generator the way the papers do: FID, KID and SWD of EMA samples against the training images.

Protocol (StyleGAN's "fid<N>k_full"): N generated images, each a new latent rendered at full resolution by the EMA
generator from a camera drawn from the prior, with no density noise and no sampling jitter; against all training
images (or `max_real_images` of them, spread evenly over the set). Latents and cameras come from a seeded generator
of their own, so two evaluations of one checkpoint see the same samples. Metrics are registered by name in `METRICS`.

Every user of the protocol goes through the same two steps: summarise each image set once (`ImageSetSummary`: its
Inception features, and the images SWD needs), then `score` two summaries. `ns-eval`, the quality curve during
training (which summarises the training images once per run) and `hypernerfgan score` (a folder of samples
rendered elsewhere) all score this way.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from jaxtyping import Float
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor, nn

from hypernerfgan_ns.data.image_collection import ImageStore
from hypernerfgan_ns.metrics.feature_cache import cached_features, features_entry
from hypernerfgan_ns.metrics.inception import InceptionFeatureExtractor, find_inception_weights
from hypernerfgan_ns.metrics.swd import SWDConfig, sliced_wasserstein_distance
from hypernerfgan_ns.utils.config_compat import DefaultsForMissingFields
from nerfstudio.configs.base_config import PrintableConfig
from nerfstudio.utils.rich_utils import CONSOLE

UINT8_MAX = 255.0
"""Scale of the decoded training images."""

INCEPTION_METRICS = ("fid", "kid")
"""The metrics computed on Inception-v3 features, which need its weights on this machine."""


@dataclass
class GANEvaluationConfig(DefaultsForMissingFields, PrintableConfig):
    """How `ns-eval` scores a trained generator."""

    metrics: Tuple[str, ...] = ("fid", "kid", "swd")
    """Metrics to compute, by name: fid, kid (Inception features) and swd (no network)."""
    num_generated: int = 1000
    """Generated images; the papers report 1k, 5k or 50k (fid1k/fid5k/fid50k)."""
    max_real_images: Optional[int] = None
    """Training images compared against, spread evenly over the set; None: all of them (the "_full" protocols)."""
    truncation: float = 1.0
    """Truncation psi of the generated latents (1: untruncated, as the papers evaluate)."""
    kid_subset_size: int = 1000
    """Images per KID subset (reduced to the smaller image count when needed)."""
    kid_subsets: int = 100
    """Number of random KID subsets averaged."""
    batch_size: int = 32
    """Images per Inception forward pass."""
    inception_weights: Optional[Path] = None
    """TorchScript Inception weights (default_1.pt); None: look them up (see hypernerfgan_ns.metrics.inception)."""
    seed: int = 0
    """Seed of the evaluation's latents and cameras, and of KID's subsets."""
    cache_real_features: bool = True
    """Keep the training images' Inception features on disk (the cache folder, 8 KB per image) and reuse them in
    later runs, evaluations and scores of the same images with the same weights."""


def without_inception_metrics(config: GANEvaluationConfig) -> GANEvaluationConfig:
    """The same protocol with FID and KID left out, for a machine without Inception weights."""
    return dataclasses.replace(config, metrics=tuple(name for name in config.metrics if name not in INCEPTION_METRICS))


def num_real_images(store: ImageStore, config: GANEvaluationConfig) -> int:
    """Training images the protocol compares against: all of them, or `max_real_images`."""
    return store.num_images if config.max_real_images is None else min(config.max_real_images, store.num_images)


def spread_indices(num_images: int, count: int) -> List[int]:
    """`count` of `num_images` indices spread evenly over them, in order (all of them when `count` is `num_images`):
    a subset of a collection stored object by object (an SRN folder's 50 views per car, a zip by instance) holds
    views of all its objects, not of its first few."""
    return [index * num_images // count for index in range(count)]


class PrecomputedFeatures(nn.Module):
    """Hands torchmetrics features computed beforehand, so that FID and KID share one Inception pass."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


def inception_distances(
    real: Float[Tensor, "num_real features"], fake: Float[Tensor, "num_fake features"], config: GANEvaluationConfig
) -> Dict[str, float]:
    """FID and KID (mean and std over subsets) of two feature sets, through torchmetrics, in float64."""
    # Imported here: torchmetrics' image metrics take seconds to import, which every ns-train would pay.
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    features = PrecomputedFeatures(real.shape[1])
    results: Dict[str, float] = {}
    if "fid" in config.metrics:
        fid = FrechetInceptionDistance(feature=features).set_dtype(torch.float64)
        fid.update(real.double(), real=True)
        fid.update(fake.double(), real=False)
        results["fid"] = float(fid.compute())
    if "kid" in config.metrics:
        subset_size = min(config.kid_subset_size, len(real), len(fake))
        with warnings.catch_warnings():
            # torchmetrics warns that KID keeps every feature it is given: here they are already in memory.
            warnings.filterwarnings("ignore", message="Metric `Kernel Inception Distance`", category=UserWarning)
            kid = KernelInceptionDistance(feature=features, subsets=config.kid_subsets, subset_size=subset_size)
        kid.update(real.double(), real=True)
        kid.update(fake.double(), real=False)
        # KID draws its subsets with torch's global generator. Seeded, the same samples always score the same (during
        # training or in `hypernerfgan score-curve`), and a point scored during training leaves its random stream alone.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            mean, std = kid.compute()
        results["kid"], results["kid_std"] = float(mean), float(std)
    return results


def store_image_batches(
    store: ImageStore, indices: Sequence[int], batch_size: int
) -> Iterator[Float[Tensor, "batch 3 height width"]]:
    """The images of a store at `indices` in [0, 1], in batches."""
    for start in range(0, len(indices), batch_size):
        images = store.read(indices[start : start + batch_size])
        yield torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / UINT8_MAX


def generated_image_batches(pipeline, config: GANEvaluationConfig) -> Iterator[Float[Tensor, "batch 3 height width"]]:
    """EMA renders of new latents from prior cameras, full resolution, no noise or jitter, in [0, 1]."""
    model = pipeline.model
    prior = model.dataset_preset.camera_prior
    resolution = pipeline.config.datamanager.dataparser.resolution
    generator = torch.Generator().manual_seed(config.seed)
    for start in range(0, config.num_generated, config.batch_size):
        count = min(config.batch_size, config.num_generated - start)
        latents = torch.randn(count, model.config.latent_dim, generator=generator)
        cameras = prior.cameras(prior.sample_poses(count, generator), resolution)
        yield model.render_latents(latents, cameras, config.truncation)["rgb"].permute(0, 3, 1, 2).cpu()


METRICS: Dict[str, str] = {
    "fid": "Frechet Inception distance (Inception-v3 pool features)",
    "kid": "kernel Inception distance, x1, with its std over subsets",
    "swd": "sliced Wasserstein distance on Laplacian-pyramid patches x 1000 (no network)",
}
"""The metrics `GANEvaluationConfig.metrics` may name."""


def check_metric_names(config: GANEvaluationConfig) -> None:
    """Rejects unknown metric names before any work."""
    unknown = set(config.metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"Unknown metrics {sorted(unknown)}; known: {sorted(METRICS)}.")


def load_feature_extractor(config: GANEvaluationConfig, device: torch.device) -> Optional[InceptionFeatureExtractor]:
    """The Inception network if the protocol's metrics need it (raising with instructions when its weights are
    missing), else None."""
    if not set(INCEPTION_METRICS) & set(config.metrics):
        return None
    return InceptionFeatureExtractor(find_inception_weights(config.inception_weights)).to(device)


@dataclass
class ImageSetSummary:
    """What the metrics need to know of one image set; computed once per set, scored against any other."""

    count: int
    """Images in the set."""
    images: Optional[Float[Tensor, "kept 3 height width"]]
    """Images in [0, 1] on the CPU for SWD, which compares equally many: a generated set's first, a real set's spread
    evenly over it; None when SWD is not asked."""
    features: Optional[Float[Tensor, "count features"]]
    """Inception pool features of every image; None when FID and KID are not asked."""


def summarize_images(
    batches: Iterable[Float[Tensor, "batch 3 height width"]],
    total: int,
    description: str,
    config: GANEvaluationConfig,
    extractor: Optional[InceptionFeatureExtractor],
    device: torch.device,
    keep_images: Optional[int] = None,
) -> ImageSetSummary:
    """Runs the feature extractor (on `device`) over a set's batches and keeps the images SWD needs (at most
    `keep_images`)."""
    keep = total if keep_images is None else min(total, keep_images)
    images, features, count = [], [], 0
    columns = (TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=CONSOLE, transient=True) as progress:
        task = progress.add_task(description, total=total)
        for batch in batches:
            if "swd" in config.metrics and count < keep:
                images.append(batch[: keep - count].cpu())
            if extractor is not None:
                features.append(extractor(batch.to(device)).cpu())
            count += len(batch)
            progress.advance(task, len(batch))
    return ImageSetSummary(
        count=count,
        images=torch.cat(images) if images else None,
        features=torch.cat(features) if features else None,
    )


def score(
    real: ImageSetSummary,
    fake: ImageSetSummary,
    config: GANEvaluationConfig,
    swd_config: Optional[SWDConfig] = None,
) -> Dict[str, float]:
    """The protocol's metrics of generated images against real ones, with the sizes of both sets."""
    results: Dict[str, float] = {"num_generated": float(fake.count), "num_real": float(real.count)}
    if real.features is not None and fake.features is not None:
        results.update(inception_distances(real.features, fake.features, config))
    if "swd" in config.metrics and real.images is not None and fake.images is not None:
        count = min(len(real.images), len(fake.images))
        results["swd"] = sliced_wasserstein_distance(real.images[:count], fake.images[:count], swd_config)["swd"]
    return results


def summarize_real_images(
    store: ImageStore,
    count: int,
    description: str,
    config: GANEvaluationConfig,
    extractor: Optional[InceptionFeatureExtractor],
    device: torch.device,
    keep_images: Optional[int] = None,
) -> ImageSetSummary:
    """The summary of `count` images of a store spread evenly over it (`spread_indices`), with SWD's images (at most
    `keep_images`) spread evenly over those, and their Inception features from the disk cache when an earlier run,
    evaluation or score of the same images and weights computed them (`metrics.feature_cache`)."""
    indices = spread_indices(store.num_images, count)
    images = None
    if "swd" in config.metrics:
        keep = count if keep_images is None else min(count, keep_images)
        kept = [indices[index] for index in spread_indices(count, keep)]
        images = torch.cat(list(store_image_batches(store, kept, config.batch_size)))
    features = None
    if extractor is not None:

        def compute() -> Tensor:
            batches = store_image_batches(store, indices, config.batch_size)
            summary = summarize_images(batches, count, description, config, extractor, device, keep_images=0)
            assert summary.features is not None
            return summary.features

        if config.cache_real_features:
            features = cached_features(features_entry(store, count, extractor.weights, device), count, compute)
        else:
            features = compute()
    return ImageSetSummary(count=count, images=images, features=features)


def summarize_training_images(
    pipeline,
    config: GANEvaluationConfig,
    extractor: Optional[InceptionFeatureExtractor],
) -> ImageSetSummary:
    """The protocol's summary of the training images (all of them, or `max_real_images` spread over them)."""
    store = pipeline.datamanager.training_images()
    count = num_real_images(store, config)
    return summarize_real_images(
        store, count, "Training images", config, extractor, torch.device(pipeline.device), config.num_generated
    )


@torch.no_grad()
def evaluate_generator(
    pipeline,
    config: GANEvaluationConfig,
    swd_config: Optional[SWDConfig] = None,
    extractor: Optional[InceptionFeatureExtractor] = None,
    real: Optional[ImageSetSummary] = None,
    on_samples: Optional[Callable[[Float[Tensor, "batch 3 height width"]], None]] = None,
) -> Dict[str, float]:
    """Renders `num_generated` EMA samples and scores them against the training images.

    Args:
        pipeline: the trained pipeline.
        config: the protocol.
        swd_config: SWD settings.
        extractor: the Inception network, when the caller keeps one loaded; None: loaded here if needed.
        real: the training images' summary, when the caller keeps one; None: computed here.
        on_samples: called with each batch of samples (in [0, 1], on the CPU) as it is rendered, e.g. to keep them
            for scoring elsewhere.
    """
    check_metric_names(config)
    pipeline.eval()
    if extractor is None:
        extractor = load_feature_extractor(config, torch.device(pipeline.device))
    if real is None:
        real = summarize_training_images(pipeline, config, extractor)
    batches = generated_image_batches(pipeline, config)
    if on_samples is not None:
        batches = _passed_to(on_samples, batches)
    fake = summarize_images(
        batches, config.num_generated, "EMA samples", config, extractor, torch.device(pipeline.device)
    )
    return score(real, fake, config, swd_config)


def _passed_to(
    callback: Callable[[Float[Tensor, "batch 3 height width"]], None],
    batches: Iterable[Float[Tensor, "batch 3 height width"]],
) -> Iterator[Float[Tensor, "batch 3 height width"]]:
    """The batches, each handed to `callback` first."""
    for batch in batches:
        callback(batch)
        yield batch
