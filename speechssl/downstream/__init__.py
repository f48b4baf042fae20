"""Downstream tasks on top of the self-supervised encoders: ``asr`` (CTC speech recognition), ``sv``
(speaker verification), ``er`` (emotion recognition); ``upstream``, ``trainer``, ``store`` are what they share.

Kept import-free: ``from speechssl.downstream.asr.text import CharVocab`` loads only what it needs."""
