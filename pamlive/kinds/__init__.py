"""Output kinds: one module per kind of model output (``base.py`` says what each owns).

``open_kind`` loads the configured model(s) and picks the kind; nothing else in pamlive
asks which kind it holds.
"""

from __future__ import annotations

from pamlive.config import ModelConfig
from pamlive.ensemble import Ensemble, load_ensemble
from pamlive.inference.package import ModelPackage, load_model_package
from pamlive.kinds.base import LiveContext, LiveStages, OutputKind, Uses
from pamlive.kinds.calls import CallsKind
from pamlive.kinds.ensemble import EnsembleKind
from pamlive.kinds.scores import ScoresKind

__all__ = ["CallsKind", "EnsembleKind", "LiveContext", "LiveStages", "OutputKind",
           "ScoresKind", "Uses", "kind_of", "open_kind"]


def open_kind(model: ModelConfig) -> OutputKind:
    """The configured model package, or ``[[model.members]]`` ensemble, as its kind."""
    return kind_of(load_ensemble(model) if model.members else load_model_package(model.path),
                   model)


def kind_of(loaded: ModelPackage | Ensemble, model: ModelConfig) -> OutputKind:
    """The kind of an already loaded package or ensemble, with ``model``'s settings."""
    if isinstance(loaded, Ensemble):
        return EnsembleKind(loaded, model)
    if loaded.events is not None:
        return CallsKind(loaded, loaded.events, model)
    return ScoresKind(loaded, model)
