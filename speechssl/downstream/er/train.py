"""Emotion recognition training (any utterance-level classification): a pooling classifier on an
encoder, a random encoder, or MFCC / fbank features, trained with class-balanced cross-entropy
(each class weighted by N / (K * n_k), so every class counts as much as the others, the
unweighted-accuracy objective); validation reports WA, UA and macro-F1.

``ErTrainer(cfg, exp).train()`` writes into ``exp`` what every downstream trainer writes
(:mod:`speechssl.downstream.trainer`, :mod:`speechssl.downstream.store`), the class names in the
model's metadata.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from speechssl.data.sampler import SamplerConfig
from speechssl.downstream.er.model import ErHeadConfig, ErUpstreamConfig, build_er_model
from speechssl.downstream.utterance import UtteranceDataConfig, UtteranceTrainer, load_labelled_split
from speechssl.pretrain.trainer import OptimConfig, RunConfig

log = logging.getLogger(__name__)

CHECKPOINT_KIND = "speechssl-er-state"
FORMAT = "speechssl-er"


@dataclass
class ErDataConfig(UtteranceDataConfig):
    label: str = "emotion4"  # the class: a key of the supervision's custom fields (IEMOCAP emotion4, the mini corpus's style), or speaker/language/gender
    class_balance: bool = True  # weight the loss by inverse class frequency (false: plain cross-entropy)


@dataclass
class ErConfig:
    encoder: ErUpstreamConfig = field(default_factory=ErUpstreamConfig)
    head: ErHeadConfig = field(default_factory=ErHeadConfig)
    data: ErDataConfig = field(default_factory=ErDataConfig)
    sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig(max_duration=200.0))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, warmup_steps=500, max_steps=30000, weight_decay=0.0, clip_norm=5.0))
    run: RunConfig = field(default_factory=lambda: RunConfig(log_every=50, valid_every=1000, save_every=1000))


class ErTrainer(UtteranceTrainer):
    """Train an utterance classifier on ``cfg.data.corpus``; ``ErTrainer(cfg, exp).train()``."""

    checkpoint_kind = CHECKPOINT_KIND
    name = "er"

    def prepare_valid(self) -> None:
        d = self.cfg.data
        counts = self.train_split.counts()
        n, k = sum(counts.values()), len(self.classes)
        weights = [n / (k * counts[c]) if counts[c] else 0.0 for c in self.classes]
        self.class_weights = torch.tensor(weights, dtype=torch.float32) if d.class_balance else None
        log.info("training classes %s", {c: counts[c] for c in self.classes})
        if d.valid_split:
            split = load_labelled_split(d, d.valid_split)
            unknown = sorted(set(split.labels.values()) - set(self.classes))
            if unknown:
                raise ValueError(f"{d.valid_split}: labels {unknown} never occur in training (classes {self.classes})")
            self.valid_labels = {cid: self.class_ids[lab] for cid, lab in split.labels.items()}
            self.valid_cuts = split.cuts

    def build_model(self, upstream):
        return build_er_model(upstream, self.cfg.encoder, self.cfg.head, len(self.classes))

    def compute_loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, _, b = self.forward(batch)
        weight = self.class_weights.to(logits.device) if self.class_weights is not None else None
        loss = F.cross_entropy(logits.float(), b.labels, weight=weight)
        return loss, {"accuracy": (logits.argmax(-1) == b.labels).float().mean()}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Weighted accuracy (WA), unweighted average recall (UA) and macro-F1 on the validation split."""
        from speechssl.downstream.er.metrics import classification_metrics

        ids, logits = self.predict(self.valid_cuts)
        refs = [self.classes[self.valid_labels[i]] for i in ids]
        hyps = [self.classes[j] for j in logits.argmax(-1).tolist()]
        m = classification_metrics(refs, hyps, self.classes)
        return {"accuracy": m.accuracy, "ua": m.unweighted_accuracy, "macro_f1": m.macro_f1}

    def valid_message(self, m: dict[str, float]) -> str:
        return f"WA {100 * m['accuracy']:.2f}%, UA {100 * m['ua']:.2f}%, macro-F1 {100 * m['macro_f1']:.2f}%"

    def export(self, last: dict[str, float]) -> None:
        from speechssl.downstream.store import save_downstream_model

        summary = {**self.base_summary(last), "class_counts": dict(self.train_split.counts())}
        save_downstream_model(self.model, self.cfg, self.base_fingerprint, self.exp, summary, FORMAT, {"classes": json.dumps(self.classes)})


def load_er_model(exp, device="cpu"):
    """``(model, cfg, classes)`` of the classifier run in ``exp``, in eval mode on ``device``."""
    from speechssl.downstream.store import load_downstream_model

    def build(upstream, cfg, meta):
        return build_er_model(upstream, cfg.encoder, cfg.head, len(json.loads(meta["classes"])))

    model, cfg, meta = load_downstream_model(exp, FORMAT, "emotion recognition", ErConfig, build, device)
    return model, cfg, json.loads(meta["classes"])
