"""Downstream tasks on top of the self-supervised encoders (``asr``: CTC speech recognition).

Kept import-free: ``from speechssl.downstream.asr.text import CharVocab`` loads only what it needs."""
