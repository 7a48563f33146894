"""Evaluation of x4 SR models and degradation models (see docs and each module).

* :mod:`~ddnsr.evaluation.pairing` — :class:`Pair` (LR file/array + optional HR), pairing files by name,
  the reference image of each pair;
* :mod:`~ddnsr.evaluation.scoring` — :func:`evaluate_sr` / :func:`evaluate_degradation` on lists of pairs,
  :class:`Method` (bicubic up and down are ordinary methods), per-image rows and averages;
* :mod:`~ddnsr.evaluation.report` — Markdown / CSV / JSON report and crop pictures;
* :mod:`~ddnsr.evaluation.folders` — :func:`evaluate`: folders in, report out (``ddnsr evaluate``);
* :mod:`~ddnsr.evaluation.settings` — :class:`Settings`, the one home of the defaults.

Names are imported on first use, so ``import ddnsr.evaluation.settings`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ddnsr.evaluation.folders import evaluate
    from ddnsr.evaluation.pairing import Pair, pairs_from_folders
    from ddnsr.evaluation.scoring import (
        BICUBIC_DOWN,
        BICUBIC_UP,
        Method,
        Scores,
        evaluate_degradation,
        evaluate_sr,
    )
    from ddnsr.evaluation.settings import Settings

_HOMES = {
    "evaluate": "folders",
    "Pair": "pairing",
    "pairs_from_folders": "pairing",
    "BICUBIC_DOWN": "scoring",
    "BICUBIC_UP": "scoring",
    "Method": "scoring",
    "Scores": "scoring",
    "evaluate_degradation": "scoring",
    "evaluate_sr": "scoring",
    "Settings": "settings",
}

__all__ = [
    "BICUBIC_DOWN",
    "BICUBIC_UP",
    "Method",
    "Pair",
    "Scores",
    "Settings",
    "evaluate",
    "evaluate_degradation",
    "evaluate_sr",
    "pairs_from_folders",
]


def __getattr__(name: str):
    """Import a public name from its module when it is first used."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ddnsr.evaluation.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
