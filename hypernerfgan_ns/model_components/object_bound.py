"""Which samples can have density: the points inside the object sphere, where the density bound allows it.

The target field's density is zero outside the object sphere (`TargetField.object_radius`) whatever its MLP computes,
and compositing weighs a sample's colour by its density, so the MLP only needs to run at samples inside the sphere.
Seen from a prior camera the sphere fills 40% of the frame and two thirds of the depth range there: about a quarter
of a full view's samples.

Outside training, renders query the sphere's samples exactly (counting them makes the host wait for the device,
which does not matter there). Training may not wait: its batches have a fixed number of queried samples per object
(`HyperNeRFGANModel.training_query_capacity`), the most any training patch can hold, computed once from the geometry
every training camera shares (at the prior's radius, looking at the origin, so that the sphere's image and each ray's
chord through it are the same in every pose) and each sample's stratification interval.
"""

from __future__ import annotations

from typing import Tuple

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

CAPACITY_MARGIN = 1e-3
"""Relative margin of the sphere in the capacity's count: larger than the selection's (`BOUND_MARGIN`), so that no
rounding of a sample's position can select more samples than the capacity holds."""


def points_inside_first(inside: Bool[Tensor, "objects points"]) -> Int[Tensor, "objects points"]:
    """Each object's point indices with its points inside the sphere first, each part in its original order."""
    return torch.argsort(~inside, dim=1, stable=True)


def bins_meeting_sphere(
    directions: Float[Tensor, "pixels 3"],
    camera_distance: float,
    near: float,
    far: float,
    fraction_ranges: Tuple[Float[Tensor, "samples"], Float[Tensor, "samples"]],
    sphere_radius: float,
) -> Int[Tensor, "pixels"]:
    """How many samples of each pixel's ray can lie in the sphere around the origin, for a camera at
    `camera_distance` looking at the origin (camera-space unit `directions`, the camera looking down -z).

    Sample i lies at near + (far - near) * f with f in `fraction_ranges[0][i]`..`fraction_ranges[1][i]`; it can be in
    the sphere when the closest point of that segment to the centre is (with `CAPACITY_MARGIN`)."""
    lower, upper = fraction_ranges
    centre = torch.tensor([0.0, 0.0, -camera_distance], dtype=torch.float64)
    directions = directions.double()
    closest = directions @ centre  # distance along each ray to the point nearest the centre
    start = near + (far - near) * lower.double()
    end = near + (far - near) * upper.double()
    distance = torch.minimum(torch.maximum(closest[:, None], start), end)  # [pixels, samples]
    points = directions[:, None, :] * distance[..., None]
    return (torch.linalg.vector_norm(points - centre, dim=-1) <= sphere_radius * (1 + CAPACITY_MARGIN)).sum(1)


def most_in_a_patch(counts: Int[Tensor, "height width"], patch: int, stride: int = 1) -> int:
    """The largest sum of `counts` over any patch x patch square of the grid, or, with `stride` s, over any patch x
    patch lattice of its pixels s apart (a square of one of the s x s grids of every s-th pixel)."""
    if stride > 1:
        phases = [counts[row::stride, column::stride] for row in range(stride) for column in range(stride)]
        return max(most_in_a_patch(phase, patch) for phase in phases if min(phase.shape) >= patch)
    table = torch.nn.functional.pad(counts.long().cumsum(0).cumsum(1), (1, 0, 1, 0))
    sums = table[patch:, patch:] - table[:-patch, patch:] - table[patch:, :-patch] + table[:-patch, :-patch]
    return int(sums.max())
