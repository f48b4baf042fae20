"""Text side of CTC ASR: transcript normalisation and the token vocabularies the CTC head predicts.

Normalisation (:func:`normalize_text`) is per language, for the mini corpus's languages (en, de, es,
fr); :func:`normalize_generic` applies the common rules to any other language. Two vocabularies share
the :class:`Vocab` protocol (``vocab_size``, ``blank`` = 0, ``encode``, ``decode``):

- :class:`CharVocab`: characters, with ``|`` as the visible word separator; saved as JSON.
- :class:`SentencePieceVocab`: sentencepiece unigram or BPE pieces, ids shifted by one so that id 0
  is the CTC blank; saved as the sentencepiece ``.model`` file.

Both expect normalised text and refuse characters they have not seen in training (a ``ValueError``
naming them) rather than mapping them to an ``<unk>`` id: a CTC target with ``<unk>`` teaches the
model to emit it, and an unseen character in a normalised corpus is a data problem worth seeing.

>>> texts = [normalize_text(t, "de") for t in ["Die Straße ist groß.", "Wir müssen gehen!"]]
>>> vocab = CharVocab.build(texts)
>>> vocab.decode(vocab.encode(texts[0]))
'die straße ist groß'
"""

from __future__ import annotations

import json
import logging
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

from speechssl.io import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# normalisation

# apostrophe look-alikes mapped to the ASCII apostrophe: right/left single quotation marks (the
# typographic apostrophe of French and English text), the modifier letter apostrophe, the prime
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'"})
# an apostrophe that is not between two letters ("'quoted'", "dogs' ", "l' homme") is punctuation
_LETTER = r"[^\W\d_]"
_STRAY_APOSTROPHE = re.compile(rf"(?<!{_LETTER})'|'(?!{_LETTER})")


def _keep(ch: str) -> bool:
    # letters, combining marks (left after NFC only where no precomposed letter exists), digits, the
    # apostrophe; everything else (punctuation, symbols, hyphens, quotes, ¿ ¡ « ») becomes a space
    return ch == "'" or unicodedata.category(ch)[0] in "LMN"


def normalize_generic(text: str) -> str:
    """The rules every language shares; the fallback for languages without their own normaliser.

    1. Unicode NFC (composed accents: "é" is one character, as the vocabularies count it).
    2. Apostrophe look-alikes (’ ‘ ʼ ′) become ``'``.
    3. Lower-casing with :meth:`str.lower`, not :meth:`str.casefold`: German "ß" stays "ß" (casefold
       would make it "ss") and capital "ẞ" becomes "ß".
    4. Every character that is not a letter, digit, combining mark or apostrophe becomes a space
       (punctuation, symbols, hyphens: "porte-monnaie" -> "porte monnaie"); an apostrophe is kept only
       inside a word, between two letters ("don't", "l'homme"; "'quoted'" -> "quoted").
    5. Whitespace (any Unicode space, such as French non-breaking spaces) collapsed to one ASCII space,
       none at the ends.

    Accented letters are kept as they are (no transliteration) and digits are not spelled out.
    """
    text = unicodedata.normalize("NFC", text).translate(_APOSTROPHES).lower()
    text = "".join(ch if _keep(ch) else " " for ch in text)
    text = _STRAY_APOSTROPHE.sub(" ", text)
    return " ".join(text.split())


def _normalize_en(text: str) -> str:
    """English: the common rules; contractions and possessives keep their apostrophe ("don't",
    "john's"), a trailing plural-possessive apostrophe ("dogs'") is dropped; accents in loanwords
    ("café") are kept."""
    return normalize_generic(text)


def _normalize_de(text: str) -> str:
    """German: the common rules; nouns lose their capital, "ß" stays (capital "ẞ" becomes "ß"), umlauts
    are kept as letters (no "ae"/"oe"/"ue" spelling); elision apostrophes stay ("geht's")."""
    return normalize_generic(text)


def _normalize_es(text: str) -> str:
    """Spanish: the common rules; the inverted marks "¿" and "¡" are punctuation and removed, "ñ" and
    accented vowels (also "ü" in "pingüino") are kept as letters."""
    return normalize_generic(text)


def _normalize_fr(text: str) -> str:
    """French: the common rules; the typographic apostrophe ’ is ``'`` and elisions stay one word
    ("l’homme" -> "l'homme", "aujourd'hui"); guillemets « » and the (narrow) non-breaking spaces
    before ; : ! ? are removed; "œ" and "æ" stay single letters; hyphenated words are split
    ("c'est-à-dire" -> "c'est à dire")."""
    return normalize_generic(text)


NORMALIZERS: dict[str, Callable[[str], str]] = {
    "en": _normalize_en,
    "de": _normalize_de,
    "es": _normalize_es,
    "fr": _normalize_fr,
}


def normalize_text(text: str, language: str) -> str:
    """Normalise one transcript for CTC training and scoring (see :func:`normalize_generic` for the
    rules, and the ``_normalize_<code>`` functions for what each language relies on).

    ``language``: an ISO 639-1 code in :data:`NORMALIZERS`; any other is a ``ValueError`` (call
    :func:`normalize_generic` directly for another language).

    >>> normalize_text("  Ich weiß, dass   DIE Straße groß ist!", "de")
    'ich weiß dass die straße groß ist'
    >>> normalize_text("« L’homme » est-il là ?", "fr")
    "l'homme est il là"
    """
    try:
        normalizer = NORMALIZERS[language]
    except KeyError:
        raise ValueError(
            f"no text normaliser for language {language!r}; known languages: {', '.join(NORMALIZERS)} "
            f"(normalize_generic applies the common rules to others)"
        ) from None
    return normalizer(text)


# ---------------------------------------------------------------------------------------------
# vocabularies


@runtime_checkable
class Vocab(Protocol):
    """What the CTC head, the decoders and the recipes rely on: ids ``0..vocab_size-1``, id ``blank``
    (always 0) is the CTC blank and never produced by :meth:`encode`; :meth:`decode` skips it."""

    @property
    def vocab_size(self) -> int: ...

    @property
    def blank(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...


BLANK_ID = 0


def _check_ids(ids: Iterable[int], vocab_size: int) -> list[int]:
    out = [int(i) for i in ids]
    bad = [i for i in out if not 0 <= i < vocab_size]
    if bad:
        raise ValueError(f"token ids out of range 0..{vocab_size - 1}: {sorted(set(bad))[:10]}")
    return out


def _unknown_chars_error(unknown: set[str], what: str) -> ValueError:
    shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in sorted(unknown))
    return ValueError(f"characters not in the {what}: {shown}; normalise the text first, or rebuild the vocabulary")


class CharVocab:
    """Character vocabulary for CTC: id 0 the blank, id 1 the word separator, then the characters of the
    training transcripts in sorted order.

    Spaces between words are the separator token (``"|"`` by default), so a word boundary is a visible
    symbol the model predicts; runs of whitespace and spaces at the ends are dropped by :meth:`encode`
    (no leading or trailing separator is added). Unknown characters raise ``ValueError``.
    """

    BLANK_SYMBOL = "<blank>"

    def __init__(self, symbols: Sequence[str], separator: str = "|"):
        """``symbols``: the characters, without blank and separator, each once (see :meth:`build`)."""
        if len(separator) != 1 or separator.isspace():
            raise ValueError(f"separator must be one visible character, found {separator!r}")
        symbols = list(symbols)
        bad = [s for s in symbols if len(s) != 1 or s.isspace() or s == separator]
        if bad or len(set(symbols)) != len(symbols):
            raise ValueError(
                f"symbols must be distinct single non-space characters other than the separator {separator!r}; "
                f"found {bad or 'duplicates'}"
            )
        self.separator = separator
        self.tokens: list[str] = [self.BLANK_SYMBOL, separator, *symbols]  # id -> token
        self._ids = {tok: i for i, tok in enumerate(self.tokens) if i != BLANK_ID}

    @classmethod
    def build(cls, texts: Iterable[str], separator: str = "|") -> CharVocab:
        """The vocabulary of the characters in ``texts`` (normalised training transcripts)."""
        chars: set[str] = set()
        for text in texts:
            chars.update(text)
        chars -= {c for c in chars if c.isspace()}
        if separator in chars:
            raise ValueError(f"the separator {separator!r} occurs in the texts; choose another separator")
        if not chars:
            raise ValueError("no characters in the texts: cannot build a vocabulary")
        return cls(sorted(chars), separator=separator)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def blank(self) -> int:
        return BLANK_ID

    @property
    def separator_id(self) -> int:
        return 1

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text``, the separator between words."""
        s = self.separator
        if s in text:  # a literal separator would come back from decode as a space
            raise ValueError(f"the text contains the word separator {s!r}, which is not a character of the vocabulary")
        joined = s.join(text.split())
        try:
            return [self._ids[c] for c in joined]
        except KeyError:
            raise _unknown_chars_error({c for c in joined if c not in self._ids}, "character vocabulary") from None

    def drop_unknown(self, text: str) -> str:
        """``text`` without the characters this vocabulary cannot encode (whitespace kept)."""
        return "".join(c for c in text if c.isspace() or (c in self._ids and c != self.separator))

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``: blanks skipped, separators become single spaces (none at the ends)."""
        ids = _check_ids(ids, self.vocab_size)
        text = "".join(" " if i == self.separator_id else self.tokens[i] for i in ids if i != BLANK_ID)
        return " ".join(text.split())

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON (atomically)."""
        data = {"type": "char", "blank": self.BLANK_SYMBOL, "separator": self.separator, "tokens": self.tokens}
        atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharVocab:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: character vocabulary not found")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("type") != "char":
            raise ValueError(f"{path}: not a character vocabulary (expected a JSON object with type 'char')")
        tokens, sep = data["tokens"], data["separator"]
        if tokens[:2] != [cls.BLANK_SYMBOL, sep]:
            raise ValueError(
                f"{path}: tokens must start with {cls.BLANK_SYMBOL!r} and the separator, found {tokens[:2]}"
            )
        return cls(tokens[2:], separator=sep)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and self.tokens == other.tokens

    def __repr__(self) -> str:
        return f"CharVocab(vocab_size={self.vocab_size}, separator={self.separator!r})"


class SentencePieceVocab:
    """Sentencepiece subword vocabulary for CTC: our id = sentencepiece id + 1, so id 0 is the blank.

    Sentencepiece's own piece 0 is ``<unk>`` (our id 1, never produced: :meth:`encode` refuses
    characters the model has no piece for); bos, eos and pad are disabled. ``vocab_size`` counts the
    blank: it is the width of the CTC output layer.
    """

    def __init__(self, model_proto: bytes):
        import sentencepiece as spm

        self._proto = bytes(model_proto)
        self._sp = spm.SentencePieceProcessor(model_proto=self._proto)
        meta = "\u2581"  # sentencepiece's whitespace marker
        chars: set[str] = set()
        for i in range(self._sp.get_piece_size()):
            if not (self._sp.is_unknown(i) or self._sp.is_control(i) or self._sp.is_unused(i)):
                chars.update(self._sp.id_to_piece(i))
        chars.discard(meta)
        self._chars = frozenset(chars)

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        path: str | os.PathLike,
        *,
        model_type: str = "unigram",
        num_threads: int = 1,
    ) -> SentencePieceVocab:
        """Train on ``texts`` (normalised transcripts, read once) and write the model to ``path``
        (a ``.model`` file, atomically; sentencepiece itself writes no files).

        ``vocab_size`` includes the blank (so sentencepiece gets ``vocab_size - 1`` pieces);
        ``model_type`` is "unigram" or "bpe". Every character of the texts gets a piece
        (character coverage 1.0); no normalisation is applied beyond :func:`normalize_text`'s.
        The same texts and settings give the same model bytes.
        """
        from speechssl.spm import train_sentencepiece

        if model_type not in ("unigram", "bpe"):
            raise ValueError(f"model_type must be 'unigram' or 'bpe', found {model_type!r}")
        if vocab_size < 3:
            raise ValueError(f"vocab_size must be at least 3 (blank, <unk> and a piece), found {vocab_size}")
        sentences = [" ".join(t.split()) for t in texts]
        sentences = [s for s in sentences if s]
        if not sentences:
            raise ValueError("no training text: every transcript is empty")
        model = train_sentencepiece(
            sentences,
            vocab_size - 1,  # + the blank we prepend
            reserved=1,
            what="the vocabulary (with the blank) can hold",
            model_type=model_type,
            character_coverage=1.0,
            normalization_rule_name="identity",  # normalize_text has done the job; no NFKC
            input_sentence_size=0,  # use every sentence: no sampling, deterministic
            shuffle_input_sentence=False,
            hard_vocab_limit=True,
            byte_fallback=False,
            unk_id=0,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            num_threads=num_threads,
            minloglevel=2,
        )
        vocab = cls(model)
        vocab.save(path)
        log.info(
            "sentencepiece %s vocabulary: %d ids from %d sentences -> %s", model_type, vocab_size, len(sentences), path
        )
        return vocab

    @classmethod
    def load(cls, path: str | os.PathLike) -> SentencePieceVocab:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: sentencepiece model not found")
        try:
            return cls(path.read_bytes())
        except RuntimeError as e:
            raise ValueError(f"{path}: not a sentencepiece model ({e})") from None

    def save(self, path: str | os.PathLike) -> None:
        """Write the sentencepiece model bytes to ``path`` (atomically)."""
        with atomic_path(path) as tmp:
            tmp.write_bytes(self._proto)

    @property
    def model_proto(self) -> bytes:
        return self._proto

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size() + 1

    @property
    def blank(self) -> int:
        return BLANK_ID

    @property
    def pieces(self) -> list[str]:
        """Id -> piece; id 0 is ``"<blank>"``."""
        return [CharVocab.BLANK_SYMBOL] + [self._sp.id_to_piece(i) for i in range(self._sp.get_piece_size())]

    def drop_unknown(self, text: str) -> str:
        """``text`` without the characters this model has no piece for (whitespace kept)."""
        return "".join(c for c in text if c.isspace() or c in self._chars)

    def encode(self, text: str) -> list[int]:
        unknown = {c for c in text if c not in self._chars and not c.isspace()}
        if unknown:
            raise _unknown_chars_error(unknown, "sentencepiece model's pieces")
        return [i + 1 for i in self._sp.encode(" ".join(text.split()), out_type=int)]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``; blanks are skipped."""
        ids = _check_ids(ids, self.vocab_size)
        return self._sp.decode([i - 1 for i in ids if i != BLANK_ID])

    def __repr__(self) -> str:
        return f"SentencePieceVocab(vocab_size={self.vocab_size})"


def vocab_from_file(path: str | os.PathLike) -> Any:
    """Load a :class:`CharVocab` (``.json``) or a :class:`SentencePieceVocab` (anything else)."""
    return CharVocab.load(path) if str(path).endswith(".json") else SentencePieceVocab.load(path)
