"""The quality curve during training, its plot, and scoring samples rendered on another machine."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import zipfile
from pathlib import Path
from typing import List

import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import nerfstudio.engine.trainer
from hypernerfgan_ns.engine.trainer import INTERRUPTED_EXIT_CODE, HyperNeRFGANTrainer
from hypernerfgan_ns.errors import DatasetError, ExportError
from hypernerfgan_ns.method_configs import method_config
from hypernerfgan_ns.metrics.evaluation import GANEvaluationConfig
from hypernerfgan_ns.metrics.quality_curve import (
    CURVE_SAMPLES_DIRNAME,
    CURVE_SAMPLES_NAME,
    METRICS_FILENAME,
    QualityCurve,
    QualityCurveConfig,
    read_curve,
)
from hypernerfgan_ns.metrics.sample_archive import SampleArchive
from hypernerfgan_ns.scripts.plot_curves import PlotCommand
from hypernerfgan_ns.scripts.score_samples import RenderSamplesCommand, ScoreCommand, ScoreCurveCommand, training_images
from nerfstudio.utils import profiler, writer
from nerfstudio.utils.eval_utils import eval_setup
from nerfstudio.utils.writer import EventName, TimeWriter
from tests.helpers import latest_checkpoint, micro_config, replaced, train

CURVE = QualityCurveConfig(interval_images=8, num_generated=8)
"""A point every 2 iterations of the micro config (4 images each)."""

INCEPTION_SCORES = ("fid", "kid", "kid_std")
"""What a point scored without the Inception weights lacks."""


def curve_config(tmp_path: Path, iterations: int, timestamp: str = "run", **evaluation):
    config = micro_config(tmp_path, max_num_iterations=iterations, timestamp=timestamp, quality_curve=CURVE)
    if evaluation:
        pipeline = dataclasses.replace(config.pipeline, evaluation=GANEvaluationConfig(**evaluation))
        config = replaced(config, pipeline=pipeline)
    return config


def test_a_run_records_its_quality_every_interval_in_jsonl_and_tensorboard(tmp_path: Path) -> None:
    config = curve_config(tmp_path, iterations=5)
    train(config)
    points = read_curve(config.get_base_dir() / METRICS_FILENAME)
    # At the start, after iterations 2 and 4 (8 and 16 images), and at the end (5 iterations, 20 images).
    assert [point["images_seen"] for point in points] == [0, 8, 16, 20]
    assert [point["step"] for point in points] == [0, 2, 4, 5]
    for point in points:
        assert point["swd"] > 0 and point["num_generated"] == 8
        assert point["wall_seconds"] >= point["train_seconds"] >= 0
        assert (config.get_base_dir() / point["samples"]).is_file(), "no Inception weights here: samples are kept"
    assert points[-1]["train_seconds"] > points[0]["train_seconds"]

    events = EventAccumulator(str(config.get_base_dir())).Reload()
    swd = events.Scalars("Quality/swd")
    assert [event.step for event in swd] == [0, 1, 3, 4]
    assert profiler.PROFILER[0].profiler_dict["QualityCurve.record"]["val"] > 0, "ns-train's closing profile lists it"
    assert [round(event.value, 3) for event in swd] == [round(point["swd"], 3) for point in points]


def test_a_run_of_no_iterations_scores_its_generator_once_and_ends_cleanly(tmp_path: Path) -> None:
    """`--max-num-iterations 0`: the new generator's point reaches metrics.jsonl and tensorboard, and the run ends
    with its checkpoint (nerfstudio's console writer failed on the point's scalars: no iteration's stats to print)."""
    config = curve_config(tmp_path, iterations=0)
    checkpoints = train(config)
    assert [point["images_seen"] for point in read_curve(config.get_base_dir() / METRICS_FILENAME)] == [0]
    assert [event.step for event in EventAccumulator(str(config.get_base_dir())).Reload().Scalars("Quality/swd")] == [0]
    assert latest_checkpoint(checkpoints)["step"] == 0
    assert not writer.EVENT_STORAGE


@pytest.mark.parametrize("logger", [True, False], ids=["tensorboard", "viewer-alone"])
def test_scoring_is_not_timed_as_a_training_iteration(tmp_path: Path, monkeypatch, logger: bool) -> None:
    """nerfstudio times its after-iteration callbacks with the iteration: a point scored there showed as slow
    iterations in "Train Iter (time)", "Train Rays / Sec" and the ETA. Without a logger (the viewer alone), where
    nerfstudio skips its own evaluations, the curve is still drawn."""
    timers: List[str] = []

    class WatchedTimeWriter(TimeWriter):
        def __enter__(self):
            timers.append(self.name)
            return super().__enter__()

        def __exit__(self, *args):
            timers.remove(self.name)
            return super().__exit__(*args)

    inside_iteration_timer: List[bool] = []
    record = QualityCurve.record

    def watched_record(curve: QualityCurve, step: int):
        inside_iteration_timer.append(EventName.ITER_TRAIN_TIME in timers)
        return record(curve, step)

    monkeypatch.setattr(nerfstudio.engine.trainer, "TimeWriter", WatchedTimeWriter)
    monkeypatch.setattr(QualityCurve, "record", watched_record)
    config = curve_config(tmp_path, iterations=4)
    if not logger:
        monkeypatch.setattr(type(config), "is_tensorboard_enabled", lambda self: False)
    train(config)
    points = read_curve(config.get_base_dir() / METRICS_FILENAME)
    assert [point["images_seen"] for point in points] == [0, 8, 16]
    assert inside_iteration_timer == [False, False, False]


def test_ctrl_c_in_an_iteration_whose_point_is_due_stops_without_scoring_it(tmp_path: Path, monkeypatch) -> None:
    """The stop is promised after the iteration; a point (a minute on a CPU) is not scored first."""
    config = curve_config(tmp_path, iterations=4)
    train_iteration = HyperNeRFGANTrainer.train_iteration

    def ctrl_c_during_the_second(trainer: HyperNeRFGANTrainer, step: int):
        if step == 1:  # the iteration after which 8 images are seen: a point is due
            os.kill(os.getpid(), signal.SIGINT)
        return train_iteration(trainer, step)

    monkeypatch.setattr(HyperNeRFGANTrainer, "train_iteration", ctrl_c_during_the_second)
    with pytest.raises(SystemExit) as stopped:
        train(config)
    assert stopped.value.code == INTERRUPTED_EXIT_CODE
    assert [point["images_seen"] for point in read_curve(config.get_base_dir() / METRICS_FILENAME)] == [0]
    assert [path.name for path in config.get_checkpoint_dir().glob("*.ckpt")] == ["step-000000001.ckpt"]


def test_ctrl_c_while_a_point_is_scored_abandons_it_and_the_run_stops_with_a_checkpoint(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """A point takes minutes on a CPU: a Ctrl-C during one stops its scoring at once (it was a traceback after a second
    Ctrl-C, with no checkpoint), and nothing of the point is left."""
    config = curve_config(tmp_path, iterations=6)
    add = SampleArchive.add

    def add_then_ctrl_c(archive: SampleArchive, batch) -> None:
        add(archive, batch)
        if archive.output.name == CURVE_SAMPLES_NAME.format(images=8):  # the point after the second iteration
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(SampleArchive, "add", add_then_ctrl_c)
    with pytest.raises(SystemExit) as stopped:
        train(config)
    assert stopped.value.code == INTERRUPTED_EXIT_CODE
    assert "Stopped scoring the quality point at 8 images" in " ".join(capsys.readouterr().out.split())
    assert [point["images_seen"] for point in read_curve(config.get_base_dir() / METRICS_FILENAME)] == [0]
    assert [path.name for path in (config.get_base_dir() / CURVE_SAMPLES_DIRNAME).iterdir()] == [
        CURVE_SAMPLES_NAME.format(images=0)
    ]
    assert [path.name for path in config.get_checkpoint_dir().glob("*.ckpt")] == ["step-000000001.ckpt"]


def test_a_resumed_run_continues_the_curve_and_its_clock(tmp_path: Path) -> None:
    first = curve_config(tmp_path, iterations=3, timestamp="first")
    checkpoints = train(first)
    before = read_curve(first.get_base_dir() / METRICS_FILENAME)
    second = replaced(curve_config(tmp_path, iterations=6, timestamp="second"), load_dir=checkpoints)
    train(second)
    after = read_curve(second.get_base_dir() / METRICS_FILENAME)
    assert [point["images_seen"] for point in before] == [0, 8, 12]
    assert [point["images_seen"] for point in after] == [0, 8, 12, 16, 24]
    assert [point["swd"] for point in after[:3]] == [point["swd"] for point in before]
    assert after[3]["train_seconds"] > before[-1]["train_seconds"], "the clock continues from the checkpoint"
    # The earlier points' samples stay in the first run's folder, named from the second's.
    assert all((second.get_base_dir() / point["samples"]).resolve().is_file() for point in after)
    assert after[0]["samples"].startswith("../first/")


def test_with_inception_weights_the_curve_has_fid_and_kid(tmp_path: Path, stand_in_weights: Path) -> None:
    config = curve_config(tmp_path, iterations=2, kid_subset_size=4, kid_subsets=3, inception_weights=stand_in_weights)
    train(config)
    points = read_curve(config.get_base_dir() / METRICS_FILENAME)
    assert len(points) == 2 and all({"fid", "kid", "kid_std", "swd"} <= set(point) for point in points)
    assert points[0]["fid"] > 0
    assert not any("samples" in point for point in points), "with the weights, samples are kept only on request"


def test_score_curve_adds_the_fid_and_kid_a_run_without_inception_could_not(
    tmp_path: Path, stand_in_weights: Path
) -> None:
    # A machine with the weights, keeping the samples anyway: the figures score-curve must reproduce.
    protocol = dict(kid_subset_size=4, kid_subsets=3)
    config = curve_config(tmp_path, iterations=2, inception_weights=stand_in_weights, **protocol)
    config = replaced(config, quality_curve=dataclasses.replace(CURVE, keep_samples="always"))
    train(config)
    logged = read_curve(config.get_base_dir() / METRICS_FILENAME)
    assert [point["images_seen"] for point in logged] == [0, 8]
    with zipfile.ZipFile(config.get_base_dir() / logged[1]["samples"]) as archive:
        names = archive.namelist()
        kept = json.loads(archive.read("samples.json"))
    assert len([name for name in names if name.endswith(".png")]) == 8
    assert kept["num_images"] == 8 and kept["images_seen"] == 8 and kept["step"] == 2

    # The same run on a machine without the weights (a GPU machine, say): SWD and the samples only.
    elsewhere = curve_config(tmp_path, iterations=2, timestamp="no-inception", **protocol)
    train(elsewhere)
    run = elsewhere.get_base_dir()
    swd_only = read_curve(run / METRICS_FILENAME)
    assert not any(set(INCEPTION_SCORES) & set(point) for point in swd_only)
    assert [point["swd"] for point in swd_only] == [point["swd"] for point in logged], "scoring never changes training"

    ScoreCurveCommand(runs=(run,), inception_weights=stand_in_weights).main()
    scored = read_curve(run / METRICS_FILENAME)
    for point, expected in zip(scored, logged):
        assert point["fid"] == pytest.approx(expected["fid"], rel=1e-4)
        assert point["kid"] == pytest.approx(expected["kid"], rel=1e-4)  # KID's subsets are seeded
        assert point["swd"] == expected["swd"] and point["samples"] == expected["samples"]
    output = PlotCommand(runs=(run,), output=tmp_path / "curve.png", metrics=("fid",)).main()
    assert output.is_file()

    ScoreCurveCommand(runs=(run,), inception_weights=stand_in_weights).main()  # nothing left: the curve is unchanged
    assert read_curve(run / METRICS_FILENAME) == scored
    (run / scored[1]["samples"]).unlink()
    with pytest.raises(ExportError, match="not there"):
        ScoreCurveCommand(runs=(run,), inception_weights=stand_in_weights, rescore=True).main()
    for point in scored:  # a GPU check that had to leave the second point's samples behind: the first is scored
        del point["fid"]
    (run / METRICS_FILENAME).write_text("".join(json.dumps(point) + "\n" for point in scored), encoding="utf8")
    ScoreCurveCommand(runs=(run,), inception_weights=stand_in_weights, skip_missing=True).main()
    first, second = read_curve(run / METRICS_FILENAME)
    assert first["fid"] == pytest.approx(logged[0]["fid"], rel=1e-4) and "fid" not in second
    with pytest.raises(ExportError, match="Name the runs"):
        ScoreCurveCommand(runs=()).main()


def test_the_tiny_presets_default_interval_draws_a_curve_in_60_iterations() -> None:
    config = method_config("hypernerfgan-tiny")
    batch = config.pipeline.datamanager.batch_size
    due = [step for step in range(60) if config.quality_curve.is_due((step + 1) * batch, batch)]
    assert len(due) >= 2, due
    for name in ("hypernerfgan", "hypernerfgan-lite"):
        assert method_config(name).quality_curve.enabled


def due_images(curve: QualityCurveConfig, images_per_step: int, steps: int) -> List[int]:
    """The images seen after each iteration that takes a point, over `steps` iterations."""
    seen = [(step + 1) * images_per_step for step in range(steps)]
    return [images for images in seen if curve.is_due(images, images_per_step)]


def test_a_growing_interval_takes_points_at_doubling_images_and_even_ones_stay_even() -> None:
    assert due_images(QualityCurveConfig(interval_images=100), 4, 150) == [100, 200, 300, 400, 500, 600]
    doubling = QualityCurveConfig(interval_images=100, interval_growth=2.0)
    assert due_images(doubling, 4, 4_000) == [100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800]
    assert due_images(doubling, 30, 100) == [120, 210, 420, 810, 1_620], "the iteration that crosses each point"
    assert due_images(doubling, 1_000, 4) == [1_000, 2_000, 4_000], "several points in one iteration: one is taken"
    assert due_images(QualityCurveConfig(interval_images=100, interval_growth=1.5), 1, 600) == [100, 150, 225, 338, 507]
    tiny = method_config("hypernerfgan-tiny").quality_curve
    assert due_images(tiny, 4, 4_000) == due_images(doubling, 4, 4_000), "the tiny preset's: 8 in 16,000 images"
    with pytest.raises(ValueError, match="interval_growth >= 1"):
        QualityCurveConfig(interval_growth=0.5)


def test_plot_draws_the_curves_of_several_runs(tmp_path: Path) -> None:
    runs = []
    for name, scale in (("a", 1.0), ("b", 0.5)):
        folder = tmp_path / name
        folder.mkdir()
        lines = [
            {
                "step": s,
                "images_seen": 4 * s,
                "wall_seconds": 2.0 * s,
                "train_seconds": 1.5 * s,
                "swd": scale * (50 - s),
            }
            for s in range(0, 40, 10)
        ]
        (folder / METRICS_FILENAME).write_text("".join(json.dumps(line) + "\n" for line in lines) + "{broken")
        runs.append(folder)
    output = PlotCommand(runs=tuple(runs), output=tmp_path / "curves.png", title="two runs").main()
    with Image.open(output) as image:
        width, height = image.size
    assert width > height > 100, "one row (SWD) of two panels: images seen and minutes"
    with pytest.raises(ExportError, match="metrics.jsonl"):
        PlotCommand(runs=(tmp_path / "nothing",), output=tmp_path / "x.png").main()
    # A glob over a method's runs may hold one without a curve (stopped before its first point): the others are drawn.
    (tmp_path / "no_curve").mkdir()
    PlotCommand(runs=(*runs, tmp_path / "no_curve"), output=tmp_path / "glob.png").main()
    assert (tmp_path / "glob.png").is_file()
    with pytest.raises(ExportError, match="None of .*no_curve has a metrics.jsonl"):
        PlotCommand(runs=(tmp_path / "no_curve",), output=tmp_path / "z.png").main()
    with pytest.raises(ExportError, match="fid"):
        PlotCommand(runs=tuple(runs), output=tmp_path / "y.png", metrics=("fid",)).main()


def test_plotting_leaves_the_callers_matplotlib_as_it_was(tmp_path: Path) -> None:
    """A notebook or a long process (ablate) that draws curves keeps its backend and holds no figure afterwards."""
    import matplotlib
    from matplotlib import pyplot

    run = tmp_path / "run"
    run.mkdir()
    (run / METRICS_FILENAME).write_text(json.dumps({"images_seen": 0, "wall_seconds": 0.0, "swd": 1.0}) + "\n")
    backend = matplotlib.get_backend()
    pyplot.switch_backend("svg")
    try:
        PlotCommand(runs=(run,), output=tmp_path / "curves.png").main()
        assert matplotlib.get_backend() == "svg" and pyplot.get_fignums() == []
    finally:
        pyplot.switch_backend(backend)
    with Image.open(tmp_path / "curves.png") as image:
        assert image.format == "PNG"


def test_samples_rendered_elsewhere_score_as_ns_eval_scores(tmp_path: Path, stand_in_weights: Path) -> None:
    config = curve_config(tmp_path, iterations=2, num_generated=12, kid_subset_size=6, kid_subsets=3,
                          inception_weights=stand_in_weights, max_real_images=10)
    config = replaced(config, quality_curve=QualityCurveConfig(interval_images=0))
    train(config)
    config_path = config.get_base_dir() / "config.yml"
    samples = tmp_path / "samples.zip"
    RenderSamplesCommand(load_config=config_path, output=samples).main()
    with zipfile.ZipFile(samples) as archive:
        names = archive.namelist()
        protocol = json.loads(archive.read("samples.json"))
    assert len([name for name in names if name.endswith(".png")]) == 12 and protocol["num_images"] == 12
    assert protocol["samples_per_ray"] == 8, "the run's training count, as ns-eval renders"

    _, pipeline, _, _ = eval_setup(config_path, test_mode="test")  # as ns-eval loads a run
    expected = pipeline.get_average_eval_image_metrics()
    scored = ScoreCommand(samples=samples, load_config=config_path, inception_weights=stand_in_weights).main()
    # Inception sees 8-bit images either way; SWD sees the float renders in ns-eval and their 8-bit PNGs here.
    # The run's protocol: its 10 real images, its KID subsets and seed.
    assert scored["fid"] == pytest.approx(expected["fid"], rel=1e-4)
    assert scored["kid"] == pytest.approx(expected["kid"], rel=1e-4)
    assert scored["swd"] == pytest.approx(expected["swd"], rel=0.05)
    assert scored["num_generated"] == 12 and scored["num_real"] == expected["num_real"] == 10

    finer = tmp_path / "finer.zip"
    RenderSamplesCommand(load_config=config_path, output=finer, num_images=2, num_render_samples=16).main()
    with zipfile.ZipFile(finer) as archive, zipfile.ZipFile(samples) as default:
        assert json.loads(archive.read("samples.json"))["samples_per_ray"] == 16
        assert archive.read("000000.png") != default.read("000000.png"), "the same seed, sampled finer"
    with pytest.raises(ExportError, match="--num-render-samples must be at least 2"):
        RenderSamplesCommand(load_config=config_path, output=tmp_path / "one.zip", num_render_samples=1).main()
    with pytest.raises(ExportError, match="exactly one"):
        ScoreCommand(samples=samples).main()
    with pytest.raises(ExportError, match="already exists"):
        RenderSamplesCommand(load_config=config_path, output=samples).main()
    (tmp_path / "notes.txt").write_text("keep me", encoding="utf8")
    with pytest.raises(ExportError, match="already exists"):
        RenderSamplesCommand(load_config=config_path, output=tmp_path / "notes.txt").main()
    assert (tmp_path / "notes.txt").read_text(encoding="utf8") == "keep me"
    # Samples of two runs in one folder: refused, not resized to the first one's size and scored together.
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    with zipfile.ZipFile(samples) as archive:
        for name in [name for name in names if name.endswith(".png")][:4]:
            (mixed / Path(name).name).write_bytes(archive.read(name))
    Image.new("RGB", (8, 8)).save(mixed / "other_run.png")
    with pytest.raises(ExportError, match=r"not all one size: 4 at 16x16 .*, 1 at 8x8 \(e.g. other_run.png\)"):
        ScoreCommand(samples=mixed, load_config=config_path, inception_weights=stand_in_weights).main()


def test_scoring_against_a_run_whose_images_moved_says_to_score_against_a_copy(tmp_path: Path) -> None:
    config = micro_config(tmp_path, data=str(tmp_path / "moved_away"))
    config.save_config()
    with pytest.raises(DatasetError, match="not there any more.*--data COPY instead of --load-config"):
        training_images(config.get_base_dir() / "config.yml", resolution=16)
