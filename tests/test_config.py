import json

import pytest

from cryosam.config import Config
from cryosam.errors import CryosamError


def test_paper_defaults():
    c = Config()
    assert (c.tau_iou, c.tau_sim, c.pyramid, c.top_k) == (0.5, 0.5, (16, 8, 4), 512)


def test_round_trip_json():
    c = Config(tau_sim=0.3, pyramid=(8, 4), combine="vote")
    again = Config.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c


@pytest.mark.parametrize(
    "changes",
    [
        {"tau_iou": 0},
        {"tau_sim": 2},
        {"pyramid": (4, 8)},
        {"top_k": 0},
        {"combine": "mean"},
        {"invert": "maybe"},
        {"propagation_axes": "zq"},
        {"no_such_key": 1},
    ],
)
def test_invalid_values_refused(changes):
    with pytest.raises(CryosamError):
        Config().replace(**changes)


def test_describe_documents_every_field():
    rows = Config.describe()
    names = [r[0] for r in rows]
    assert "tau_sim" in names and "pyramid" in names
    assert all(doc for name, _, doc in rows if name in ("tau_iou", "tau_sim", "top_k"))


def test_set_overrides_parse_to_each_parameters_type():
    from cryosam.config import Config
    from cryosam.errors import CryosamError

    c = Config().with_overrides(
        ["tau_sim=0.6", "top-k=100", "pyramid=8,4", "invert=yes", "model=none"]
    )
    assert (c.tau_sim, c.top_k, c.pyramid, c.invert, c.model) == (0.6, 100, (8, 4), "yes", None)
    for bad in ("tau_sim", "nope=1", "top_k=1.5", "extra=1", "tau_sim=2"):
        with pytest.raises(CryosamError):
            Config().with_overrides([bad])


def test_parameter_reference_in_docs_is_current():
    """docs/parameters.md is `cryosam params`; regenerate it when a parameter changes."""
    from pathlib import Path

    from cryosam.config import Config

    doc = Path(__file__).resolve().parent.parent / "docs" / "parameters.md"
    assert doc.read_text() == Config.reference_markdown()
    for name, _, _ in Config.describe():
        assert name == "extra" or f"`{name}`" in doc.read_text()
