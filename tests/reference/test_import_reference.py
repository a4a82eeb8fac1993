"""Importing HyperNeRFGAN's network pickles: no code from the pickle runs, and the render equals the reference's.

The fixture `tests/fixtures/hypernerfgan_reference_render.pt` was produced outside this project with the public
reference implementation (gmum/HyperNeRFGAN at commit 8a5874d, `training.networks.NeRFGenerator`, on the CPU with
torch 2.14 and the import-time patch `np.float = float`): a randomly initialised generator (z 16, w 16, 2 mapping
layers, 8 target layers of width 32 with the skip after the 5th, FMM rank 4; biases drawn N(0, 0.5) so that the
render has structure), rendered with `G(z, poses=[pose_spherical(30, -30, 4)], scale=False, crop=False,
perturb=False)` at 16x16 with 24 samples per ray (no density noise, no jitter). It holds only derived data: the
generator's tensors under the reference's names, z, the camera and the rendered image.
"""

from __future__ import annotations

import collections
import pickle
import sys
import types
from pathlib import Path
from typing import Any, Dict

import pytest
import torch

from hypernerfgan_ns.errors import CheckpointError
from hypernerfgan_ns.reference.network_pickle import load_network_pickle, state_dict_of
from hypernerfgan_ns.reference.weight_mapping import detect_architecture, reference_to_ours
from hypernerfgan_ns.scripts.import_reference import ImportReferenceCommand
from hypernerfgan_ns.utils.trained_runs import load_trained_pipeline
from nerfstudio.cameras.cameras import Cameras

FIXTURE = Path(__file__).parents[1] / "fixtures" / "hypernerfgan_reference_render.pt"
TOLERANCE = 1e-4
"""Mean absolute difference allowed between our render and the reference's, on [0, 1] images."""
TRAP_SOURCE = "raise RuntimeError('the pickle's embedded source code was executed')"
"""What a persistent object's embedded module source is in the test pickle: running it raises."""


class Persistent:
    """Pickles like a `torch_utils.persistence` object: the reconstruct function, metadata with source and state."""

    def __init__(self, class_name: str, state: Dict[str, Any]) -> None:
        self.class_name, self.state = class_name, state

    def __reduce__(self):
        meta = dict(type="class", version=6, module_src=TRAP_SOURCE, class_name=self.class_name, state=self.state)
        return sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (meta,)


def plain(cls: type, state: Dict[str, Any]) -> Any:
    """An ordinary torch module of the reference (e.g. nn.ModuleList) with the given __dict__: pickles as it would."""
    instance = cls.__new__(cls)
    instance.__dict__.update(state)
    return instance


def module_state(parameters: Dict[str, torch.Tensor], modules: Dict[str, Any], **attributes: Any) -> Dict[str, Any]:
    return dict(
        training=False,
        _parameters=collections.OrderedDict((k, torch.nn.Parameter(v)) for k, v in parameters.items()),
        _buffers=collections.OrderedDict(),
        _modules=collections.OrderedDict(modules),
        **attributes,
    )


def reference_layout(state: Dict[str, torch.Tensor]) -> Dict[str, Any]:
    """The reference's G_ema module tree around a flat state dict, as its training code pickles it."""

    def layer(prefix: str) -> Persistent:
        affine = Persistent(
            "FullyConnectedLayer",
            module_state({k: state[f"{prefix}.affine.{k}"] for k in ("weight", "bias")}, {}, activation="linear"),
        )
        return Persistent(
            "NerfSynthesisLayer",
            module_state({k: state[f"{prefix}.{k}"] for k in ("weight", "bias")}, {"affine": affine}),
        )

    count = len({key.split(".")[2] for key in state if key.startswith("synthesis.pts_linears.")})
    hidden = {str(i): layer(f"synthesis.pts_linears.{i}") for i in range(count)}
    layers = plain(torch.nn.ModuleList, module_state({}, hidden))
    synthesis = Persistent(
        "NerfSynthesisNetwork",
        module_state({}, {"pts_linears": layers, "output_linear": layer("synthesis.output_linear")}, fov=0.69),
    )
    fcs = sorted({key.split(".")[1] for key in state if key.startswith("mapping.")})
    mapping = Persistent(
        "MappingNetwork",
        module_state({}, {fc: Persistent("FullyConnectedLayer", module_state(
            {k: state[f"mapping.{fc}.{k}"] for k in ("weight", "bias")}, {}, activation="lrelu")) for fc in fcs}),
    )
    return Persistent("NeRFGenerator", module_state({}, {"synthesis": synthesis, "mapping": mapping}, z_dim=16))


@pytest.fixture
def fixture() -> Dict[str, Any]:
    return torch.load(FIXTURE, weights_only=True)


@pytest.fixture
def trapped_persistence(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A stand-in `torch_utils.persistence` whose reconstruct function raises, present only while pickling."""
    package = types.ModuleType("torch_utils")
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):
        raise RuntimeError("the pickle's reconstruct function was called")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    package.persistence = persistence
    monkeypatch.setitem(sys.modules, "torch_utils", package)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", persistence)
    return persistence


def write_network_pickle(path: Path, state: Dict[str, torch.Tensor]) -> Path:
    generator = reference_layout(state)
    content = {
        "G": generator, "D": None, "G_ema": generator, "augment_pipe": None, "training_set_kwargs": {"xflip": True}
    }
    path.write_bytes(pickle.dumps(content, protocol=4))
    return path


def reference_camera_rays(fixture: Dict[str, Any]):
    """The reference's camera as a nerfstudio ray bundle: corner-based pixel coordinates, depth-plane near/far."""
    resolution = fixture["resolution"]
    focal = 0.5 * resolution / torch.tan(torch.tensor(0.5 * fixture["fov"]))
    # The reference casts pixel (i, j) through ((i - W/2) / f, -(j - H/2) / f, -1); nerfstudio adds 0.5 to pixel
    # indices, so cx = cy = W/2 + 0.5 gives the same rays.
    camera = Cameras(camera_to_worlds=fixture["camera_to_world"][None], fx=focal, fy=focal,
                     cx=resolution / 2 + 0.5, cy=resolution / 2 + 0.5, width=resolution, height=resolution)
    bundle = camera.generate_rays(camera_indices=0, keep_shape=True)
    cosine = (bundle.directions * -fixture["camera_to_world"][:, 2]).sum(dim=-1, keepdim=True)
    bundle.nears = fixture["near"] / cosine  # the reference's near/far are depths along the camera axis
    bundle.fars = fixture["far"] / cosine
    return bundle


def test_the_test_pickle_would_run_its_code_if_unpickled_normally(tmp_path: Path, fixture, trapped_persistence) -> None:
    path = write_network_pickle(tmp_path / "net.pkl", fixture["state_dict"])
    with pytest.raises(RuntimeError, match="was called"):
        pickle.loads(path.read_bytes())


def test_import_runs_no_code_and_renders_like_the_reference(tmp_path: Path, fixture, trapped_persistence) -> None:
    path = write_network_pickle(tmp_path / "cars_reference.pkl", fixture["state_dict"])
    del sys.modules["torch_utils"], sys.modules["torch_utils.persistence"]  # as on a user's machine
    ImportReferenceCommand(pickle=path, output=tmp_path / "imported", num_samples=fixture["num_samples"]).main()

    config_path = tmp_path / "imported" / "cars_reference" / "hypernerfgan" / "imported" / "config.yml"
    config, pipeline, step = load_trained_pipeline(config_path)
    assert step == 0 and config.pipeline.datamanager.dataparser.preset == "cars"
    assert not config.pipeline.model.eval_mixed_precision, "fp32 renders on a GPU too, as checked here"
    model = pipeline.model.eval()
    generator = model.rendering_generator()
    weights = generator.object_weights(fixture["z"])
    ours = model.render_camera(reference_camera_rays(fixture), generator, weights)["rgb"]
    difference = (ours - fixture["image"]).abs()
    assert difference.mean() < TOLERANCE, f"mean |ours - reference| = {difference.mean():.2e}"
    assert difference.max() < 10 * TOLERANCE
    assert fixture["image"].std() > 0.05, "the reference image has structure to compare"


def test_architecture_is_read_from_the_shapes(fixture) -> None:
    architecture = detect_architecture(fixture["state_dict"])
    assert (architecture.latent_dim, architecture.w_dim, architecture.mapping_layers) == (16, 16, 2)
    assert (architecture.num_hidden_layers, architecture.hidden_width, architecture.skip_layer) == (8, 32, 4)
    assert (architecture.num_octaves, architecture.fmm_rank) == (10, 4)


def test_unexpected_content_is_named_in_the_error(tmp_path: Path, fixture, trapped_persistence) -> None:
    state = dict(fixture["state_dict"])
    without_g_ema = tmp_path / "no_g_ema.pkl"
    content = pickle.dumps({"G": reference_layout(state), "D": None})
    without_g_ema.write_bytes(content)
    with pytest.raises(CheckpointError, match="no 'G_ema'"):
        ImportReferenceCommand(pickle=without_g_ema, output=tmp_path / "out").main()

    missing = {k: v for k, v in state.items() if k != "synthesis.pts_linears.3.affine.weight"}
    with pytest.raises(CheckpointError, match="synthesis.pts_linears.3.affine.weight"):
        reference_to_ours(missing, detect_architecture(missing))

    surprising_pickle = tmp_path / "surprising.pkl"
    surprising_pickle.write_bytes(pickle.dumps({"G_ema": Persistent("NeRFGenerator", module_state(
        {}, {"synthesis": reference_layout(state).state["_modules"]["synthesis"],
             "mapping": reference_layout(state).state["_modules"]["mapping"],
             "views": Persistent("Linear", module_state({"weight": torch.zeros(2, 2)}, {}))}))}))
    with pytest.raises(CheckpointError, match="views.weight"):
        ImportReferenceCommand(pickle=surprising_pickle, output=tmp_path / "out").main()

    not_a_pickle = tmp_path / "page.pkl"
    not_a_pickle.write_text("<html>sign in</html>")
    with pytest.raises(CheckpointError, match="not a readable network pickle"):
        load_network_pickle(not_a_pickle)


def test_state_dict_of_mirrors_module_state_dict_keys(tmp_path: Path, fixture, trapped_persistence) -> None:
    path = write_network_pickle(tmp_path / "net.pkl", fixture["state_dict"])
    content = load_network_pickle(path)
    state = state_dict_of(content["G_ema"])
    assert state.keys() == fixture["state_dict"].keys()
    assert all(torch.equal(state[k], v) for k, v in fixture["state_dict"].items())
