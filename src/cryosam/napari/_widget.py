"""The cryosam dock widget: prompts in points layers, runs in a worker thread."""

from __future__ import annotations

import inspect

import numpy as np
from napari.layers import Image, Points
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from cryosam.config import Config
from cryosam.io.figures import class_colour
from cryosam.napari import _core
from cryosam.napari._core import NEGATIVE, POSITIVE

PICK_FILTERS = (
    "Picks as CSV (*.csv)",
    "RELION 3 STAR, pixels (*.star)",
    "RELION 5 STAR, centred Å (*.star)",
    "copick JSON (*.json)",
)


class _Relay(QObject):
    """Carries the worker thread's stage lines to the widget (Qt queues them across threads)."""

    said = Signal(str)


def _across_slices() -> dict:
    """How a points layer shows a particle beyond its own slice: a circle shrinking away from
    its centre (napari >= 0.9: ``projection_mode``; before, ``out_of_slice_display``)."""
    if "projection_mode" in inspect.signature(Points.__init__).parameters:
        return {"projection_mode": "rescale_spherical"}
    return {"out_of_slice_display": True}


class CryosamWidget(QWidget):
    """Click particles, segment one or find all like them, filter by score, export.

    1. choose the tomogram, press *Add prompt layers*, click points on particles in the
       'cryosam positive' layer (the class field names the class of new points) and,
       optionally, on things you do not want in 'cryosam negative';
    2. *Segment this particle* or *Find all like these* (runs in the background; the status
       line follows its stages, *Cancel* stops it at the next one);
    3. move the score slider to hide weak picks; export picks (CSV, RELION 3 or RELION 5
       STAR, copick JSON) and masks (MRC).
    """

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.result: _core.Result | None = None
        self.worker = None
        self.busy = False
        self.last_error: str | None = None

        self.image_box = QComboBox()
        self.class_edit = QLineEdit("particle")
        self.diameter = QDoubleSpinBox(minimum=5.0, maximum=10000.0, value=250.0, suffix=" Å")
        self.diameter.setToolTip("Approximate particle diameter (±30 % is fine).")
        self.per_class = QLineEdit("")
        self.per_class.setPlaceholderText("e.g. ribosome=250, proteasome=160")
        self.per_class.setToolTip(
            "Diameters (Å) of some classes, when they differ from the one above"
        )
        self.voxel_size = QDoubleSpinBox(minimum=0.0, maximum=1000.0, value=0.0, suffix=" Å")
        self.voxel_size.setSpecialValueText("from file")
        self.invert = QComboBox()
        self.invert.addItems(["auto", "yes", "no"])
        self.invert.setToolTip("yes: protein is dark (raw tomograms); auto detects it.")
        self.extended = QCheckBox("membrane / filament (extended)")
        self.add_btn = QPushButton("Add prompt layers")
        self.segment_btn = QPushButton("Segment this particle")
        self.find_btn = QPushButton("Find all like these")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.setToolTip("Stop the run at its next stage")
        self._cancel = False
        self._relay = _Relay()
        self._relay.said.connect(self._stage)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, 1000)
        self.slider_label = QLabel("score ≥ 0.000")
        self.export_picks_btn = QPushButton("Export picks…")
        self.export_masks_btn = QPushButton("Export masks…")

        self._lay_out()

        self.add_btn.clicked.connect(self.add_prompt_layers)
        self.segment_btn.clicked.connect(lambda: self.run("segment"))
        self.find_btn.clicked.connect(lambda: self.run("find_all"))
        self.cancel_btn.clicked.connect(self.cancel)
        self.slider.valueChanged.connect(self._filter_by_score)
        self.class_edit.textChanged.connect(self._set_class_default)
        self.export_picks_btn.clicked.connect(lambda: self._export_dialog("picks"))
        self.export_masks_btn.clicked.connect(lambda: self._export_dialog("masks"))
        self.viewer.layers.events.inserted.connect(self._refresh_images)
        self.viewer.layers.events.removed.connect(self._refresh_images)
        self._refresh_images()

    def _lay_out(self):
        """The form, the buttons, the score slider and the export row, top to bottom."""
        form = QFormLayout()
        form.addRow("tomogram", self.image_box)
        form.addRow("class of new points", self.class_edit)
        form.addRow("diameter", self.diameter)
        form.addRow("per class", self.per_class)
        form.addRow("voxel size", self.voxel_size)
        form.addRow("protein dark", self.invert)
        form.addRow(self.extended)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        for w in (
            self.add_btn,
            self.segment_btn,
            self.find_btn,
            self.cancel_btn,
            self.progress,
            self.status,
        ):
            layout.addWidget(w)
        row = QHBoxLayout()
        row.addWidget(self.slider)
        row.addWidget(self.slider_label)
        layout.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.export_picks_btn)
        row.addWidget(self.export_masks_btn)
        layout.addLayout(row)
        layout.addStretch()

    # --- layers ---------------------------------------------------------------------
    def _images(self):
        return [layer for layer in self.viewer.layers if isinstance(layer, Image)]

    def _refresh_images(self, *_):
        current = self.image_box.currentText()
        self.image_box.clear()
        names = [layer.name for layer in self._images()]
        self.image_box.addItems(names)
        if current in names:
            self.image_box.setCurrentText(current)

    def image_layer(self):
        name = self.image_box.currentText()
        for layer in self._images():
            if layer.name == name:
                return layer
        raise _core.CryosamError("open a tomogram first (File > Open, or the sample data)")

    def _layer(self, name):
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def add_prompt_layers(self):
        """Points layers for positive and negative prompts, on the tomogram's grid."""
        image = self.image_layer()
        for name, colour in ((POSITIVE, "lime"), (NEGATIVE, "magenta")):
            if name in self.viewer.layers:
                continue
            layer = self.viewer.add_points(
                np.zeros((0, 3)),
                name=name,
                ndim=3,
                scale=image.scale,
                translate=image.translate,
                size=8,
                face_color=colour,
                features={"class": np.array([], dtype=object)},
            )
            layer.feature_defaults["class"] = self.class_edit.text() or "particle"
            layer.mode = "add"
        self.viewer.layers.selection.active = self.viewer.layers[POSITIVE]

    def _set_class_default(self, text):
        layer = self._layer(POSITIVE)
        if layer is not None:
            layer.feature_defaults["class"] = text or "particle"

    # --- running --------------------------------------------------------------------
    def _inputs(self):
        image = self.image_layer()
        vs = self.voxel_size.value() or _core.voxel_size_of(image)
        prompts = _core.prompts_from_layers(image, self._layer(POSITIVE), self._layer(NEGATIVE))
        if not any(not p.negative for p in prompts):
            raise _core.CryosamError(
                "no prompt: press 'Add prompt layers' and click a particle in 'cryosam positive'"
            )
        config = Config(invert=self.invert.currentText())
        return (  # the volume is read in the worker: a large one must not stall the viewer
            image.data,
            vs,
            prompts,
            self.diameter.value(),
            config,
            self.extended.isChecked(),
            image.name,
            self.per_class.text(),
        )

    def run(self, what: str):
        """Start ``segment`` or ``find_all`` in a worker thread (the viewer stays live)."""
        if self.busy:
            return
        try:
            args = self._inputs()
        except Exception as exc:  # bad input: say it in the widget, never a traceback
            self._error(exc)
            return
        fn = _core.run_segment if what == "segment" else _core.run_find_all
        self.busy, self.last_error, self._cancel = True, None, False
        self.progress.setRange(0, 0)  # busy
        self.status.setText("segmenting…" if what == "segment" else "finding all…")
        for b in (self.segment_btn, self.find_btn):
            b.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        # errors go to the widget (left to the worker, they are raised in the viewer's thread)
        slots = {"returned": self._show, "errored": self._error, "finished": self._done}
        self.worker = create_worker(fn, *args, progress=self._heard, _connect=slots)

    def _heard(self, stage="") -> None:
        """The run's progress callback (worker thread): relay the stage, or stop the run
        when Cancel was pressed."""
        if self._cancel:
            raise _core.Cancelled("cancelled")
        if isinstance(stage, str) and stage:
            self._relay.said.emit(stage)

    def _stage(self, stage: str) -> None:
        self.status.setText(f"{stage}…")

    def cancel(self):
        """Stop the running search at its next stage (nothing is shown of it)."""
        if self.busy:
            self._cancel = True
            self.status.setText("cancelling at the next stage…")

    def _done(self):
        self.busy = False
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        for b in (self.segment_btn, self.find_btn):
            b.setEnabled(True)
        self.cancel_btn.setEnabled(False)

    def _error(self, exc):
        if isinstance(exc, _core.Cancelled):
            self.last_error = "cancelled"
            self.status.setText("cancelled: nothing was changed")
            return
        self.last_error = str(exc)
        self.status.setText(f"error: {exc}")
        show_error(f"cryosam: {exc}")

    def _show(self, result: _core.Result):
        self.result = result
        image = self.image_layer()
        name = "cryosam masks" if result.kind != "segment" else "cryosam instances"
        if name in self.viewer.layers:
            self.viewer.layers[name].data = result.labels
        else:
            self.viewer.add_labels(
                result.labels, name=name, scale=image.scale, translate=image.translate, opacity=0.5
            )
        if result.picks is not None:
            self._show_picks(result.picks, image)
            self._show_orientations(result.picks, image)
        self._show_averages(result.averages, image)
        self.status.setText(result.message)

    def _show_orientations(self, picks, image):
        """Each pick's orientation: its reference's z axis, turned, half a diameter long."""
        name = "cryosam orientations"
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        vs = float(np.asarray(image.scale)[-1])
        vectors = _core.orientation_vectors(picks, 0.5 * self.diameter.value() / max(vs, 1.0))
        if vectors is not None:
            self.viewer.add_vectors(
                vectors, name=name, scale=image.scale, translate=image.translate,
                edge_width=1.0, edge_color="yellow",
            )  # fmt: skip

    def _show_averages(self, averages, image):
        """Each class's aligned average, beside the tomogram (past its x edge)."""
        x0 = float(image.data.shape[-1]) + 10.0
        for cls, avg in (averages or {}).items():
            name = f"cryosam average {cls}"
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
            scale = np.asarray(image.scale)[-3:]
            shift = np.asarray(image.translate)[-3:] + scale * np.array([0.0, 0.0, x0])
            self.viewer.add_image(avg, name=name, scale=scale, translate=shift, colormap="gray")
            x0 += avg.shape[-1] + 10.0

    def _show_picks(self, picks, image):
        classes = sorted(set(picks.class_name))
        colours = [class_colour(classes.index(c) + 1) for c in picks.class_name]
        features = {"score": picks.score, "class": picks.class_name}
        if picks.angles is not None:  # RELION angles, in the layer's feature table
            features.update(rot=picks.angles[:, 0], tilt=picks.angles[:, 1], psi=picks.angles[:, 2])
        vs = float(np.asarray(image.scale)[-1])
        size = self.diameter.value() / (vs if vs > 1 else 1.0)
        if "cryosam picks" in self.viewer.layers:
            self.viewer.layers.remove("cryosam picks")
        self.viewer.add_points(
            picks.zyx,
            name="cryosam picks",
            scale=image.scale,
            translate=image.translate,
            features=features,
            size=size,
            face_color="transparent",
            border_color=colours,
            border_width=0.08,
            **_across_slices(),
        )
        self._filter_by_score(self.slider.value())

    def threshold(self) -> float:
        return self.slider.value() / 1000.0

    def _filter_by_score(self, value):
        self.slider_label.setText(f"score ≥ {value / 1000:.3f}")
        layer = self._layer("cryosam picks")
        if layer is not None:
            layer.shown = np.asarray(layer.features["score"]) >= value / 1000.0

    # --- export ---------------------------------------------------------------------
    def shown_picks(self):
        picks = self.result.picks if self.result else None
        if picks is None:
            raise _core.CryosamError("nothing to export yet: run 'Find all like these'")
        return picks.select(np.asarray(picks.score) >= self.threshold())

    def export_picks(self, path, relion5: bool = False):
        image = self.image_layer()
        vs = self.voxel_size.value() or _core.voxel_size_of(image)
        picks = self.shown_picks()
        return _core.export_picks(picks, path, image.data.shape, vs, image.name, relion5)

    def export_masks(self, path):
        if self.result is None:
            raise _core.CryosamError("nothing to export yet: segment or find all first")
        image = self.image_layer()
        vs = self.voxel_size.value() or _core.voxel_size_of(image)
        return _core.export_masks(self.result.labels, path, vs)

    def _export_dialog(self, what):
        filters = ";;".join(PICK_FILTERS) if what == "picks" else "MRC (*.mrc)"
        path, chosen = QFileDialog.getSaveFileName(self, f"Export {what}", "", filters)
        if not path:
            return
        try:
            if what == "picks":
                written = self.export_picks(path, relion5=chosen == PICK_FILTERS[2])
            else:
                written = self.export_masks(path)
            self.status.setText(f"wrote {written}")
        except Exception as exc:
            self._error(exc)
