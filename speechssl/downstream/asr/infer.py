"""Decode a corpus split with a trained CTC model and score it.

``decode_split(exp, out, split="test")`` writes ``out/hyps.jsonl`` (``{"id", "ref", "hyp"}`` per
utterance, in the split's order) and then ``out/metrics.json`` (WER and CER with their edit counts,
the decoding settings, and what the training run cost: trainable parameters, stored weights, time).
``metrics.json`` is written last; neither file ever exists half-written.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

import torch

from speechssl.downstream.store import stored_bytes
from speechssl.io import atomic_path, atomic_write_text

log = logging.getLogger(__name__)


def decode_split(
    exp: str | os.PathLike,
    out: str | os.PathLike,
    *,
    corpus: Optional[str] = None,
    split: str = "test",
    beam: int = 1,
    lm_order: int = 0,
    lm_weight: float = 0.5,
    word_bonus: float = 0.0,
    prune_top_k: Optional[int] = 16,
    device: str = "auto",
    max_duration: Optional[float] = None,
    strict: bool = False,
) -> dict:
    """Decode ``split`` of ``corpus`` (default: the training corpus) with the model in ``exp``:
    greedy when ``beam == 1`` and there is no LM, else CTC prefix beam search, with a word
    ``lm_order``-gram LM of the training transcripts when ``lm_order > 0`` (character targets only).
    Returns the metrics written to ``out/metrics.json``."""
    from speechssl.data.sampler import SamplerConfig, make_sampler
    from speechssl.downstream.asr.data import AsrDataset, load_asr_split
    from speechssl.downstream.asr.decode import WordNgramLM, ctc_greedy, ctc_prefix_beam_search
    from speechssl.downstream.asr.metrics import error_rates
    from speechssl.downstream.asr.store import load_ctc_model
    from speechssl.downstream.asr.text import CharVocab
    from speechssl.features.stream import resolve_device

    exp, out = Path(exp), Path(out)
    if beam < 1:
        raise ValueError(f"beam must be >= 1, found {beam}")
    dev = resolve_device(device)
    model, vocab, cfg = load_ctc_model(exp, dev)
    data_cfg = replace(cfg.data, corpus=str(corpus) if corpus else cfg.data.corpus)
    data = load_asr_split(data_cfg, split, cfg.target.language)

    lm = None
    if lm_order > 0:
        if not isinstance(vocab, CharVocab):
            raise ValueError("the word LM needs character targets (target.kind char): word boundaries are its separator token")
        train_texts = load_asr_split(cfg.data, cfg.data.train_split, cfg.target.language, train=True).texts.values()
        lm = WordNgramLM.from_texts(train_texts, order=lm_order).token_scorer(vocab.decode)
    separator = getattr(vocab, "separator_id", None) if lm is not None or word_bonus else None
    use_beam = beam > 1 or lm is not None or word_bonus != 0.0

    sampler_cfg = SamplerConfig(max_duration=max_duration or cfg.sampler.max_duration, shuffle=False)
    loader = torch.utils.data.DataLoader(
        AsrDataset({c.id: [] for c in data.cuts}, strict=strict), sampler=make_sampler(data.cuts, sampler_cfg, world_size=1, rank=0), batch_size=None
    )
    hyps: dict[str, str] = {}
    skipped: list[tuple[str, str]] = []
    audio_seconds, start = 0.0, time.perf_counter()
    with torch.inference_mode():
        for batch in loader:
            skipped.extend(batch.skipped)
            if not len(batch):
                continue
            padded = bool((batch.wav_lens < batch.wavs.shape[1]).any())
            logits, lengths = model(batch.wavs.to(dev), batch.wav_lens.to(dev) if padded else None)
            log_probs = logits.float().log_softmax(-1).cpu()  # (B, T, V)
            lengths = lengths.cpu()
            if use_beam:
                ids = [
                    ctc_prefix_beam_search(
                        log_probs[i, : int(lengths[i])], beam=beam, blank=vocab.blank, lm=lm, lm_weight=lm_weight,
                        word_bonus=word_bonus, separator_id=separator, prune_top_k=prune_top_k,
                    )[0][0]
                    for i in range(len(batch))
                ]
            else:
                ids = ctc_greedy(log_probs, lengths, blank=vocab.blank)
            for cid, seq in zip(batch.cut_ids, ids):
                hyps[cid] = vocab.decode(seq)
            audio_seconds += batch.seconds
    seconds = time.perf_counter() - start
    if not hyps:
        raise ValueError(f"{data.manifest}: no utterance could be decoded ({len(skipped)} unreadable)")

    order = [c.id for c in data.cuts if c.id in hyps]
    refs = [data.texts[c] for c in order]
    rates = error_rates(refs, [hyps[c] for c in order])
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "hyps.jsonl") as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for cid, ref in zip(order, refs):
                f.write(json.dumps({"id": cid, "ref": ref, "hyp": hyps[cid]}, ensure_ascii=False) + "\n")
    if skipped:
        atomic_write_text(out / "errors.tsv", "".join(f"{cid}\t{problem}\n" for cid, problem in skipped))
    summary_path = exp / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    w, c = rates.words, rates.chars
    metrics = {
        "exp": str(exp),
        "mode": cfg.encoder.mode,
        "corpus": data_cfg.corpus,
        "split": split,
        "utterances": len(order),
        "skipped": len(skipped),
        "decoder": "beam" if use_beam else "greedy",
        "beam": beam,
        "lm_order": lm_order,
        "lm_weight": lm_weight if lm is not None else 0.0,
        "wer": w.rate,
        "cer": c.rate,
        "words": {"substitutions": w.substitutions, "deletions": w.deletions, "insertions": w.insertions, "reference": w.reference_length},
        "chars": {"substitutions": c.substitutions, "deletions": c.deletions, "insertions": c.insertions, "reference": c.reference_length},
        "decode_seconds": round(seconds, 3),
        "audio_seconds": round(audio_seconds, 3),
        "real_time_factor": round(seconds / max(audio_seconds, 1e-9), 5),
        "trainable_params": summary.get("trainable_params"),
        "total_params": summary.get("total_params"),
        "stored_bytes": stored_bytes(exp, cfg.encoder.mode),
        "train_seconds": summary.get("train_seconds"),
        "train_minutes_of_audio": summary.get("train_minutes_of_audio"),
    }
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1) + "\n")
    log.info("%s %s: WER %.2f%%, CER %.2f%% on %d utterances", exp, split, 100 * w.rate, 100 * c.rate, len(order))
    return metrics
