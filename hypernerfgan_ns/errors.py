"""Errors that a user can fix, and how they are shown.

Library code raises these with a message that says what was wrong, with which file, and what to do. The command-line
entry points (our trainer, `hypernerfgan ...`) catch them and print the message as a panel instead of a traceback,
then exit non-zero. nerfstudio's own commands (`ns-eval`, `ns-render`, `ns-export`, `ns-viewer`) run our code without
catching them: `show_uncaught_errors_as_panels` makes them print the same panel.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Optional, Type

from rich.panel import Panel
from rich.text import Text

from nerfstudio.utils.rich_utils import CONSOLE


class HyperNeRFGANError(Exception):
    """An error caused by input or configuration, with an actionable message."""

    exit_code: int = 2


class ConfigError(HyperNeRFGANError, ValueError):
    """Options that cannot work, alone or together, found as the run is set up: the message names the flags and
    values that fit. A ValueError too, for code that builds the networks itself."""


class DatasetError(HyperNeRFGANError):
    """An image collection that cannot be used for training: missing, empty, unreadable or too small."""


class DownloadError(HyperNeRFGANError):
    """A dataset download that failed: network, checksum or archive problems."""


class TrainingDivergedError(HyperNeRFGANError):
    """Training produced non-finite losses or gradients too many steps in a row."""

    exit_code = 3


class GeneratorCollapsedError(TrainingDivergedError):
    """The generator renders empty scenes and, with no gradient left, can never learn again."""


class InceptionUnavailableError(HyperNeRFGANError):
    """FID/KID need Inception weights that are not on this machine."""


class CheckpointError(HyperNeRFGANError):
    """A checkpoint or run folder that cannot be loaded."""


class ExportError(HyperNeRFGANError):
    """A picture, video or mesh that cannot be made as asked: an unknown file type, a missing encoder, no surface."""


def print_error(error: HyperNeRFGANError) -> None:
    """Show an actionable error as a red panel on the console (as plain text: paths may contain brackets)."""
    CONSOLE.print(Panel(Text(str(error)), title=f"[bold red]{type(error).__name__}", border_style="red", expand=False))


def show_uncaught_errors_as_panels() -> None:
    """Makes an uncaught `HyperNeRFGANError` print its panel instead of a traceback (the process still exits with
    status 1); every other exception reaches the hook installed before. Called when nerfstudio loads the plugin's
    methods, which every `ns-*` command does first; installed once however often it is called."""
    previous_hook = sys.excepthook
    if getattr(previous_hook, "shows_hypernerfgan_errors", False):
        return

    def hook(kind: Type[BaseException], error: BaseException, traceback: Optional[TracebackType]) -> None:
        if isinstance(error, HyperNeRFGANError):
            print_error(error)
        else:
            previous_hook(kind, error, traceback)

    hook.shows_hypernerfgan_errors = True  # type: ignore[attr-defined]
    sys.excepthook = hook
