"""`hypernerfgan`: the commands nerfstudio's own tools do not cover.

    hypernerfgan data synth cars --output data/cars --num-images 2000 --resolution 128
    hypernerfgan data download carla --output data/carla
    hypernerfgan data convert ~/photos/shoes --output data/shoes.zip --format zip
    hypernerfgan plot outputs/cars/hypernerfgan/A outputs/cars/hypernerfgan/B --output curves.png
    hypernerfgan render-samples --load-config RUN/config.yml --output samples.zip
    hypernerfgan score samples.zip --data cars
    hypernerfgan score-curve outputs/cars/hypernerfgan/A     # FID/KID for a curve scored without Inception
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, List, Optional, Union

import tyro
from typing_extensions import Annotated

from hypernerfgan_ns.errors import HyperNeRFGANError, print_error
from hypernerfgan_ns.scripts.ablate import AblateCommand
from hypernerfgan_ns.scripts.bench import BenchCommand
from hypernerfgan_ns.scripts.data_convert import ConvertCommand
from hypernerfgan_ns.scripts.data_download import DownloadCommand
from hypernerfgan_ns.scripts.data_synth import SynthCommand
from hypernerfgan_ns.scripts.export_mesh import ExportMeshCommand
from hypernerfgan_ns.scripts.import_reference import ImportReferenceCommand
from hypernerfgan_ns.scripts.metrics_commands import FetchInceptionCommand
from hypernerfgan_ns.scripts.plot_curves import PlotCommand
from hypernerfgan_ns.scripts.samples import SamplesCommand
from hypernerfgan_ns.scripts.score_samples import RenderSamplesCommand, ScoreCommand, ScoreCurveCommand
from hypernerfgan_ns.scripts.video import VideoCommands


@dataclass
class DataCommands:
    """Prepare image collections: render the built-in procedural sets, download the benchmarks, convert your own."""

    command: Annotated[
        Union[
            Annotated[SynthCommand, tyro.conf.subcommand("synth", prefix_name=False)],
            Annotated[DownloadCommand, tyro.conf.subcommand("download", prefix_name=False)],
            Annotated[ConvertCommand, tyro.conf.subcommand("convert", prefix_name=False)],
        ],
        tyro.conf.OmitArgPrefixes,
    ]

    def main(self) -> None:
        self.command.main()


COMMANDS = {
    "data": DataCommands,
    "fetch-inception": FetchInceptionCommand,
    "samples": SamplesCommand,
    "render-samples": RenderSamplesCommand,
    "score": ScoreCommand,
    "score-curve": ScoreCurveCommand,
    "plot": PlotCommand,
    "video": VideoCommands,
    "export-mesh": ExportMeshCommand,
    "import-reference": ImportReferenceCommand,
    "ablate": AblateCommand,
    "bench": BenchCommand,
}
"""Top-level subcommands of `hypernerfgan`."""


def parse(args: Optional[List[str]] = None) -> Any:
    """Parses `hypernerfgan` arguments (the process's when None) into a command object with a `main()`."""
    return tyro.extras.subcommand_cli_from_dict(COMMANDS, args=args, description=__doc__)


def run(command: Any) -> None:
    """Runs a parsed command; user errors become a message and a non-zero exit, not a traceback."""
    try:
        command.main()
    except HyperNeRFGANError as error:
        print_error(error)
        sys.exit(error.exit_code)


def entrypoint() -> None:
    """Console-script entry point."""
    tyro.extras.set_accent_color("bright_yellow")
    run(parse())


if __name__ == "__main__":
    entrypoint()
