"""The napari plugin, headless: Qt offscreen and a ViewerModel (no OpenGL canvas)."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
napari = pytest.importorskip("napari")
pytest.importorskip("qtpy")

from napari.components import ViewerModel  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

from cryosam.eval.metrics import score_picks  # noqa: E402
from cryosam.io.star import read_star  # noqa: E402
from cryosam.napari._core import NEGATIVE, POSITIVE  # noqa: E402
from cryosam.napari._reader import napari_get_reader  # noqa: E402
from cryosam.napari._widget import CryosamWidget  # noqa: E402
from cryosam.simulate import write_simulation  # noqa: E402
from tests.conftest import small_sim  # noqa: E402


@pytest.fixture(scope="module")
def app():
    return QApplication.instance() or QApplication([])


@pytest.fixture(scope="module")
def sim_file(tmp_path_factory):
    sim = small_sim((48, 112, 112), {"ribosome": 0.05, "ball": 0.01}, seed=5)
    root = tmp_path_factory.mktemp("napari")
    write_simulation(sim, root, overwrite=True)
    return root / "tomogram.mrc", sim


def _wait(widget, app, timeout=120.0):
    t0 = time.time()
    while widget.busy and time.time() - t0 < timeout:
        app.processEvents()
        time.sleep(0.01)
    app.processEvents()
    assert not widget.busy, "the worker did not finish"


def _viewer_with(sim_file):
    path, sim = sim_file
    reader = napari_get_reader(str(path))
    assert reader is not None and napari_get_reader("notes.txt") is None
    ((data, kwargs, kind),) = reader(str(path))
    assert kind == "image" and tuple(kwargs["scale"]) == (10.0, 10.0, 10.0)
    viewer = ViewerModel()
    viewer.add_image(data, **kwargs)
    return viewer, sim


def _central(sim) -> np.ndarray:
    ribos = sim.centres("ribosome")
    return ribos[np.argmin(np.linalg.norm(ribos - np.asarray(sim.tomogram.shape) / 2, axis=1))]


def test_widget_find_all_filter_and_export(app, sim_file, tmp_path):
    viewer, sim = _viewer_with(sim_file)
    widget = CryosamWidget(viewer)
    assert widget.image_box.currentText() == "tomogram"
    widget.diameter.setValue(290.0)
    widget.class_edit.setText("ribosome")
    widget.add_prompt_layers()
    assert {POSITIVE, NEGATIVE} <= {layer.name for layer in viewer.layers}
    viewer.layers[POSITIVE].add(_central(sim))  # data coordinates = voxels of the image
    assert list(viewer.layers[POSITIVE].features["class"]) == ["ribosome"]
    stages = []
    widget._relay.said.connect(stages.append)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        widget.run("find_all")
        assert widget.busy and widget.cancel_btn.isEnabled()  # the viewer is not blocked
        _wait(widget, app)
    assert widget.last_error is None, widget.last_error
    assert "matched" in stages and "prompts segmented" in stages  # the user sees the stages
    assert not [w for w in caught if "out_of_slice_display" in str(w.message)]
    picks_layer = viewer.layers["cryosam picks"]
    masks = viewer.layers["cryosam masks"]
    assert masks.data.shape == sim.tomogram.shape and masks.data.max() >= 5
    zyx = np.asarray(picks_layer.data)
    s = score_picks(zyx, sim.centres("ribosome"), 14.0)
    assert s.f1 > 0.7, s.as_row()
    assert "ribosome" in widget.status.text()
    # each pick's orientation: RELION angles in the features, a vector per pick, the average
    assert {"rot", "tilt", "psi"} <= set(picks_layer.features.columns)
    assert len(viewer.layers["cryosam orientations"].data) == len(zyx)
    assert viewer.layers["cryosam average ribosome"].data.ndim == 3
    # the score slider hides weak picks, and exports follow it
    scores = np.asarray(picks_layer.features["score"])
    widget.slider.setValue(int(1000 * np.median(scores)))
    shown = int(np.sum(picks_layer.shown))
    assert 0 < shown < len(scores)
    widget.export_picks(tmp_path / "picks.csv")
    assert len(pd.read_csv(tmp_path / "picks.csv")) == shown
    widget.export_picks(tmp_path / "picks.star")
    assert len(read_star(tmp_path / "picks.star")) == shown
    widget.export_picks(tmp_path / "picks5.star", relion5=True)
    assert "rlnCenteredCoordinateXAngst" in (tmp_path / "picks5.star").read_text()
    star5 = read_star(tmp_path / "picks5.star", sim.tomogram.shape, 10.0)
    star3 = read_star(tmp_path / "picks.star")
    assert np.allclose(star5.zyx, star3.zyx, atol=0.01)  # the same picks, either convention
    widget.export_masks(tmp_path / "masks.mrc")
    import mrcfile

    with mrcfile.open(tmp_path / "masks.mrc") as m:
        assert m.data.shape == sim.tomogram.shape and float(m.voxel_size.x) == 10.0


def test_widget_segments_one_particle_and_reports_bad_input(app, sim_file):
    viewer, sim = _viewer_with(sim_file)
    widget = CryosamWidget(viewer)
    widget.diameter.setValue(290.0)
    widget.run("segment")  # no prompt layer yet: a message, no crash
    assert not widget.busy and "error" in widget.status.text()
    widget.add_prompt_layers()
    p = _central(sim)
    viewer.layers[POSITIVE].add(p)
    widget.run("segment")
    _wait(widget, app)
    labels = viewer.layers["cryosam instances"].data
    assert labels[tuple(np.round(p).astype(int))] == 1
    assert 0.3 < (labels == 1).sum() / (4 / 3 * np.pi * 14.5**3) < 2.0


def test_manifest_is_valid_and_points_at_real_code():
    npe2 = pytest.importorskip("npe2")
    import importlib

    import cryosam.napari

    path = Path(cryosam.napari.__file__).with_name("napari.yaml")
    manifest = npe2.PluginManifest.from_file(path)
    for cmd in manifest.contributions.commands:
        module, attr = cmd.python_name.split(":")
        assert callable(getattr(importlib.import_module(module), attr)), cmd.id
    assert manifest.contributions.readers[0].filename_patterns


def test_the_napari_extra_installs_a_viewer_that_starts():
    """napari alone brings no Qt binding: 'pip install cryosam[napari]' would give a
    viewer that cannot open a window."""
    from pathlib import Path

    import tomllib

    meta = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    extra = meta["project"]["optional-dependencies"]["napari"]
    bindings = ("[pyqt5]", "[pyqt6]", "[pyside2]", "[pyside6]", "[all]", "pyqt5", "pyside")
    assert any(b in req.lower() for req in extra for b in bindings), extra


def test_cancel_stops_the_run_and_changes_nothing(app, sim_file):
    viewer, sim = _viewer_with(sim_file)
    widget = CryosamWidget(viewer)
    widget.diameter.setValue(290.0)
    widget.add_prompt_layers()
    viewer.layers[POSITIVE].add(_central(sim))
    widget.run("find_all")
    widget.cancel()
    _wait(widget, app)
    assert widget.last_error == "cancelled" and "cancelled" in widget.status.text()
    assert "cryosam picks" not in viewer.layers and not widget.cancel_btn.isEnabled()


def test_each_class_can_have_its_own_diameter():
    from cryosam.io.prompts import Prompt
    from cryosam.napari._core import _diameters

    prompts = [Prompt((1, 2, 3), "ribosome"), Prompt((4, 5, 6), "proteasome")]
    assert _diameters(prompts, 250.0, 10.0) == {"ribosome": 25.0, "proteasome": 25.0}
    both = _diameters(prompts, 250.0, 10.0, "proteasome=160")
    assert both == {"ribosome": 25.0, "proteasome": 16.0}
