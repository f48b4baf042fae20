"""Unit BPE: sentencepiece BPE over discrete speech units, and the run-length de-duplication before it.

Each unit id ``u`` is written as one character, ``chr(UNIT_BASE + u)`` (CJK Unified Ideographs: one
Unicode script, no whitespace, no normalisation surprises), so an utterance is one sentencepiece
"sentence" and BPE merges recurring unit n-grams into pieces.

>>> bpe = UnitBPE.train(unit_seqs, vocab_size=1000, model_prefix="exp/bpe/km500_bpe1000")  # doctest: +SKIP
>>> ids = bpe.encode(units)                  # de-duplicated first (the default), then BPE  # doctest: +SKIP
>>> bpe.decode(ids)                          # == dedup(units)[0]                            # doctest: +SKIP

Files: ``<prefix>.model`` (sentencepiece), ``<prefix>.vocab`` (piece<TAB>score, for reading) and
``<prefix>.json`` (whether encode de-duplicates, and a few counts).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm

from speechssl.io import atomic_path, atomic_write_text
from speechssl.spm import train_sentencepiece

log = logging.getLogger(__name__)

UNIT_BASE = 0x4E00  # first CJK Unified Ideograph
MAX_UNITS = 0x9FFF - UNIT_BASE + 1  # 20992 code points in the block, so unit ids 0..20991
UNK_ID = 0  # the only special piece: bos/eos/pad are disabled (a unit LM adds its own specials)
_NUM_SPECIAL = 1


# ---------------------------------------------------------------------------------------------
# de-duplication and the unit <-> character mapping


def _as_ids(values: Any, what: str = "unit ids") -> np.ndarray:
    """A 1-D int64 array from a numpy array, a list or a torch tensor (on any device)."""
    if hasattr(values, "detach"):  # a torch tensor, without importing torch here
        values = values.detach().cpu().numpy()
    x = np.asarray(values)
    if x.ndim != 1:
        raise ValueError(f"expected a 1-D sequence of {what}, found shape {tuple(x.shape)}")
    if x.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"expected integer {what}, found dtype {x.dtype}")
    return x.astype(np.int64, copy=False)


def _dedup(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.size == 0:
        return x, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], x[1:] != x[:-1])))  # (R,) first frame of each run
    durations = np.diff(np.append(starts, x.size))  # (R,)
    return x[starts], durations.astype(np.int64, copy=False)


def dedup(units: Any) -> tuple[np.ndarray, np.ndarray]:
    """Run-length de-duplication: ``(T,)`` units -> ``(R,)`` distinct consecutive units and ``(R,)``
    run lengths in frames, both int64 (``np.repeat(units, durations)`` gives the input back)."""
    return _dedup(_as_ids(units))


def units_to_text(units: Any) -> str:
    """``(T,)`` unit ids -> a string of T characters, unit ``u`` as ``chr(UNIT_BASE + u)``."""
    x = _as_ids(units)
    bad = x[(x < 0) | (x >= MAX_UNITS)]
    if bad.size:
        raise ValueError(f"unit id {int(bad[0])} is out of range: unit BPE holds ids 0..{MAX_UNITS - 1}")
    return (x + UNIT_BASE).astype("<u4").tobytes().decode("utf-32-le")


def text_to_units(text: str) -> np.ndarray:
    """The inverse of :func:`units_to_text`: a string -> ``(T,)`` int64 unit ids."""
    x = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64) - UNIT_BASE
    bad = np.flatnonzero((x < 0) | (x >= MAX_UNITS))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"character {text[i]!r} (U+{ord(text[i]):04X}) at position {i} is not a unit: units are "
            f"U+{UNIT_BASE:04X}..U+{UNIT_BASE + MAX_UNITS - 1:04X}"
        )
    return x


# ---------------------------------------------------------------------------------------------
# the BPE model


def _meta_path(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


class UnitBPE:
    """A sentencepiece BPE model over unit strings.

    Piece 0 is ``<unk>`` (never produced: :meth:`encode` refuses units missing from the vocabulary);
    bos, eos and pad are disabled, so every other id is a piece of one or more units.
    """

    def __init__(self, sp: spm.SentencePieceProcessor, *, dedup: bool):
        self._sp = sp
        self._dedup = bool(dedup)
        n = sp.get_piece_size()
        self._known = np.zeros(MAX_UNITS, dtype=bool)  # unit id -> has a one-unit piece
        self._decodable = np.ones(n, dtype=bool)  # piece id -> a piece of units (not a special piece)
        for i in range(n):
            if sp.is_unknown(i) or sp.is_control(i) or sp.is_unused(i):
                self._decodable[i] = False
                continue
            try:
                units = text_to_units(sp.id_to_piece(i))
            except ValueError as e:
                raise ValueError(f"not a unit BPE model: piece {i}: {e}") from None
            if units.size == 1:
                self._known[units[0]] = True

    # --- training and loading

    @classmethod
    def train(
        cls,
        sequences: Iterable[Any],
        vocab_size: int,
        model_prefix: str | os.PathLike,
        *,
        dedup: bool = True,
        num_units: int | None = None,
        seed: int = 0,
        max_sentences: int = 200_000,
        max_units: int = 1 << 20,
        max_piece_units: int = 16,
        num_threads: int | None = None,
    ) -> UnitBPE:
        """Train on ``sequences`` (an iterable of 1-D unit sequences, read once) and write
        ``<model_prefix>.model``, ``.vocab`` and ``.json``.

        Every unit seen in ``sequences`` (or, with ``num_units``, every id ``0..num_units-1``, so
        that a rare unit absent from the training data still encodes) gets a one-unit piece, so
        ``vocab_size`` must be at least that many plus 1 (``<unk>``). A ``vocab_size`` larger than
        the data can fill with merges is an error, never a silently smaller model.

        ``max_sentences``: at most this many utterances go to sentencepiece, a uniform sample drawn
        with ``seed`` (reservoir sampling, so the input is streamed); sentencepiece holds them all in
        memory, a few kB each (the default, 200k utterances of ~10 s, is ~1 GB). ``max_units``: the
        longest utterance accepted (after de-duplication; 2^20 is ~5.8 h at 50 Hz); a longer one is
        an error, where sentencepiece would skip it with a log line. ``max_piece_units``: the most
        units in one piece (sentencepiece's ``max_sentencepiece_length``). ``num_threads`` does not
        change the pieces (but is recorded in the ``.model``). The same input, settings and ``seed``
        give the same ``.model`` bytes.
        """
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2, found {vocab_size}")
        if num_units is not None and not 0 < num_units <= MAX_UNITS:
            raise ValueError(f"num_units must be in 1..{MAX_UNITS}, found {num_units}")
        if not 0 < max_units <= 1 << 28:  # max_sentence_length is an int32 count of bytes
            raise ValueError(f"max_units must be in 1..{1 << 28}, found {max_units}")
        if max_sentences < 1:
            raise ValueError(f"max_sentences must be at least 1, found {max_sentences}")
        limit = MAX_UNITS if num_units is None else num_units

        # Stream the input once: convert, count the units, keep a seeded uniform sample. Sampling here
        # (not with sentencepiece's input_sentence_size) keeps it deterministic: sentencepiece's
        # random generator is seeded once per process, so set_random_generator_seed is unreliable.
        rng = np.random.default_rng(seed)
        seen = np.zeros(MAX_UNITS, dtype=bool)
        sample: list[str | None] = []
        total = 0
        for i, seq in enumerate(sequences):
            x = _as_ids(seq)
            if dedup:
                x = _dedup(x)[0]
            if x.size == 0:
                continue
            if x.size > max_units:
                raise ValueError(f"sequence {i}: {x.size} units, more than max_units={max_units}; raise max_units")
            if x.min() < 0 or x.max() >= limit:
                bad = int(x[(x < 0) | (x >= limit)][0])
                what = f"num_units={num_units}" if num_units is not None else f"the unit BPE limit of {MAX_UNITS}"
                raise ValueError(f"sequence {i}: unit id {bad} is out of range for {what}")
            seen[x] = True
            text = units_to_text(x)
            total += 1
            if len(sample) < max_sentences:
                sample.append(text)
            else:
                j = int(rng.integers(total))  # algorithm R: keep item `total` with prob max_sentences/total
                if j < max_sentences:
                    sample[j] = text
        num_seen = int(seen.sum())
        if total == 0:
            raise ValueError("no training data: every sequence is empty")
        required = np.arange(num_units) if num_units is not None else np.flatnonzero(seen)
        if vocab_size < required.size + _NUM_SPECIAL:
            what = f"num_units={num_units}" if num_units is not None else f"{num_seen} distinct units seen"
            raise ValueError(
                f"vocab_size={vocab_size} is too small: {what} need at least {required.size + _NUM_SPECIAL} "
                f"(one piece per unit plus <unk>)"
            )
        # Units the sample missed (or never seen, with num_units) become one-unit sentences: they add
        # the unit to the alphabet and no pair counts, so they do not bias the merges.
        in_sample = np.zeros(MAX_UNITS, dtype=bool)
        for text in sample:
            in_sample[text_to_units(text)] = True  # type: ignore[arg-type]
        extra = [units_to_text([u]) for u in required[~in_sample[required]]]
        if total > len(sample):
            log.info("unit BPE: training on %d of %d utterances (max_sentences)", len(sample), total)

        def sentences() -> Iterator[str]:
            for k in range(len(sample)):  # hand each over and drop our copy: sentencepiece keeps its own
                text, sample[k] = sample[k], None
                yield text  # type: ignore[misc]
            yield from extra

        model = train_sentencepiece(
            sentences(),
            vocab_size,
            what="BPE can build",
            model_type="bpe",
            character_coverage=1.0,  # every unit is in the alphabet
            normalization_rule_name="identity",  # no NFKC: the characters are ids
            add_dummy_prefix=False,
            remove_extra_whitespaces=False,
            split_by_whitespace=False,  # the whole utterance is one "word"
            split_by_unicode_script=False,
            byte_fallback=False,
            max_sentence_length=4 * max_units,  # bytes (3 per unit in UTF-8); checked above
            max_sentencepiece_length=max_piece_units,
            input_sentence_size=0,  # sampled above
            shuffle_input_sentence=False,
            hard_vocab_limit=True,
            unk_id=UNK_ID,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            num_threads=num_threads or min(16, os.cpu_count() or 1),
            minloglevel=1,  # warnings only; sentencepiece's INFO log is long
        )
        sp = spm.SentencePieceProcessor(model_proto=model)
        bpe = cls(sp, dedup=dedup)

        # Each file is written in one step, the .model last: a .model means the three files are complete.
        model_path = Path(f"{model_prefix}.model")
        vocab = "".join(f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n" for i in range(sp.get_piece_size()))
        atomic_write_text(f"{model_prefix}.vocab", vocab)  # as sentencepiece writes it: piece<TAB>score
        meta = {"dedup": bool(dedup), "vocab_size": int(vocab_size), "unit_base": UNIT_BASE,
                "num_units_seen": num_seen, "num_units": num_units, "num_sentences": total,
                "num_sentences_used": len(sample)}  # fmt: skip
        atomic_write_text(_meta_path(model_path), json.dumps(meta, indent=1) + "\n")
        with atomic_path(model_path) as tmp:
            tmp.write_bytes(model)
        log.info("unit BPE: %d pieces over %d units from %d utterances -> %s", vocab_size, num_seen, total, model_path)
        return bpe

    @classmethod
    def load(cls, path: str | os.PathLike, *, dedup: bool | None = None) -> UnitBPE:
        """Load ``<prefix>.model``; whether to de-duplicate comes from ``<prefix>.json`` when it is
        there, else from ``dedup`` (default True); a ``dedup`` given and a json that disagrees is an error."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: unit BPE model not found")
        meta_path = _meta_path(path)
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("unit_base") != UNIT_BASE:
                raise ValueError(f"{meta_path}: unit_base {meta.get('unit_base')}, expected {UNIT_BASE}")
            if dedup is not None and bool(dedup) != meta["dedup"]:
                raise ValueError(f"{meta_path}: the model was trained with dedup={meta['dedup']}, not dedup={dedup}")
            dedup = meta["dedup"]
        elif dedup is None:
            log.warning("%s: no %s beside it; assuming dedup=True", path, meta_path.name)
            dedup = True
        sp = spm.SentencePieceProcessor()
        try:
            sp.load(str(path))
        except (OSError, RuntimeError) as e:
            raise ValueError(f"{path}: not a sentencepiece model ({e})") from None
        return cls(sp, dedup=dedup)

    # --- use

    @property
    def vocab_size(self) -> int:
        """Number of pieces, ``<unk>`` included."""
        return self._sp.get_piece_size()

    @property
    def dedup(self) -> bool:
        """Whether :meth:`encode` de-duplicates its input first (as the training data was)."""
        return self._dedup

    def _text(self, units: Any) -> str:
        x = _as_ids(units)
        if self._dedup:
            x = _dedup(x)[0]
        text = units_to_text(x)  # checks the range first, so _known can be indexed
        unseen = np.unique(x[~self._known[x]])
        if unseen.size:
            raise ValueError(
                f"unit id(s) {unseen[:10].tolist()}{' ...' if unseen.size > 10 else ''} are not in this BPE "
                f"model's vocabulary (never seen in training; train with num_units= to include every unit)"
            )
        return text

    def encode(self, units: Any) -> list[int]:
        """``(T,)`` units -> piece ids (de-duplicated first when the model was trained so)."""
        return self._sp.encode(self._text(units))

    def encode_many(self, batch: Iterable[Any]) -> list[list[int]]:
        """:meth:`encode` of each sequence, in one sentencepiece call."""
        return self._sp.encode([self._text(u) for u in batch])

    def decode(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Piece ids -> ``(T,)`` int64 units (de-duplicated ones, for a dedup model)."""
        x = _as_ids(ids, "piece ids")
        bad = x[(x < 0) | (x >= self.vocab_size)]
        if bad.size:
            raise ValueError(f"piece id {int(bad[0])} is out of range 0..{self.vocab_size - 1}")
        special = x[~self._decodable[x]]
        if special.size:
            raise ValueError(f"piece id {int(special[0])} ({self._sp.id_to_piece(int(special[0]))}) is not a unit piece")
        return text_to_units(self._sp.decode(x.tolist()))

    def pieces(self, units: Any) -> list[str]:
        """The pieces of ``units`` for display, each as its unit ids: ``["12 7 99", "3", ...]``."""
        return [" ".join(str(ord(c) - UNIT_BASE) for c in p) for p in self._sp.encode(self._text(units), out_type=str)]

    def __repr__(self) -> str:
        return f"UnitBPE(vocab_size={self.vocab_size}, units={int(self._known.sum())}, dedup={self._dedup})"
