"""CTC speech recognition, text side: normalisation and vocabularies (``text``), CTC decoding with an
optional word n-gram LM (``decode``) and WER/CER (``metrics``).

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
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
