"""The typed records that pass between the stages of a pick.

A class's search produces :class:`Candidates` (positions, scores, a :class:`Status` per
candidate); the classes' tables are joined into one for the competition between classes,
and every accepted candidate that survives segmentation becomes a :class:`PickEntry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from cryosam.method.matching import nms
from cryosam.method.propagate import InstanceMask


class Status(str, Enum):
    """What happened to a candidate (the ``status`` column of ``candidates.csv``)."""

    CANDIDATE = "candidate"
    """Still in play (no decision yet)."""
    PROMPT = "prompt"
    """It is one of the prompted particles."""
    NEGATIVE = "negative"
    """It resembles a negative prompt more than its class."""
    DUPLICATE = "duplicate"
    """Centred, it landed on a better candidate of its class."""
    ACCEPTED = "accepted"
    """It passed the class's cut."""
    BELOW_CUT = "below_cut"
    """It scored below the class's cut."""
    OTHER_CLASS = "other_class"
    """A better candidate of another class holds the same particle."""
    SIZE_MISMATCH = "size_mismatch"
    """Its mask volume is far from the prompted masks'."""
    NEAR_FIDUCIAL = "near_fiducial"
    """It lies on or beside a gold fiducial (a bead, its elongation or its streaks)."""
    ON_MEMBRANE = "on_membrane"
    """Its centre lies on a membrane (a dense sheet, not a particle)."""
    STRAY = "stray"
    """Accepted, then dropped: it and a few others form a low mode of score and agreement
    with the class's average (``pick_strays``)."""

    def __str__(self) -> str:
        return self.value


def statuses(n: int, status: Status = Status.CANDIDATE) -> np.ndarray:
    """An object array of ``n`` statuses."""
    out = np.empty(n, dtype=object)
    out[:] = status
    return out


@dataclass
class Candidates:
    """Scored candidates of one class, or of every class after :meth:`join`.

    Attributes:
        zyx: ``(N, 3)`` input voxels.
        score: ``(N,)`` the score the cut is made on.
        status: ``(N,)`` :class:`Status` per candidate.
        class_name: ``(N,)`` class names.
        diameter: ``(N,)`` the class's diameter in voxels.
        columns: more ``(N,)`` values per candidate by name (the shape ``correlation`` and
            the feature ``similarity`` when verified), for ``candidates.csv``.
    """

    zyx: np.ndarray
    score: np.ndarray
    status: np.ndarray
    class_name: np.ndarray = field(default=None)  # type: ignore[assignment]
    diameter: np.ndarray = field(default=None)  # type: ignore[assignment]
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.zyx = np.asarray(self.zyx, np.float64).reshape(-1, 3)
        n = len(self.zyx)
        self.score = np.asarray(self.score, np.float64).reshape(n)
        if self.class_name is None:
            self.class_name = np.array([""] * n, dtype=object)
        if self.diameter is None:
            self.diameter = np.zeros(n)

    def __len__(self) -> int:
        return len(self.zyx)

    @property
    def free(self) -> np.ndarray:
        """Candidates still without a decision."""
        return self.status == Status.CANDIDATE

    @property
    def cut_pool(self) -> np.ndarray:
        """The candidates a cut is found on: the free ones and those a negative prompt
        claimed or that lie on a fiducial or a membrane. These are the background the matches
        must stand out from: without them, negatives that remove most of the junk would move
        the cut into the matches (and without the membrane candidates, dev1 proteasome click
        1's scores showed a false valley: F1 0.92 -> 0.54)."""
        background = (Status.NEGATIVE, Status.NEAR_FIDUCIAL, Status.ON_MEMBRANE)
        return self.free | np.isin(self.status, background)

    def cut_at(self, value: float, where=None) -> None:
        """The free candidates (of ``where``, a mask, when given) scoring at least ``value``
        become ``ACCEPTED``, the others ``BELOW_CUT``."""
        free = self.free if where is None else self.free & where
        self.status[free & (self.score >= value)] = Status.ACCEPTED
        self.status[free & (self.score < value)] = Status.BELOW_CUT

    def label(self, name: str, diameter: float) -> Candidates:
        """The same candidates with their class and diameter filled in."""
        n = len(self)
        return Candidates(
            self.zyx,
            self.score,
            self.status,
            np.array([name] * n, dtype=object),
            np.full(n, float(diameter)),
            self.columns,
        )

    @staticmethod
    def join(tables: list[Candidates]) -> Candidates:
        """One table of several classes' candidates, in order."""
        if not tables:
            return Candidates(np.zeros((0, 3)), np.zeros(0), statuses(0))
        cat = np.concatenate
        names = list(dict.fromkeys(k for t in tables for k in t.columns))
        columns = {
            k: cat([t.columns.get(k, np.full(len(t), np.nan)) for t in tables]) for k in names
        }
        return Candidates(
            cat([t.zyx for t in tables]),
            cat([t.score for t in tables]),
            cat([t.status for t in tables]),
            cat([t.class_name for t in tables]),
            cat([t.diameter for t in tables]),
            columns,
        )

    def compete(self, nms_factor: float) -> np.ndarray:
        """Classes compete for a particle: accepted candidates best first; one that lies within
        ``nms_factor`` times the smaller diameter of a kept candidate of another class becomes
        ``OTHER_CLASS``. Returns the indices of the accepted candidates that stay, best first."""
        acc = np.flatnonzero(self.status == Status.ACCEPTED)
        keep = nms(
            self.zyx[acc],
            self.score[acc],
            nms_factor * self.diameter[acc],
            groups=self.class_name[acc],
        )
        lost = np.setdiff1d(acc, acc[keep])
        self.status[lost] = Status.OTHER_CLASS
        return acc[keep]


@dataclass
class PickEntry:
    """One pick before numbering: centre, score, class, diameter and mask (or none)."""

    centre: np.ndarray
    score: float
    class_name: str
    diameter: float
    mask: InstanceMask | None
    row: int = -1
    """The candidate it came from (its row in the joined candidates table; -1 for a prompt)."""
    oversize: bool = False
    """The mask ran into its neighbours (far above its class's size): it is kept only where
    it can be cut back to the class's shape (:mod:`cryosam.method.envelope`)."""


def deduplicate(entries: list[PickEntry], nms_factor: float, n_first: int = 0) -> list[PickEntry]:
    """Drop picks whose centre lies within ``nms_factor`` times the smaller diameter of a
    better one (any class). The first ``n_first`` entries (the prompts) always stay, in order;
    the others are taken best score first."""
    if not entries:
        return []
    keep = nms(
        np.array([e.centre for e in entries]),
        np.array([e.score for e in entries]),
        nms_factor * np.array([e.diameter for e in entries]),
        keep_first=n_first,
    )
    return [entries[i] for i in keep]
