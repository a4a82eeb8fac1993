"""Registers the `unposed-images` dataparser with nerfstudio.

Kept apart from the datamanager on purpose: nerfstudio discovers dataparsers while importing its own datamanager
module, so this entry point must not import a datamanager (that would be a circular import).
"""

from hypernerfgan_ns.data.dataparsers.unposed_images_dataparser import UnposedImagesDataParserConfig
from nerfstudio.plugins.registry_dataparser import DataParserSpecification

unposed_images = DataParserSpecification(
    config=UnposedImagesDataParserConfig(),
    description="Unposed image collections (folder, zip, SRN) or a built-in set (cars, chairs, planes)",
)
