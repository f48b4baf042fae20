"""sentencepiece training in memory, shared by the unit BPE (:mod:`speechssl.tokens.bpe`) and the
ASR vocabularies (:mod:`speechssl.downstream.asr.text`)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable


def train_sentencepiece(sentences: Iterable[str], vocab_size: int, *, reserved: int = 0, what: str = "the model can hold", **options) -> bytes:
    """Train on ``sentences`` (an iterable, read once) and return the model's bytes: sentencepiece
    writes no files. ``options`` go to ``SentencePieceTrainer.train``. A ``vocab_size`` the data
    cannot fill raises ValueError with the largest possible one, counting ``reserved`` ids the
    caller adds itself (a CTC blank, say)."""
    import sentencepiece as spm

    proto = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_writer=proto, vocab_size=vocab_size, **options)
    except RuntimeError as e:
        m = re.search(r"Vocabulary size too high \(\d+\)\. Please set it to a value <= (\d+)", str(e))
        if m:
            raise ValueError(
                f"vocab_size={vocab_size + reserved} is too large for this data: {what} at most "
                f"{int(m.group(1)) + reserved}; use a smaller vocab_size or more data"
            ) from None
        raise
    return proto.getvalue()
