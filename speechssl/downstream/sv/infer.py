"""Score a trial list with a trained speaker-embedding model.

``evaluate_trials(exp, out, trials=..., split="test")`` embeds every utterance the trials name
(whole utterances), scores each trial by cosine similarity and, with ``asnorm``, also by adaptive
symmetric score normalisation against a cohort of training utterances, then writes into ``out``:
``scores.txt`` (``label enroll test score [asnorm]`` per trial), ``det.png`` (the DET curve of each
scoring), and, last, ``metrics.json`` (EER and minDCF at p_target 0.01 and 0.05 for each scoring,
the trial counts, and what the training run cost).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from speechssl.io import atomic_write_text

log = logging.getLogger(__name__)


def embed_cuts(model, cuts, *, device, max_duration: float, strict: bool = False) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    """Embeddings of whole utterances: ``({cut id: (D,) float32}, skipped (cut id, problem))``."""
    from speechssl.downstream.utterance import predict_cuts

    out, skipped = {}, []
    with torch.inference_mode():
        for ids, emb, skip in predict_cuts(model, cuts, device=device, max_duration=max_duration, strict=strict):
            out.update(zip(ids, emb.numpy()))
            skipped += skip
    return out, skipped


def evaluate_trials(
    exp: str | os.PathLike,
    out: str | os.PathLike,
    *,
    trials: str | os.PathLike,
    corpus: Optional[str] = None,
    split: str = "test",
    asnorm: bool = False,
    cohort_split: Optional[str] = None,
    cohort_size: int = 5000,
    top_k: int = 300,
    device: str = "auto",
    max_duration: Optional[float] = None,
    strict: bool = False,
) -> dict:
    """Score ``trials`` over ``split`` of ``corpus`` (default: the training corpus) with the model in
    ``exp``; the AS-norm cohort is up to ``cohort_size`` utterances (a seeded sample) of
    ``cohort_split`` (default: the first training split). Returns the metrics written to ``out/metrics.json``."""
    from speechssl.downstream.store import training_facts
    from speechssl.downstream.sv.scoring import as_norm, cosine_scores, error_curve, plot_det, read_trials, sv_metrics, write_scores
    from speechssl.downstream.sv.train import load_sv_model, trial_cuts
    from speechssl.downstream.utterance import load_labelled_split
    from speechssl.features.stream import resolve_device

    exp, out = Path(exp), Path(out)
    if top_k < 1 or cohort_size < 1:
        raise ValueError(f"top_k and cohort_size must be >= 1, found {top_k} and {cohort_size}")
    dev = resolve_device(device)
    model, cfg = load_sv_model(exp, dev)
    data_cfg = replace(cfg.data, corpus=str(corpus) if corpus else cfg.data.corpus, languages=[])
    trial_list = read_trials(trials)
    cuts = trial_cuts(data_cfg, split, trial_list, str(trials))
    max_duration = max_duration or cfg.sampler.max_duration
    start = time.perf_counter()
    emb, skipped = embed_cuts(model, cuts, device=dev, max_duration=max_duration, strict=strict)
    if skipped:
        bad = {cid for cid, _ in skipped}
        kept = [t for t in trial_list if t.enroll not in bad and t.test not in bad]
        log.warning("%d utterances could not be read; %d of %d trials are left out (errors.tsv)", len(bad), len(trial_list) - len(kept), len(trial_list))
        trial_list = kept
    labels = [t.label for t in trial_list]
    scorings = {"cosine": cosine_scores(emb, trial_list)}
    cohort_info = None
    if asnorm:
        name = cohort_split or cfg.data.train_splits[0]
        cohort_cuts = load_labelled_split(replace(data_cfg, corpus=cfg.data.corpus if cohort_split is None else data_cfg.corpus), name, require_label=False).cuts
        if len(cohort_cuts) > cohort_size:
            rng = np.random.default_rng(cfg.run.seed)
            keep = set(rng.choice([c.id for c in cohort_cuts], size=cohort_size, replace=False).tolist())
            cohort_cuts = cohort_cuts.filter(lambda c: c.id in keep).to_eager()
        cohort_emb, _ = embed_cuts(model, cohort_cuts, device=dev, max_duration=max_duration, strict=False)
        scorings["asnorm"] = as_norm(emb, trial_list, np.stack(list(cohort_emb.values())), top_k=top_k)
        cohort_info = {"split": name, "utterances": len(cohort_emb), "top_k": min(top_k, len(cohort_emb))}
    seconds = time.perf_counter() - start

    out.mkdir(parents=True, exist_ok=True)
    write_scores(out / "scores.txt", trial_list, scorings["cosine"], {k: v for k, v in scorings.items() if k != "cosine"})
    if skipped:
        atomic_write_text(out / "errors.tsv", "".join(f"{cid}\t{problem}\n" for cid, problem in skipped))
    results = {k: sv_metrics(v, labels) for k, v in scorings.items()}
    plot_det({("AS-norm" if k == "asnorm" else "cosine"): error_curve(v, labels) for k, v in scorings.items()}, out / "det.png", title=f"DET: {exp.name} on {Path(trials).name}")
    metrics = {
        "exp": str(exp),
        "corpus": data_cfg.corpus,
        "split": split,
        "trials_file": str(trials),
        "utterances": len(emb),
        "skipped": len(skipped),
        **results["cosine"].to_dict(),
        "asnorm": results["asnorm"].to_dict() if "asnorm" in results else None,
        "cohort": cohort_info,
        "embed_seconds": round(seconds, 3),
        **training_facts(exp, cfg),
    }
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1) + "\n")
    log.info("%s: EER %.2f%% on %d trials", exp, 100 * results["cosine"].eer, len(trial_list))
    return metrics
