"""Package layout that pyproject.toml alone cannot express.

The per-dataset presets live in the repository's top-level `configs/` folder, where users look for them, and ship
inside the package as `hypernerfgan_ns.dataset_configs`.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["hypernerfgan_ns", "hypernerfgan_ns.*"]) + ["hypernerfgan_ns.dataset_configs"],
    package_dir={"hypernerfgan_ns.dataset_configs": "configs"},
)
