"""CTC speech recognition on an encoder: normalisation and vocabularies (``text``), the model in its
three modes (``model``), training (``train``), saved models (``store``), CTC decoding with an optional
word n-gram LM (``decode``), decoding a split (``infer``), WER/CER (``metrics``) and RESULTS.md
(``results``).

Imports are lazy: ``from speechssl.downstream.asr import CharVocab`` loads only the module it needs."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "normalize_text": "speechssl.downstream.asr.text",
    "normalize_generic": "speechssl.downstream.asr.text",
    "Vocab": "speechssl.downstream.asr.text",
    "CharVocab": "speechssl.downstream.asr.text",
    "SentencePieceVocab": "speechssl.downstream.asr.text",
    "ctc_greedy": "speechssl.downstream.asr.decode",
    "ctc_prefix_beam_search": "speechssl.downstream.asr.decode",
    "WordNgramLM": "speechssl.downstream.asr.decode",
    "edit_ops": "speechssl.downstream.asr.metrics",
    "wer": "speechssl.downstream.asr.metrics",
    "cer": "speechssl.downstream.asr.metrics",
    "error_rates": "speechssl.downstream.asr.metrics",
    "EditCounts": "speechssl.downstream.asr.metrics",
    "ErrorRates": "speechssl.downstream.asr.metrics",
    "AsrEncoderConfig": "speechssl.downstream.asr.model",
    "HeadConfig": "speechssl.downstream.asr.model",
    "CTCModel": "speechssl.downstream.asr.model",
    "build_ctc_model": "speechssl.downstream.asr.model",
    "AsrConfig": "speechssl.downstream.asr.train",
    "AsrTrainer": "speechssl.downstream.asr.train",
    "load_ctc_model": "speechssl.downstream.asr.store",
    "decode_split": "speechssl.downstream.asr.infer",
    "write_results": "speechssl.downstream.asr.results",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
