"""Speaker verification: an x-vector head with AAM-softmax on an upstream (encoder, random encoder,
MFCC or fbank), cosine scoring with optional AS-norm, EER, minDCF and DET curves.

Names are loaded lazily: ``from speechssl.downstream.sv import SvTrainer``."""

from __future__ import annotations

import importlib

_EXPORTS = {
    "SvConfig": "speechssl.downstream.sv.train",
    "SvTrainer": "speechssl.downstream.sv.train",
    "load_sv_model": "speechssl.downstream.sv.train",
    "SvHeadConfig": "speechssl.downstream.sv.model",
    "XVectorHead": "speechssl.downstream.sv.model",
    "AAMSoftmax": "speechssl.downstream.sv.model",
    "evaluate_trials": "speechssl.downstream.sv.infer",
    "read_trials": "speechssl.downstream.sv.scoring",
    "cosine_scores": "speechssl.downstream.sv.scoring",
    "as_norm": "speechssl.downstream.sv.scoring",
    "compute_eer": "speechssl.downstream.sv.scoring",
    "compute_min_dcf": "speechssl.downstream.sv.scoring",
    "sv_metrics": "speechssl.downstream.sv.scoring",
    "plot_det": "speechssl.downstream.sv.scoring",
    "write_results": "speechssl.downstream.sv.results",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
