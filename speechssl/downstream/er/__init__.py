"""Emotion recognition (any utterance classification): pooling + MLP on an upstream (encoder,
random encoder, MFCC or fbank) with class-balanced training; WA, UA, macro-F1, confusion matrix.

Names are loaded lazily: ``from speechssl.downstream.er import ErTrainer``."""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ErConfig": "speechssl.downstream.er.train",
    "ErTrainer": "speechssl.downstream.er.train",
    "load_er_model": "speechssl.downstream.er.train",
    "ErHeadConfig": "speechssl.downstream.er.model",
    "UtteranceClassifier": "speechssl.downstream.er.model",
    "evaluate_split": "speechssl.downstream.er.infer",
    "classification_metrics": "speechssl.downstream.er.metrics",
    "confusion_table": "speechssl.downstream.er.metrics",
    "plot_confusion": "speechssl.downstream.er.metrics",
    "write_results": "speechssl.downstream.er.results",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
