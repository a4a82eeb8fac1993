"""Errors that a user can fix, and how they are shown.

Library code raises these with a message that says what was wrong, with which file, and what to do. The command-line
entry points (our trainer, `hypernerfgan ...`) catch them and print the message as a panel instead of a traceback,
then exit non-zero.
"""

from __future__ import annotations

from rich.panel import Panel
from rich.text import Text

from nerfstudio.utils.rich_utils import CONSOLE


class HyperNeRFGANError(Exception):
    """An error caused by input or configuration, with an actionable message."""

    exit_code: int = 2


class DatasetError(HyperNeRFGANError):
    """An image collection that cannot be used for training: missing, empty, unreadable or too small."""


class DownloadError(HyperNeRFGANError):
    """A dataset download that failed: network, checksum or archive problems."""


class TrainingDivergedError(HyperNeRFGANError):
    """Training produced non-finite losses or gradients too many steps in a row."""

    exit_code = 3


class InceptionUnavailableError(HyperNeRFGANError):
    """FID/KID need Inception weights that are not on this machine."""


class CheckpointError(HyperNeRFGANError):
    """A checkpoint or run folder that cannot be loaded."""


class ExportError(HyperNeRFGANError):
    """A picture, video or mesh that cannot be made as asked: an unknown file type, a missing encoder, no surface."""


def print_error(error: HyperNeRFGANError) -> None:
    """Show an actionable error as a red panel on the console (as plain text: paths may contain brackets)."""
    CONSOLE.print(Panel(Text(str(error)), title=f"[bold red]{type(error).__name__}", border_style="red", expand=False))
