"""Analytic ray casting against a few solid primitives: enough to build toy cars, chairs and planes.

Every primitive is a convex solid, so a ray meets it in a single interval [t_enter, t_exit] and the visible point is
where the ray enters. The normal there is the solid's outward normal, a property of the surface point alone: shading
that only uses it looks the same from every view, which is what the GAN (whose field has no view direction) needs.

Primitives of one kind are intersected together as a batch (one tensor row per primitive), and normals are only
computed for the primitive each ray sees first. Rays are assumed to start outside every solid (cameras do).
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Callable, Iterator, List, NamedTuple, Sequence, Tuple, TypeVar, Union

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

MIN_HIT_DISTANCE = 1e-6
"""Hits closer to the ray origin than this are ignored (the ray starts on or inside the solid)."""
PARALLEL_EPSILON = 1e-12
"""A squared direction component below this counts as parallel to a cylinder's axis or a plane."""
CONVEXITY_TOLERANCE = 1e-5
"""How far a prism's corner may lie outside its own planes before the profile is rejected as not convex."""
PADDING_PLANE_OFFSET = 1.0
"""Offset of the do-nothing planes (zero normal) that pad polyhedra to a common plane count: 0 <= 1 always holds."""

ReturnType = TypeVar("ReturnType")
"""Return type of a function wrapped by `single_threaded`."""

Vector = Union[Sequence[float], Tensor]
"""A 3-vector given as a tensor or a plain sequence of floats."""


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Runs the block with torch on one thread, then restores the previous thread count.

    Ray casting works on tensors of some 10^5 elements, which threads barely speed up; on a machine whose cores are
    busy, OpenMP threads waiting for each other made it tens of times slower (measured on 2 cores).
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def single_threaded(function: Callable[..., ReturnType]) -> Callable[..., ReturnType]:
    """Decorator: the function runs inside `one_torch_thread`."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs) -> ReturnType:
        with one_torch_thread():
            return function(*args, **kwargs)

    return wrapper


def as_vector(value: Vector) -> Float[Tensor, "3"]:
    """A float32 3-vector tensor."""
    return torch.as_tensor(value, dtype=torch.float32).reshape(3)


@dataclass(frozen=True)
class ConvexPolyhedron:
    """A convex solid bounded by planes: boxes, bevelled car bodies, tapered wings, windscreens."""

    normals: Float[Tensor, "num_planes 3"]
    """Outward unit normals of the bounding planes."""
    offsets: Float[Tensor, "num_planes"]
    """A point x is inside when `normals @ x <= offsets` holds for every plane."""
    vertices: Float[Tensor, "num_vertices 3"]
    """Corners of the solid, for bounds and tests."""
    colour: Float[Tensor, "3"]
    """Albedo, RGB in [0, 1]."""

    def transformed(self, scale: float, offset: Float[Tensor, "3"]) -> "ConvexPolyhedron":
        """The solid mapped by x -> scale * x + offset."""
        return ConvexPolyhedron(
            self.normals, scale * self.offsets + self.normals @ offset, scale * self.vertices + offset, self.colour
        )

    def bounds(self) -> Tuple[Float[Tensor, "3"], Float[Tensor, "3"]]:
        """Axis-aligned bounding box (minimum corner, maximum corner)."""
        return self.vertices.amin(dim=0), self.vertices.amax(dim=0)

    def bounding_radius(self) -> float:
        """Largest distance of the solid from the origin (exact: attained at a corner)."""
        return float(self.vertices.norm(dim=-1).max())

    def bounding_sphere(self) -> Tuple[Float[Tensor, "3"], float]:
        """A sphere (centre, radius) containing the solid, for culling rays that cannot hit it."""
        centre = self.vertices.mean(dim=0)
        return centre, float((self.vertices - centre).norm(dim=-1).max())


@dataclass(frozen=True)
class Cylinder:
    """A capped circular cylinder: wheels, legs, fuselages, engine nacelles."""

    centre: Float[Tensor, "3"]
    """Middle of the axis."""
    axis: Float[Tensor, "3"]
    """Unit vector along the axis."""
    radius: float
    """Radius of the circular cross-section."""
    half_length: float
    """Half the distance between the two caps."""
    colour: Float[Tensor, "3"]
    """Albedo, RGB in [0, 1]."""

    def transformed(self, scale: float, offset: Float[Tensor, "3"]) -> "Cylinder":
        """The solid mapped by x -> scale * x + offset."""
        return Cylinder(
            scale * self.centre + offset, self.axis, scale * self.radius, scale * self.half_length, self.colour
        )

    def bounds(self) -> Tuple[Float[Tensor, "3"], Float[Tensor, "3"]]:
        """Axis-aligned bounding box (minimum corner, maximum corner)."""
        extent = self.half_length * self.axis.abs() + self.radius * (1.0 - self.axis**2).clamp(min=0.0).sqrt()
        return self.centre - extent, self.centre + extent

    def bounding_radius(self) -> float:
        """Largest distance of the solid from the origin (exact: attained on a cap's rim).

        For a cap centre e, the rim points are e + r u with u a unit vector perpendicular to the axis, and
        |e + r u|^2 = |e|^2 + r^2 + 2 r (e . u) is largest when u points along e's part perpendicular to the axis.
        """
        radii = []
        for sign in (-1.0, 1.0):
            end = self.centre + sign * self.half_length * self.axis
            perpendicular = end - (end @ self.axis) * self.axis
            radii.append(float(end @ end + self.radius**2 + 2.0 * self.radius * perpendicular.norm()) ** 0.5)
        return max(radii)

    def bounding_sphere(self) -> Tuple[Float[Tensor, "3"], float]:
        """A sphere (centre, radius) containing the solid, for culling rays that cannot hit it."""
        return self.centre, (self.radius**2 + self.half_length**2) ** 0.5


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid: car cabins, noses and tail cones of fuselages, cockpit canopies."""

    centre: Float[Tensor, "3"]
    """Centre of the ellipsoid."""
    rotation: Float[Tensor, "3 3"]
    """Columns are the unit directions of the three semi-axes."""
    semi_axes: Float[Tensor, "3"]
    """Lengths of the semi-axes along the rotation's columns."""
    colour: Float[Tensor, "3"]
    """Albedo, RGB in [0, 1]."""

    def transformed(self, scale: float, offset: Float[Tensor, "3"]) -> "Ellipsoid":
        """The solid mapped by x -> scale * x + offset."""
        return Ellipsoid(scale * self.centre + offset, self.rotation, scale * self.semi_axes, self.colour)

    def bounds(self) -> Tuple[Float[Tensor, "3"], Float[Tensor, "3"]]:
        """Axis-aligned bounding box (minimum corner, maximum corner), exact."""
        extent = ((self.rotation * self.semi_axes) ** 2).sum(dim=1).sqrt()
        return self.centre - extent, self.centre + extent

    def bounding_radius(self) -> float:
        """An upper bound of the solid's largest distance from the origin (|centre| + longest semi-axis)."""
        return float(self.centre.norm() + self.semi_axes.max())

    def bounding_sphere(self) -> Tuple[Float[Tensor, "3"], float]:
        """A sphere (centre, radius) containing the solid, for culling rays that cannot hit it."""
        return self.centre, float(self.semi_axes.max())


Primitive = Union[ConvexPolyhedron, Cylinder, Ellipsoid]
"""Any solid the ray caster knows."""
Scene = List[Primitive]
"""An object: the union of its primitives."""


def box(
    centre: Vector, half_extents: Vector, colour: Vector, rotation: Float[Tensor, "3 3"] | None = None
) -> ConvexPolyhedron:
    """An oriented box; `rotation`'s columns are the box's axes in the world (identity: axis-aligned)."""
    half = as_vector(half_extents)
    profile = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]) * half[:2]
    return prism(profile, float(half[2]), colour, centre=centre, axes=rotation)


def prism(
    profile: Float[Tensor, "num_corners 2"],
    half_thickness: float,
    colour: Vector,
    centre: Vector = (0.0, 0.0, 0.0),
    axes: Float[Tensor, "3 3"] | None = None,
) -> ConvexPolyhedron:
    """A convex polygon extruded by +-`half_thickness`: a car's side profile, a wing's planform.

    The polygon's 2D coordinates run along `axes[:, 0]` and `axes[:, 1]` (columns; identity by default, i.e. the
    polygon lies in the xy plane) from `centre`, and the extrusion runs along `axes[:, 2]`. Corners may be listed
    in either winding order.
    """
    profile = torch.as_tensor(profile, dtype=torch.float32)
    axes = torch.eye(3) if axes is None else torch.as_tensor(axes, dtype=torch.float32)
    centre = as_vector(centre)
    u, v, w = axes[:, 0], axes[:, 1], axes[:, 2]
    middle = profile.mean(dim=0)
    edges = profile.roll(-1, dims=0) - profile
    normals_2d = torch.stack([edges[:, 1], -edges[:, 0]], dim=-1)
    outward = ((profile - middle) * normals_2d).sum(dim=-1) < 0
    normals_2d = torch.where(outward[:, None], -normals_2d, normals_2d)
    normals_2d = normals_2d / normals_2d.norm(dim=-1, keepdim=True)
    offsets_2d = (normals_2d * profile).sum(dim=-1)
    side_normals = normals_2d[:, :1] * u + normals_2d[:, 1:] * v
    normals = torch.cat([side_normals, w[None], -w[None]])
    offsets = torch.cat([offsets_2d, torch.tensor([half_thickness, half_thickness])]) + normals @ centre
    corners_2d = centre + profile[:, :1] * u + profile[:, 1:] * v
    vertices = torch.cat([corners_2d + half_thickness * w, corners_2d - half_thickness * w])
    if (vertices @ normals.T - offsets).max() > CONVEXITY_TOLERANCE:
        raise ValueError("A prism's profile must be a convex polygon.")
    return ConvexPolyhedron(normals, offsets, vertices, as_vector(colour))


def cylinder(centre: Vector, axis: Vector, radius: float, half_length: float, colour: Vector) -> Cylinder:
    """A capped cylinder around `axis` (need not be normalised)."""
    axis = as_vector(axis)
    return Cylinder(as_vector(centre), axis / axis.norm(), float(radius), float(half_length), as_vector(colour))


def ellipsoid(
    centre: Vector, semi_axes: Vector, colour: Vector, rotation: Float[Tensor, "3 3"] | None = None
) -> Ellipsoid:
    """An ellipsoid whose semi-axes run along `rotation`'s columns (identity: the world axes)."""
    rotation = torch.eye(3) if rotation is None else torch.as_tensor(rotation, dtype=torch.float32)
    return Ellipsoid(as_vector(centre), rotation, as_vector(semi_axes), as_vector(colour))


def rotation_about(axis: Vector, angle: float) -> Float[Tensor, "3 3"]:
    """Rotation matrix by `angle` radians about `axis` (right-handed)."""
    axis = as_vector(axis)
    x, y, z = (axis / axis.norm()).tolist()
    cross = torch.tensor([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    angle_t = torch.tensor(float(angle))
    return torch.eye(3) + torch.sin(angle_t) * cross + (1.0 - torch.cos(angle_t)) * (cross @ cross)


def scene_bounds(scene: Scene) -> Tuple[Float[Tensor, "3"], Float[Tensor, "3"]]:
    """Axis-aligned bounding box of a whole scene."""
    lows, highs = zip(*(primitive.bounds() for primitive in scene))
    return torch.stack(lows).amin(dim=0), torch.stack(highs).amax(dim=0)


def scene_bounding_radius(scene: Scene) -> float:
    """An upper bound (exact for polyhedra and cylinders) of the scene's largest distance from the origin."""
    return max(primitive.bounding_radius() for primitive in scene)


def transform_scene(scene: Scene, scale: float, offset: Vector) -> Scene:
    """Every primitive mapped by x -> scale * x + offset."""
    offset = as_vector(offset)
    return [primitive.transformed(float(scale), offset) for primitive in scene]


class RayHits(NamedTuple):
    """What each ray sees first."""

    t: Float[Tensor, "num_rays"]
    """Distance along the ray in units of the direction's length; +inf where the ray hits nothing."""
    normal: Float[Tensor, "num_rays 3"]
    """Outward unit surface normal at the hit; zero where nothing is hit."""
    colour: Float[Tensor, "num_rays 3"]
    """Albedo of the primitive hit; zero where nothing is hit."""
    hit: Bool[Tensor, "num_rays"]
    """Whether the ray hits the scene."""


@single_threaded
def intersect(
    scene: Scene, origins: Float[Tensor, "num_rays 3"], directions: Float[Tensor, "num_rays 3"]
) -> RayHits:
    """The nearest hit of every ray with the scene's primitives.

    Only the (primitive, ray) pairs whose ray passes through the primitive's bounding sphere are intersected
    exactly: most primitives (a headlight, a chair leg) cover a small part of the image.
    """
    num_rays = origins.shape[0]
    polyhedra = [p for p in scene if isinstance(p, ConvexPolyhedron)]
    cylinders = [p for p in scene if isinstance(p, Cylinder)]
    ellipsoids = [p for p in scene if isinstance(p, Ellipsoid)]
    ordered: List[Primitive] = [*polyhedra, *cylinders, *ellipsoids]
    t = torch.full((num_rays,), torch.inf)
    normal = torch.zeros(num_rays, 3)
    colour = torch.zeros(num_rays, 3)
    if not ordered or num_rays == 0:
        return RayHits(t, normal, colour, torch.zeros(num_rays, dtype=torch.bool))

    spheres = [primitive.bounding_sphere() for primitive in ordered]
    centres = torch.stack([centre for centre, _ in spheres])
    radii = torch.tensor([radius for _, radius in spheres])
    primitive_index, ray_index = _sphere_candidates(centres, radii, origins, directions).nonzero(as_tuple=True)
    # Pairs come sorted by primitive, so each kind of primitive owns one contiguous slice of them.
    ends = torch.searchsorted(
        primitive_index, torch.tensor([len(polyhedra), len(polyhedra) + len(cylinders)])
    ).tolist()
    slices = (slice(0, ends[0]), slice(ends[0], ends[1]), slice(ends[1], None))
    pair_t = torch.full((primitive_index.shape[0],), torch.inf)
    pair_face = torch.zeros(primitive_index.shape[0], dtype=torch.long)
    pair_origins, pair_directions = origins[ray_index], directions[ray_index]
    if polyhedra:
        normals, offsets = _pack_polyhedra(polyhedra)
        chosen = slices[0]
        pair_t[chosen], pair_face[chosen] = _intersect_polyhedra(
            normals, offsets, primitive_index[chosen], ray_index[chosen], origins, directions
        )
    if cylinders:
        chosen = slices[1]
        pair_t[chosen], pair_face[chosen] = _intersect_cylinders(
            cylinders, primitive_index[chosen] - len(polyhedra), pair_origins[chosen], pair_directions[chosen]
        )
    if ellipsoids:
        chosen = slices[2]
        pair_t[chosen] = _intersect_ellipsoids(
            ellipsoids, primitive_index[chosen] - len(polyhedra) - len(cylinders),
            pair_origins[chosen], pair_directions[chosen],
        )

    # Nearest hit per ray; among exact ties, the pair listed last wins (deterministic).
    t.scatter_reduce_(0, ray_index, pair_t, reduce="amin")
    nearest = torch.isfinite(pair_t) & (pair_t == t[ray_index])
    pair_ids = torch.arange(primitive_index.shape[0])
    winner_pair = torch.full((num_rays,), -1, dtype=torch.long)
    winner_pair.scatter_reduce_(0, ray_index[nearest], pair_ids[nearest], reduce="amax")
    hit = winner_pair >= 0
    rays = hit.nonzero().squeeze(-1)
    pairs = winner_pair[rays]
    winner = primitive_index[pairs]
    face = pair_face[pairs]
    points = origins[rays] + t[rays, None] * directions[rays]
    colour[rays] = torch.stack([p.colour for p in ordered])[winner]

    hit_normal = torch.zeros(rays.shape[0], 3)
    if polyhedra:
        chosen = winner < len(polyhedra)
        hit_normal[chosen] = normals[winner[chosen], face[chosen]]
    if cylinders:
        chosen = (winner >= len(polyhedra)) & (winner < len(polyhedra) + len(cylinders))
        hit_normal[chosen] = _cylinder_normals(
            cylinders, winner[chosen] - len(polyhedra), face[chosen], points[chosen]
        )
    if ellipsoids:
        chosen = winner >= len(polyhedra) + len(cylinders)
        hit_normal[chosen] = _ellipsoid_normals(
            ellipsoids, winner[chosen] - len(polyhedra) - len(cylinders), points[chosen]
        )
    normal[rays] = hit_normal
    return RayHits(t, normal, colour, hit)


def _sphere_candidates(
    centres: Float[Tensor, "num_primitives 3"],
    radii: Float[Tensor, "num_primitives"],
    origins: Float[Tensor, "num_rays 3"],
    directions: Float[Tensor, "num_rays 3"],
) -> Bool[Tensor, "num_primitives num_rays"]:
    """Whether each ray passes through each bounding sphere ahead of its origin (or starts inside it)."""
    direction_sq = (directions * directions).sum(dim=-1)
    along = centres @ directions.T - (origins * directions).sum(dim=-1)  # (c - o) . d
    distance_sq = (centres * centres).sum(dim=-1)[:, None] - 2.0 * centres @ origins.T + (origins * origins).sum(-1)
    closest_sq = distance_sq - along * along / direction_sq
    radii_sq = (radii * radii)[:, None]
    return (closest_sq <= radii_sq) & ((along > 0) | (distance_sq <= radii_sq))


def _pack_polyhedra(
    polyhedra: Sequence[ConvexPolyhedron],
) -> Tuple[Float[Tensor, "num_polyhedra max_planes 3"], Float[Tensor, "num_polyhedra max_planes"]]:
    """Planes of all polyhedra in one tensor, padded with planes that every point satisfies."""
    max_planes = max(p.normals.shape[0] for p in polyhedra)
    normals = torch.zeros(len(polyhedra), max_planes, 3)
    offsets = torch.full((len(polyhedra), max_planes), PADDING_PLANE_OFFSET)
    for index, polyhedron in enumerate(polyhedra):
        count = polyhedron.normals.shape[0]
        normals[index, :count] = polyhedron.normals
        offsets[index, :count] = polyhedron.offsets
    return normals, offsets


def _intersect_polyhedra(
    normals: Float[Tensor, "num_polyhedra max_planes 3"],
    offsets: Float[Tensor, "num_polyhedra max_planes"],
    polyhedron_index: Int[Tensor, "num_pairs"],
    ray_index: Int[Tensor, "num_pairs"],
    origins: Float[Tensor, "num_rays 3"],
    directions: Float[Tensor, "num_rays 3"],
) -> Tuple[Float[Tensor, "num_pairs"], Int[Tensor, "num_pairs"]]:
    """Entry distance (inf: miss) and the index of the entry plane, for each (polyhedron, ray) pair.

    The ray is inside a plane's half-space on one side of the plane's crossing; it enters the solid at the last
    crossing into a half-space and leaves at the first crossing out of one. The plane-ray dot products are one
    matrix product for all planes and rays, then gathered per pair: faster than gathering planes per pair.
    """
    num_polyhedra, max_planes, _ = normals.shape
    flat_normals = normals.reshape(-1, 3)
    approach = (flat_normals @ directions.T).view(num_polyhedra, max_planes, -1)[polyhedron_index, :, ray_index]
    if origins.shape[0] > 0 and origins.stride(0) == 0:  # one origin (a camera's, expanded): one height per plane
        height = (normals @ origins[0])[polyhedron_index]
    else:
        height = (flat_normals @ origins.T).view(num_polyhedra, max_planes, -1)[polyhedron_index, :, ray_index]
    clearance = offsets[polyhedron_index] - height
    parallel = approach.abs() < PARALLEL_EPSILON
    crossing = clearance / torch.where(parallel, 1.0, approach)
    t_enter, entry_plane = torch.where(approach < 0, crossing, -torch.inf).max(dim=1)
    t_exit = torch.where(approach > 0, crossing, torch.inf).amin(dim=1)
    outside_parallel = (parallel & (clearance < 0)).any(dim=1)
    hit = (t_enter <= t_exit) & (t_enter > MIN_HIT_DISTANCE) & ~outside_parallel
    return torch.where(hit, t_enter, torch.inf), entry_plane


def _intersect_cylinders(
    cylinders: Sequence[Cylinder],
    index: Tensor,
    origins: Float[Tensor, "num_pairs 3"],
    directions: Float[Tensor, "num_pairs 3"],
) -> Tuple[Float[Tensor, "num_pairs"], Tensor]:
    """Entry distance (inf: miss) and entry face (0: side, +1/-1: the cap at +/- half_length along the axis).

    The solid is an infinite cylinder cut by a slab; the ray's entry is the later of its entries into the two.
    """
    centres = torch.stack([c.centre for c in cylinders])[index]
    axes = torch.stack([c.axis for c in cylinders])[index]
    radii = torch.tensor([c.radius for c in cylinders])[index]
    half_lengths = torch.tensor([c.half_length for c in cylinders])[index]
    relative = origins - centres
    along_origin = (relative * axes).sum(dim=-1)
    along_direction = (directions * axes).sum(dim=-1)
    # Quadratic in t for the squared distance from the axis: a t^2 + 2 b t + c = r^2 (perpendicular parts only).
    a = (directions * directions).sum(dim=-1) - along_direction**2
    b = (relative * directions).sum(dim=-1) - along_origin * along_direction
    c = (relative * relative).sum(dim=-1) - along_origin**2 - radii**2
    discriminant = b * b - a * c
    side_parallel = a < PARALLEL_EPSILON
    safe_a = torch.where(side_parallel, 1.0, a)
    root = discriminant.clamp(min=0.0).sqrt()
    inside_side = c <= 0
    side_enter = torch.where(side_parallel, torch.where(inside_side, -torch.inf, torch.inf), (-b - root) / safe_a)
    side_exit = torch.where(side_parallel, torch.where(inside_side, torch.inf, -torch.inf), (-b + root) / safe_a)
    side_miss = ~side_parallel & (discriminant < 0)

    slab_parallel = along_direction.abs() < PARALLEL_EPSILON
    safe_along = torch.where(slab_parallel, 1.0, along_direction)
    low = (-half_lengths - along_origin) / safe_along
    high = (half_lengths - along_origin) / safe_along
    inside_slab = along_origin.abs() <= half_lengths
    slab_enter = torch.where(slab_parallel, torch.where(inside_slab, -torch.inf, torch.inf), torch.minimum(low, high))
    slab_exit = torch.where(slab_parallel, torch.where(inside_slab, torch.inf, -torch.inf), torch.maximum(low, high))

    t_enter = torch.maximum(side_enter, slab_enter)
    t_exit = torch.minimum(side_exit, slab_exit)
    hit = ~side_miss & (t_enter <= t_exit) & (t_enter > MIN_HIT_DISTANCE)
    # Entering through a cap: through the -axis cap when moving along +axis, and vice versa.
    cap = -torch.sign(along_direction).long()
    face = torch.where(slab_enter > side_enter, cap, torch.zeros_like(cap))
    return torch.where(hit, t_enter, torch.inf), face


def _cylinder_normals(
    cylinders: Sequence[Cylinder], index: Tensor, face: Tensor, points: Float[Tensor, "num_hits 3"]
) -> Float[Tensor, "num_hits 3"]:
    """Outward normals at hit points: radial on the side, +-axis on the caps."""
    centres = torch.stack([c.centre for c in cylinders])[index]
    axes = torch.stack([c.axis for c in cylinders])[index]
    relative = points - centres
    radial = relative - (relative * axes).sum(dim=-1, keepdim=True) * axes
    radial = radial / radial.norm(dim=-1, keepdim=True).clamp(min=PARALLEL_EPSILON)
    return torch.where((face == 0)[:, None], radial, face[:, None].float() * axes)


def _intersect_ellipsoids(
    ellipsoids: Sequence[Ellipsoid],
    index: Tensor,
    origins: Float[Tensor, "num_pairs 3"],
    directions: Float[Tensor, "num_pairs 3"],
) -> Float[Tensor, "num_pairs"]:
    """Entry distance (inf: miss): the ray in each ellipsoid's frame, scaled so the ellipsoid is the unit sphere."""
    centres = torch.stack([e.centre for e in ellipsoids])[index]
    to_unit = torch.stack([e.rotation / e.semi_axes for e in ellipsoids])[index]  # world -> unit-sphere frame
    local_origins = torch.einsum("mc,mcj->mj", origins - centres, to_unit)
    local_directions = torch.einsum("mc,mcj->mj", directions, to_unit)
    a = (local_directions * local_directions).sum(dim=-1)
    b = (local_origins * local_directions).sum(dim=-1)
    c = (local_origins * local_origins).sum(dim=-1) - 1.0
    discriminant = b * b - a * c
    t_enter = (-b - discriminant.clamp(min=0.0).sqrt()) / a
    hit = (discriminant >= 0) & (t_enter > MIN_HIT_DISTANCE)
    return torch.where(hit, t_enter, torch.inf)


def _ellipsoid_normals(
    ellipsoids: Sequence[Ellipsoid], index: Tensor, points: Float[Tensor, "num_hits 3"]
) -> Float[Tensor, "num_hits 3"]:
    """Outward normals at hit points: the gradient of the ellipsoid's implicit function."""
    centres = torch.stack([e.centre for e in ellipsoids])[index]
    rotations = torch.stack([e.rotation for e in ellipsoids])[index]
    semi_axes = torch.stack([e.semi_axes for e in ellipsoids])[index]
    local = torch.einsum("nc,ncj->nj", points - centres, rotations)
    gradient = torch.einsum("ncj,nj->nc", rotations, local / semi_axes**2)
    return gradient / gradient.norm(dim=-1, keepdim=True).clamp(min=PARALLEL_EPSILON)
