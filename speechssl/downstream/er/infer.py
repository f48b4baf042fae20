"""Classify a split with a trained utterance classifier (emotion recognition) and score it.

``evaluate_split(exp, out, split="test")`` writes into ``out``: ``predictions.jsonl``
(``{"id", "ref", "hyp", "probs"}`` per utterance), ``confusion.md`` (the confusion matrix as a
table), ``confusion.png`` (row-normalised), and, last, ``metrics.json`` (WA, UA, macro-F1, per-class
recall / precision / F1, the confusion matrix, and what the training run cost).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Optional

import torch

from speechssl.io import atomic_path, atomic_write_text

log = logging.getLogger(__name__)


def evaluate_split(
    exp: str | os.PathLike,
    out: str | os.PathLike,
    *,
    corpus: Optional[str] = None,
    split: str = "test",
    device: str = "auto",
    max_duration: Optional[float] = None,
    strict: bool = False,
) -> dict:
    """Classify ``split`` of ``corpus`` (default: the training corpus) with the model in ``exp``;
    returns the metrics written to ``out/metrics.json``."""
    from speechssl.downstream.er.metrics import classification_metrics, confusion_table, plot_confusion
    from speechssl.downstream.er.train import load_er_model
    from speechssl.downstream.store import training_facts
    from speechssl.downstream.utterance import load_labelled_split, predict_cuts
    from speechssl.features.stream import resolve_device

    exp, out = Path(exp), Path(out)
    dev = resolve_device(device)
    model, cfg, classes = load_er_model(exp, dev)
    data_cfg = replace(cfg.data, corpus=str(corpus) if corpus else cfg.data.corpus)
    data = load_labelled_split(data_cfg, split)
    unknown = sorted(set(data.labels.values()) - set(classes))
    if unknown:
        raise ValueError(f"{split}: labels {unknown} are not among the model's classes {classes}")
    probs: dict[str, list[float]] = {}
    skipped: list[tuple[str, str]] = []
    with torch.inference_mode():
        for ids, logits, skip in predict_cuts(model, data.cuts, device=dev, max_duration=max_duration or cfg.sampler.max_duration, strict=strict):
            skipped += skip
            if len(ids):
                probs.update(zip(ids, logits.softmax(-1).tolist()))
    if not probs:
        raise ValueError(f"{split}: no utterance could be classified ({len(skipped)} unreadable)")
    order = [c.id for c in data.cuts if c.id in probs]
    refs = [data.labels[c] for c in order]
    hyps = [classes[max(range(len(classes)), key=probs[c].__getitem__)] for c in order]
    m = classification_metrics(refs, hyps, classes)

    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "predictions.jsonl") as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for cid, ref, hyp in zip(order, refs, hyps):
                f.write(json.dumps({"id": cid, "ref": ref, "hyp": hyp, "probs": [round(p, 6) for p in probs[cid]]}) + "\n")
    if skipped:
        atomic_write_text(out / "errors.tsv", "".join(f"{cid}\t{problem}\n" for cid, problem in skipped))
    atomic_write_text(out / "confusion.md", f"Confusion matrix of {exp.name} on {split} (rows: reference, columns: predicted)\n\n{confusion_table(m)}\n")
    plot_confusion(m, out / "confusion.png", title=f"{exp.name} on {split}")
    metrics = {
        "exp": str(exp),
        "corpus": data_cfg.corpus,
        "split": split,
        "skipped": len(skipped),
        **m.to_dict(),
        **training_facts(exp, cfg),
    }
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1) + "\n")
    log.info("%s %s: WA %.2f%%, UA %.2f%% on %d utterances", exp, split, 100 * m.accuracy, 100 * m.unweighted_accuracy, len(order))
    return metrics
