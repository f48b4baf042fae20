"""ASR text side: normalisation, vocabularies, CTC decoding (greedy, prefix beam search, word LM) and
WER/CER against jiwer."""

from __future__ import annotations

import itertools
import json
import math

import jiwer
import numpy as np
import pytest
import torch

from speechssl.downstream.asr.decode import WordNgramLM, ctc_greedy, ctc_prefix_beam_search
from speechssl.downstream.asr.metrics import EditCounts, edit_ops, cer, error_rates, wer
from speechssl.downstream.asr.text import (
    CharVocab,
    SentencePieceVocab,
    Vocab,
    normalize_generic,
    normalize_text,
)

pytestmark = pytest.mark.deps  # a dependency's behaviour: tools/deps_drift.sh runs these on the newest releases

# ---------------------------------------------------------------------------------------------
# normalisation


@pytest.mark.parametrize(
    "language, text, expected",
    [
        ("en", "  Don't   STOP, John's dogs' toys!  ", "don't stop john's dogs toys"),
        ("en", "'Quoted' words -- and a café.", "quoted words and a café"),
        ("en", "It\u2019s 42\tthings", "it's 42 things"),
        ("de", "Die STRASSE ist groß; ich weiß es.", "die strasse ist groß ich weiß es"),
        ("de", "GROẞE Übung, Äpfel & Öl!", "große übung äpfel öl"),
        ("de", "Wie geht's?", "wie geht's"),
        ("es", "¿Dónde está el niño? ¡Mañana!", "dónde está el niño mañana"),
        ("es", "Pingüino,   CORAZÓN.", "pingüino corazón"),
        ("fr", "« L’homme » est-il là\u202f?", "l'homme est il là"),
        ("fr", "Aujourd'hui, c'est l'été : ŒUVRE déjà vue…", "aujourd'hui c'est l'été œuvre déjà vue"),
        ("fr", "l' homme", "l homme"),
    ],
)
def test_normalize_text_examples(language, text, expected):
    assert normalize_text(text, language) == expected


def test_normalize_nfc_and_idempotent():
    decomposed = "e\u0301te\u0301"  # "été" with combining accents
    out = normalize_text(decomposed, "fr")
    assert out == "été" and len(out) == 3
    for lang, text in [("de", "Der Fluß, DIE Straße!"), ("fr", "L’été « chaud »")]:
        once = normalize_text(text, lang)
        assert normalize_text(once, lang) == once


def test_normalize_unknown_language():
    with pytest.raises(ValueError, match="en, de, es, fr"):
        normalize_text("hello", "xx")
    assert normalize_generic("Hello, World!") == "hello world"


# ---------------------------------------------------------------------------------------------
# vocabularies

TEXTS = ["die straße ist groß", "wir müssen später gehen", "l'homme est là"]


def test_char_vocab_round_trip_and_save_load(tmp_path):
    vocab = CharVocab.build(TEXTS)
    assert isinstance(vocab, Vocab)
    assert vocab.blank == 0 and vocab.tokens[0] == "<blank>" and vocab.tokens[1] == "|"
    assert vocab.tokens[2:] == sorted(set("".join(TEXTS)) - {" "})
    for text in TEXTS:
        ids = vocab.encode(text)
        assert 0 not in ids
        assert vocab.decode(ids) == text
    assert vocab.encode("  ist   groß ") == vocab.encode("ist groß")
    assert vocab.decode([0, 2, 0, 1, 1, 0]) == vocab.tokens[2]  # blanks skipped, separators -> spaces
    path = tmp_path / "vocab" / "chars.json"
    vocab.save(path)
    assert json.loads(path.read_text(encoding="utf-8"))["tokens"] == vocab.tokens
    assert CharVocab.load(path) == vocab
    assert list(path.parent.iterdir()) == [path]  # nothing partial left behind


def test_char_vocab_unknown_and_bad_input(tmp_path):
    vocab = CharVocab.build(TEXTS)
    with pytest.raises(ValueError, match="'q'.*'x'"):
        vocab.encode("qux")
    with pytest.raises(ValueError, match=r"'\|'"):
        vocab.encode("ist|groß")
    with pytest.raises(ValueError, match="out of range"):
        vocab.decode([vocab.vocab_size])
    with pytest.raises(ValueError, match="separator"):
        CharVocab.build(["a|b"])
    with pytest.raises(FileNotFoundError):
        CharVocab.load(tmp_path / "missing.json")


def _spm_texts():
    rng = np.random.default_rng(0)
    words = ["der", "hund", "läuft", "über", "die", "straße", "wir", "müssen", "später", "gehen", "l'homme"]
    return [" ".join(rng.choice(words, size=int(rng.integers(2, 8)))) for _ in range(60)]


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_sentencepiece_vocab(tmp_path, model_type):
    texts = _spm_texts()
    vocab = SentencePieceVocab.train(texts, 32, tmp_path / "a.model", model_type=model_type)
    assert isinstance(vocab, Vocab)
    assert vocab.vocab_size == 32 and vocab.blank == 0 and vocab.pieces[0] == "<blank>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.model"]  # sentencepiece wrote no files
    for text in texts[:10]:
        ids = vocab.encode(text)
        assert ids and min(ids) >= 2 and max(ids) < 32  # never blank (0) or <unk> (1)
        assert vocab.decode(ids) == text
        assert vocab.decode([0] + ids + [0]) == text
    loaded = SentencePieceVocab.load(tmp_path / "a.model")
    assert loaded.encode(texts[0]) == vocab.encode(texts[0])
    again = SentencePieceVocab.train(texts, 32, tmp_path / "b.model", model_type=model_type)
    assert (tmp_path / "a.model").read_bytes() == (tmp_path / "b.model").read_bytes()  # deterministic
    with pytest.raises(ValueError, match="'z'"):
        vocab.encode("zug")
    assert again.vocab_size == 32


def test_sentencepiece_vocab_too_large(tmp_path):
    with pytest.raises(ValueError, match="too large"):
        SentencePieceVocab.train(["ab ba"], 500, tmp_path / "x.model")
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# decoding


def _log_softmax(rng, T, V, scale=2.0):
    x = rng.normal(size=(T, V)) * scale
    return x - np.logaddexp.reduce(x, axis=1, keepdims=True)


def _collapse(path, blank=0):
    out = []
    prev = None
    for tok in path:
        if tok != prev and tok != blank:
            out.append(tok)
        prev = tok
    return tuple(out)


def _exhaustive(lp, blank=0):
    """label sequence -> log P, summing every alignment."""
    T, V = lp.shape
    probs: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(V), repeat=T):
        lab = _collapse(path, blank)
        probs[lab] = np.logaddexp(probs.get(lab, -np.inf), lp[np.arange(T), path].sum())
    return probs


def _ctc_logprob(lp, labels):
    lp_t = torch.from_numpy(lp)[:, None, :]  # (T, 1, V)
    target = torch.tensor([labels], dtype=torch.long)  # (1, L)
    loss = torch.nn.functional.ctc_loss(
        lp_t, target, torch.tensor([lp.shape[0]]), torch.tensor([len(labels)]), reduction="none", zero_infinity=False
    )
    return -float(loss[0])


def test_ctc_greedy_hand_made():
    # frames: a a - a b b - (blank = 0, a = 1, b = 2) -> "a a b"
    path = [1, 1, 0, 1, 2, 2, 0]
    lp = np.log(np.full((7, 3), 0.1))
    lp[np.arange(7), path] = np.log(0.8)
    assert ctc_greedy(lp) == [[1, 1, 2]]
    batch = torch.from_numpy(np.stack([lp, lp[::-1].copy()]))  # (2, T, V)
    assert ctc_greedy(batch, lengths=torch.tensor([7, 3])) == [[1, 1, 2], [2]]
    assert ctc_greedy(batch, lengths=[0, 7]) == [[], [2, 1, 1]]
    with pytest.raises(ValueError, match="lengths"):
        ctc_greedy(batch, lengths=[8, 1])


@pytest.mark.parametrize("seed", range(6))
def test_beam_search_equals_exhaustive(seed):
    rng = np.random.default_rng(seed)
    T, V = int(rng.integers(1, 6)), int(rng.integers(2, 4))
    lp = _log_softmax(rng, T, V, scale=float(rng.uniform(0.5, 3.0)))
    probs = _exhaustive(lp)
    best, best_lp = max(probs.items(), key=lambda kv: kv[1])
    beam = 2 ** (T + 1)  # more than the possible prefixes (at most sum_l (V-1)^l for l <= T)
    hyps = ctc_prefix_beam_search(torch.from_numpy(lp), beam=beam)
    assert tuple(hyps[0][0]) == best
    assert hyps[0][1] == pytest.approx(best_lp, abs=1e-9)
    for ids, score in hyps:  # with an exact beam every score is the prefix's full probability
        assert score == pytest.approx(probs[tuple(ids)], abs=1e-9)
    assert [s for _, s in hyps] == sorted((s for _, s in hyps), reverse=True)
    # greedy's hypothesis is never more probable than the beam's best
    assert probs[tuple(ctc_greedy(lp)[0])] <= hyps[0][1] + 1e-9


@pytest.mark.parametrize("seed", range(3))
def test_beam_search_vs_ctc_loss_and_pruning(seed):
    rng = np.random.default_rng(100 + seed)
    lp = _log_softmax(rng, 10, 5, scale=2.5)
    hyps = ctc_prefix_beam_search(lp, beam=256)  # wide: it keeps almost all of the best prefix's mass
    best, score = hyps[0]
    true_best = _ctc_logprob(lp, best)
    assert true_best - 1e-4 < score <= true_best + 1e-9
    assert true_best >= _ctc_logprob(lp, ctc_greedy(lp)[0]) - 1e-9
    for ids, s in ctc_prefix_beam_search(lp, beam=4):  # a narrow beam sums a subset of the alignments
        assert s <= _ctc_logprob(lp, ids) + 1e-9
    pruned = ctc_prefix_beam_search(lp, beam=256, prune_top_k=4)  # 4 of the 4 labels: same search
    assert pruned[0][0] == best and pruned[0][1] == pytest.approx(score)
    narrow = ctc_prefix_beam_search(lp, beam=4, prune_top_k=2)
    assert len(narrow) <= 4 and all(s <= 0 for _, s in narrow)
    assert ctc_prefix_beam_search(lp, beam=1)[0][0] is not None


def test_beam_search_edge_cases():
    assert ctc_prefix_beam_search(np.zeros((0, 3))) == [([], 0.0)]
    with pytest.raises(ValueError, match="separator_id"):
        ctc_prefix_beam_search(np.zeros((2, 3)), lm=lambda h, w: 0.0)
    with pytest.raises(ValueError, match=r"\(T, V\)"):
        ctc_prefix_beam_search(np.zeros((1, 2, 3)))


def _tie_log_probs(vocab, p_b):
    """Frames: "a", then "b" (p_b) or "c" (1 - p_b), then the separator."""
    eps = 1e-6
    probs = np.full((3, vocab.vocab_size), eps)
    (a,), (b,), (c,), sep = vocab.encode("a"), vocab.encode("b"), vocab.encode("c"), vocab.separator_id
    probs[0, a] = 1.0
    probs[1, b], probs[1, c] = p_b, 1.0 - p_b
    probs[2, sep] = 1.0
    probs /= probs.sum(1, keepdims=True)
    return np.log(probs)


def test_beam_search_lm_changes_decision():
    vocab = CharVocab.build(["ab ac"])
    for p_b in (0.5, 0.55):  # an exact tie and a slight acoustic preference for "ab"
        lp = _tie_log_probs(vocab, p_b)
        plain = ctc_prefix_beam_search(lp, beam=4)
        assert vocab.decode(plain[0][0]) in ("ab", "ac")
        if p_b > 0.5:
            assert vocab.decode(plain[0][0]) == "ab"
        for word in ("ab", "ac"):
            lm = WordNgramLM.from_texts([word] * 20, order=2, alpha=0.01).token_scorer(vocab.decode)
            hyps = ctc_prefix_beam_search(lp, beam=4, lm=lm, lm_weight=1.0, separator_id=vocab.separator_id)
            assert vocab.decode(hyps[0][0]) == word
            pruned = ctc_prefix_beam_search(
                lp, beam=4, lm=lm, lm_weight=1.0, separator_id=vocab.separator_id, prune_top_k=3
            )
            assert pruned[0][0] == hyps[0][0]
    # without the trailing separator the last word is scored at the end of the utterance
    lp = _tie_log_probs(vocab, 0.55)[:2]
    lm = WordNgramLM.from_texts(["ac"] * 20, alpha=0.01).token_scorer(vocab.decode)
    hyps = ctc_prefix_beam_search(lp, beam=4, lm=lm, lm_weight=1.0, separator_id=vocab.separator_id)
    assert vocab.decode(hyps[0][0]) == "ac"


def test_word_ngram_lm():
    lm = WordNgramLM.from_texts(["the cat sat", "the dog sat"], order=2, alpha=1.0)
    # |V| = 4 words + <unk>; after "the": cat 1, dog 1 of 2
    assert lm.score(["the"], "cat") == pytest.approx(math.log(2 / 7))
    assert lm.score([], "the") == pytest.approx(math.log(3 / 7))
    assert lm.score(["the"], "zebra") == pytest.approx(math.log(1 / 7))
    assert lm.score(["a", "b", "the"], "dog") == lm.score(["the"], "dog")  # only order - 1 words count
    uni = WordNgramLM.from_texts(["a a b"], order=1, alpha=0.5)
    assert uni.score(["x"], "a") == pytest.approx(math.log(2.5 / (3 + 0.5 * 3)))
    with pytest.raises(ValueError, match="alpha"):
        WordNgramLM.from_texts(["a"], alpha=0.0)


# ---------------------------------------------------------------------------------------------
# metrics


def _levenshtein(a, b):
    d = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, y in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
    return d[-1]


@pytest.mark.parametrize("seed", range(5))
def test_edit_ops_random(seed):
    rng = np.random.default_rng(seed)
    for _ in range(30):
        ref = rng.integers(0, 4, size=int(rng.integers(0, 9))).tolist()
        hyp = rng.integers(0, 4, size=int(rng.integers(0, 9))).tolist()
        s, d, i = edit_ops(ref, hyp)
        assert s + d + i == _levenshtein(ref, hyp)
        assert i - d == len(hyp) - len(ref) and s + d <= len(ref)


def test_edit_ops_and_empty_cases():
    assert edit_ops("abc", "abc") == (0, 0, 0)
    assert edit_ops([], ["x", "y"]) == (0, 0, 2)
    assert edit_ops(["x", "y"], []) == (0, 2, 0)
    assert edit_ops(["a", "b", "c", "d"], ["a", "x", "c", "d", "e"]) == (1, 0, 1)
    assert wer(["a b", ""], ["a b", "c d"]) == 1.0  # an empty reference adds insertions
    assert wer("a b c", "") == jiwer.wer("a b c", "") == 1.0
    assert cer("abc", "") == jiwer.cer("abc", "") == 1.0
    with pytest.raises(ValueError, match="undefined"):
        wer([""], ["a"])
    with pytest.raises(ValueError, match="2 references but 1"):
        wer(["a", "b"], ["a"])
    rates = error_rates(["the cat sat"], ["the cat sat down"])
    assert rates.words == EditCounts(0, 0, 1, 3) and rates.wer == pytest.approx(1 / 3)
    assert rates.chars.insertions == 5 and rates.cer == pytest.approx(5 / 11)


WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "straße", "l'homme"]


@pytest.mark.parametrize("seed", range(5))
def test_wer_cer_match_jiwer_random(seed):
    rng = np.random.default_rng(seed)
    refs = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 9)))) for _ in range(20)]
    hyps = [" ".join(rng.choice(WORDS, size=int(rng.integers(0, 9)))) for _ in range(20)]
    assert wer(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
    assert cer(refs, hyps) == pytest.approx(jiwer.cer(refs, hyps), abs=1e-12)
    out = jiwer.process_words(refs, hyps)
    counts = error_rates(refs, hyps).words
    assert counts.errors == out.substitutions + out.deletions + out.insertions
    assert counts.insertions - counts.deletions == out.insertions - out.deletions


def _perturb(rng, words, vocab):
    out = []
    for w in words:
        r = rng.random()
        if r < 0.1:
            continue  # deletion
        if r < 0.2:
            out.append(str(rng.choice(vocab)))  # substitution
        else:
            out.append(w)
        if rng.random() < 0.1:
            out.append(str(rng.choice(vocab)))  # insertion
    return " ".join(out)


def test_mini_corpus_transcripts(mini_corpus, tmp_path):
    from speechssl.data.manifest import load_cuts

    cuts = load_cuts(mini_corpus / "cuts_dev.jsonl.gz")
    texts = [normalize_text(c.supervisions[0].text, c.supervisions[0].language) for c in cuts]
    assert texts and all(t and t == t.lower() for t in texts)
    vocab = CharVocab.build(texts)
    assert all(vocab.decode(vocab.encode(t)) == t for t in texts)
    all_words = sorted({w for t in texts for w in t.split()})
    rng = np.random.default_rng(0)
    for _ in range(3):
        hyps = [_perturb(rng, t.split(), all_words) for t in texts]
        assert wer(texts, hyps) == pytest.approx(jiwer.wer(texts, hyps), abs=1e-12)
        assert cer(texts, hyps) == pytest.approx(jiwer.cer(texts, hyps), abs=1e-12)
    sp = SentencePieceVocab.train(texts, 48, tmp_path / "sp.model")
    assert all(sp.decode(sp.encode(t)) == t for t in texts)


def test_characters_left_out_of_validation_targets_are_warned_about(caplog):
    """Validation transcripts may hold characters training never had: they are left out of the
    targets, and a warning says which and how often (never silently)."""
    import logging

    from speechssl.downstream.asr.data import encode_texts

    vocab = CharVocab.build(["hello world"])
    with caplog.at_level(logging.WARNING, logger="speechssl.downstream.asr.data"):
        out = encode_texts(vocab, {"a": "hello wörld", "b": "hello", "c": "zzz öh"}, drop_unknown=True, what="dev transcripts")
    assert vocab.decode(out["a"]) == "hello wrld" and vocab.decode(out["c"]) == "h"
    assert "dev transcripts: 2 of 3 transcripts hold characters the vocabulary lacks" in caplog.text
    assert "'z' x3, 'ö' x2" in caplog.text
    with pytest.raises(ValueError, match="the transcript of cut a"):
        encode_texts(vocab, {"a": "hello wörld"}, drop_unknown=False)
