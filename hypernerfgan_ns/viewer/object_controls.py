"""Web-viewer controls that choose the *viewed object*: a seed, a random new object, truncation, and a walk between
two objects.

Each latent z of HyperNeRFGAN is a whole object, so the viewer needs a way to pick one. The viewed object is model
state (the model's `viewed_latent`, `viewed_seed` and `viewed_truncation` buffers), and every control writes it
through `set_viewed_object`; what the viewer shows is therefore saved in checkpoints and shown again by ns-render and
ns-eval after a reload.

nerfstudio's viewer finds `ViewerElement`s among the public attributes of the `nn.Module`s reachable from the
pipeline, wraps their callbacks in its lock and re-renders after each one. `ObjectViewerControls` is such a module,
owned by the model; it keeps bound methods of the model rather than the model itself, because a module attribute would
register the model as its own grandchild (a cycle in the module tree, and its weights twice in `state_dict`).
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any, Callable, Optional, Tuple

from torch import Tensor, nn

from hypernerfgan_ns.utils.latents import slerp
from nerfstudio.viewer.viewer_elements import ViewerButton, ViewerNumber, ViewerParameter, ViewerSlider

if TYPE_CHECKING:
    from hypernerfgan_ns.models.hypernerfgan import HyperNeRFGANModel

SEED_B_OFFSET = 1
"""Seed B starts at the viewed seed plus this, so that the interpolation slider walks between two objects."""
RANDOM_SEED_LIMIT = 2**31 - 1
""""New object" draws seeds in [0, this): exact as JavaScript numbers, and short enough to note down and type back."""
TRUNCATION_MIN = 0.0
"""Truncation psi of the average object (every latent mapped to the running mean of w)."""
TRUNCATION_MAX = 1.0
"""Truncation psi of the untruncated generator."""
TRUNCATION_STEP = 0.01
"""Resolution of the truncation slider."""
INTERPOLATION_MIN = 0.0
"""Interpolation weight that shows object A."""
INTERPOLATION_MAX = 1.0
"""Interpolation weight that shows object B."""
INTERPOLATION_STEP = 0.01
"""Resolution of the interpolation slider."""


class ObjectViewerControls(nn.Module):
    """The viewer's "which object" panel; parameter-free, so it adds nothing to checkpoints.

    The shown object is always `slerp(z(Seed), z(Seed B), Interpolate A -> B)` at truncation psi; every callback
    recomputes it from the fields, so the fields and the model never disagree after a change. Attribute names sort in
    display order (the viewer lists a module's elements alphabetically, by `dir()`).
    """

    def __init__(self, model: "HyperNeRFGANModel") -> None:
        super().__init__()
        # Bound methods, not the model (see the module docstring); they also follow the model through copy.deepcopy.
        self._latent_from_seed: Callable[[int], Tensor] = model.latent_from_seed
        self._set_viewed_object: Callable[[Tensor, int, Optional[float]], None] = model.set_viewed_object
        self._get_buffer: Callable[[str], Tensor] = model.get_buffer
        # A private generator: drawing a new object while training runs must not move the training's random stream.
        self._random = random.Random()

        seed, truncation = self.read_viewed_object()
        self.object_seed = ViewerNumber(
            "Seed", seed, cb_hook=self._on_change, hint="Integer seed of the latent z of the object shown (object A)."
        )
        self.object_seed_new = ViewerButton("New object", cb_hook=self._on_new_object)
        self.object_truncation = ViewerSlider(
            "Truncation (psi)",
            truncation,
            TRUNCATION_MIN,
            TRUNCATION_MAX,
            step=TRUNCATION_STEP,
            cb_hook=self._on_change,
            hint="0: the average object; 1: untruncated. Lower values trade variety for quality.",
        )
        self.slerp_seed_b = ViewerNumber(
            "Seed B", seed + SEED_B_OFFSET, cb_hook=self._on_change, hint="Seed of object B, the end of the walk."
        )
        self.slerp_weight = ViewerSlider(
            "Interpolate A -> B",
            INTERPOLATION_MIN,
            INTERPOLATION_MIN,
            INTERPOLATION_MAX,
            step=INTERPOLATION_STEP,
            cb_hook=self._on_change,
            hint="Spherical interpolation of the two latents: 0 shows Seed, 1 shows Seed B.",
        )
        # The viewer may install the fields after a checkpoint replaced the viewed object (ns-viewer, ns-train with
        # --load-dir): refresh them from the loaded buffers.
        self.register_load_state_dict_post_hook(self._after_load)

    # ------------------------------------------------------------------ callbacks

    def _on_change(self, _element: ViewerParameter[Any]) -> None:
        """Any field changed: show the object the fields now describe."""
        self.apply()

    def _on_new_object(self, _button: ViewerButton) -> None:
        """A random seed in the Seed field, shown on its own (the walk towards B starts again from 0)."""
        self.object_seed.value = self._random.randrange(RANDOM_SEED_LIMIT)
        self.slerp_weight.value = INTERPOLATION_MIN
        self.apply()

    def _after_load(self, _module: nn.Module, _incompatible_keys: Any) -> None:
        """Shows the loaded object's seed and truncation in the fields; the walk towards B restarts from A."""
        self.sync_from_model()

    # ------------------------------------------------------------------ the viewed object

    def apply(self) -> None:
        """Makes the object the fields describe the model's viewed object."""
        seed_a = int(self.object_seed.value)
        weight = min(max(float(self.slerp_weight.value), INTERPOLATION_MIN), INTERPOLATION_MAX)
        truncation = min(max(float(self.object_truncation.value), TRUNCATION_MIN), TRUNCATION_MAX)
        latent = slerp(self._latent_from_seed(seed_a), self._latent_from_seed(int(self.slerp_seed_b.value)), weight)
        self._set_viewed_object(latent, seed_a, truncation)

    def sync_from_model(self) -> None:
        """Sets the fields from the model's buffers (seed, truncation; Seed B after it; interpolation 0).

        Once the viewer has installed the fields, setting them fires their callbacks, which re-apply the same object,
        unless the model held an interpolated latent: the fields cannot describe one, and it is replaced by object A.
        """
        seed, truncation = self.read_viewed_object()
        self.object_seed.value = seed
        self.object_truncation.value = truncation
        self.slerp_seed_b.value = seed + SEED_B_OFFSET
        self.slerp_weight.value = INTERPOLATION_MIN

    def read_viewed_object(self) -> Tuple[int, float]:
        """The model's viewed seed and truncation, the latter rounded to the slider's resolution (a float32 buffer
        would show 0.699999988...)."""
        truncation = round(float(self._get_buffer("viewed_truncation")), _decimals(TRUNCATION_STEP))
        return int(self._get_buffer("viewed_seed")), truncation


def _decimals(step: float) -> int:
    """Decimal places of a slider of resolution `step`."""
    return max(0, -math.floor(math.log10(step)))
