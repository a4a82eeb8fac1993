"""Walking through the latent space of z ~ N(0, I), shared by the viewer's interpolation slider and the videos."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

PARALLEL_SINE_EPS = 1e-6
"""Below this sine of the angle between two latents, slerp divides by ~0; the directions are then blended linearly."""


def slerp(
    latent_a: Float[Tensor, "*batch dim"], latent_b: Float[Tensor, "*batch dim"], weight: float
) -> Float[Tensor, "*batch dim"]:
    """Spherical interpolation: the direction moves along the great circle, the norm linearly from |a| to |b|.

    Latents are drawn from N(0, I), whose mass lies on a thin shell of radius ~sqrt(dim); a straight line between two
    of them cuts through the shell's inside (norm ~0.71 sqrt(dim) half-way), where the generator never saw latents.
    Weight 0 returns `latent_a` and weight 1 `latent_b` exactly.
    """
    if weight <= 0.0:
        return latent_a.clone()
    if weight >= 1.0:
        return latent_b.clone()
    norm_a = latent_a.norm(dim=-1, keepdim=True)
    norm_b = latent_b.norm(dim=-1, keepdim=True)
    direction_a, direction_b = latent_a / norm_a, latent_b / norm_b
    cosine = (direction_a * direction_b).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)
    angle = torch.arccos(cosine)
    sine = torch.sin(angle)
    if bool((sine < PARALLEL_SINE_EPS).any()):
        direction = torch.lerp(direction_a, direction_b, weight)
        direction = direction / direction.norm(dim=-1, keepdim=True)
    else:
        direction = (torch.sin((1.0 - weight) * angle) * direction_a + torch.sin(weight * angle) * direction_b) / sine
    return direction * torch.lerp(norm_a, norm_b, weight)
