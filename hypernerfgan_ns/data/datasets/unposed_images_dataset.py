"""The dataset nerfstudio's viewer and `ns-render` iterate over: the orbit cameras, each with a training image.

The images of an unposed collection have no cameras, and the orbit cameras have no images of their own; camera k
shows training image k as its thumbnail so that the viewer draws a ring of example photos around the object.
Training does not read images through this class: the datamanager samples the whole image store directly.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import numpy.typing as npt

from hypernerfgan_ns.data.image_collection import ImageStore
from nerfstudio.data.datasets.base_dataset import InputDataset

PLACEHOLDER_GREY = 255
"""Thumbnail value when the training images are unavailable (a white frame)."""


class UnposedImagesDataset(InputDataset):
    """Orbit cameras with training images as thumbnails."""

    @property
    def image_store(self) -> Optional[ImageStore]:
        """The decoded collection, or None when rendering a trained model whose images are gone."""
        return self.metadata["image_store"]

    def get_numpy_image(self, image_idx: int) -> npt.NDArray[np.uint8]:
        store = self.image_store
        height, width = int(self.cameras.height[image_idx]), int(self.cameras.width[image_idx])
        if store is None:
            return np.full((height, width, 3), PLACEHOLDER_GREY, dtype=np.uint8)
        return store.read([image_idx % store.num_images])[0]
