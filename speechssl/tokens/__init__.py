"""Discrete speech tokens: audio -> units (encoder layer + k-means), de-duplication with durations,
unit BPE (sentencepiece), and resumable extraction over a corpus.

Imports are lazy: ``from speechssl.tokens import Tokenizer`` loads only what it needs."""

from __future__ import annotations

_EXPORTS = {
    "Tokenizer": "speechssl.tokens.tokenizer",
    "dedup": "speechssl.tokens.bpe",
    "UnitBPE": "speechssl.tokens.bpe",
    "ExtractConfig": "speechssl.tokens.extract",
    "extract_tokens": "speechssl.tokens.extract",
    "read_tokens_jsonl": "speechssl.tokens.extract",
    "read_tokens_npz": "speechssl.tokens.extract",
    "collect_inputs": "speechssl.tokens.inputs",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'speechssl.tokens' has no attribute {name!r}")
