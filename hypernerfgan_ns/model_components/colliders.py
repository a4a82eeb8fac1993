"""Near and far distances for rays of cameras anywhere around the object.

Training cameras sit at the camera prior's radius R and render between `near` and `far`. A viewer camera may be
closer or further; fixed near/far distances would then cut the object or sample empty space. This collider keeps
the shell the training cameras saw: near = d - (R - near), far = d + (far - R), with d the camera's distance to
the origin. At d = R it reproduces training exactly.
"""

from __future__ import annotations

import torch

from nerfstudio.cameras.rays import RayBundle
from nerfstudio.model_components.scene_colliders import SceneCollider

MIN_NEAR = 1e-3
"""Smallest near distance, for cameras inside the object's shell."""


class ObjectShellCollider(SceneCollider):
    """Sets nears/fars relative to each ray origin's distance from the world origin (kept if already set).

    Args:
        radius: the camera prior's radius.
        near: the camera prior's near distance (for a camera at `radius`).
        far: the camera prior's far distance (for a camera at `radius`).
    """

    def __init__(self, radius: float, near: float, far: float) -> None:
        super().__init__()
        self.near_offset = radius - near
        self.far_offset = far - radius

    def set_nears_and_fars(self, ray_bundle: RayBundle) -> RayBundle:
        distance = torch.linalg.vector_norm(ray_bundle.origins, dim=-1, keepdim=True)
        fars = distance + self.far_offset
        ray_bundle.nears = torch.clamp(distance - self.near_offset, min=MIN_NEAR)
        ray_bundle.fars = torch.maximum(fars, ray_bundle.nears + MIN_NEAR)
        return ray_bundle
