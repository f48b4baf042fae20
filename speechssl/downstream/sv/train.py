"""Speaker verification training: an x-vector head (on an encoder, a random encoder, or MFCC /
fbank features) trained with AAM-softmax to classify the training speakers; validation scores a
trial list over held-out speakers (cosine, EER and minDCF).

``SvTrainer(cfg, exp).train()`` writes into ``exp`` what every downstream trainer writes
(:mod:`speechssl.downstream.trainer`, :mod:`speechssl.downstream.store`): ``config.yaml``,
``command.txt``, ``log.jsonl``, ``tensorboard/``, ``checkpoints/`` (a re-run resumes), then
``adapter.safetensors`` / ``encoder.safetensors`` (adapters / finetune), ``summary.json`` and, last,
``model.safetensors``. Training crops each utterance to a random ``data.crop_seconds`` window.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Optional

import torch
from lhotse import CutSet

from speechssl.data.sampler import SamplerConfig
from speechssl.downstream.sv.model import SvHeadConfig, SvUpstreamConfig, build_sv_model
from speechssl.downstream.utterance import UtteranceDataConfig, UtteranceTrainer, load_labelled_split
from speechssl.pretrain.trainer import OptimConfig, RunConfig

log = logging.getLogger(__name__)

CHECKPOINT_KIND = "speechssl-sv-state"
FORMAT = "speechssl-sv"


@dataclass
class SvDataConfig(UtteranceDataConfig):
    crop_seconds: float = 3.0  # training: a random crop of at most this many seconds of each utterance (0: whole utterances)
    valid_trials: Optional[str] = None  # trial list over valid_split's cuts ("<1|0> <id> <id>" per line) for validation EER; null: no validation


@dataclass
class SvConfig:
    encoder: SvUpstreamConfig = field(default_factory=SvUpstreamConfig)
    head: SvHeadConfig = field(default_factory=SvHeadConfig)
    data: SvDataConfig = field(default_factory=SvDataConfig)
    sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig(max_duration=200.0))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, warmup_steps=1000, max_steps=20000, weight_decay=0.0, clip_norm=5.0))
    run: RunConfig = field(default_factory=lambda: RunConfig(log_every=50, valid_every=1000, save_every=1000))


def trial_cut_ids(trials) -> set[str]:
    return {t.enroll for t in trials} | {t.test for t in trials}


def trial_cuts(cfg: UtteranceDataConfig, split: str, trials, where: str) -> CutSet:
    """The cuts of ``split`` that ``trials`` name; every one must be there."""
    cuts = load_labelled_split(cfg, split, require_label=False).cuts
    need = trial_cut_ids(trials)
    have = {c.id for c in cuts}
    missing = sorted(need - have)
    if missing:
        raise ValueError(f"{where}: {len(missing)} utterances of the trials are not in split {split!r} of {cfg.corpus} (e.g. {missing[0]})")
    return CutSet.from_cuts(c for c in cuts if c.id in need)


class SvTrainer(UtteranceTrainer):
    """Train speaker embeddings on ``cfg.data.corpus``; ``SvTrainer(cfg, exp).train()``."""

    checkpoint_kind = CHECKPOINT_KIND
    name = "sv"

    def prepare_valid(self) -> None:
        from speechssl.downstream.sv.scoring import read_trials

        d = self.cfg.data
        if d.valid_split and d.valid_trials:
            self.trials = read_trials(d.valid_trials)
            self.valid_cuts = trial_cuts(d, d.valid_split, self.trials, d.valid_trials)

    def build_model(self, upstream):
        return build_sv_model(upstream, self.cfg.encoder, self.cfg.head, len(self.classes))

    def compute_loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        emb, _, b = self.forward(batch)
        loss, cos = self.model.head.classifier(emb, b.labels)
        return loss, {"accuracy": (cos.argmax(-1) == b.labels).float().mean()}

    def embeddings(self, cuts: CutSet) -> dict[str, torch.Tensor]:
        ids, emb = self.predict(cuts)
        return dict(zip(ids, emb))

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """EER and minDCF of cosine scores on the validation trials."""
        from speechssl.downstream.sv.scoring import cosine_scores, sv_metrics

        scores = cosine_scores(self.embeddings(self.valid_cuts), self.trials)
        m = sv_metrics(scores, [t.label for t in self.trials])
        return {"eer": m.eer, **{f"min_dcf_{p:g}": v for p, v in m.min_dcf.items()}}

    def valid_message(self, m: dict[str, float]) -> str:
        return f"EER {100 * m['eer']:.2f}%, " + ", ".join(f"{k} {v:.4f}" for k, v in m.items() if k.startswith("min_dcf"))

    def export(self, last: dict[str, float]) -> None:
        from speechssl.downstream.store import save_downstream_model

        summary = {**self.base_summary(last), "embedding_dim": self.cfg.head.embedding_dim}
        save_downstream_model(self.model, self.cfg, self.base_fingerprint, self.exp, summary, FORMAT, {"classes": json.dumps(self.classes)})


def load_sv_model(exp, device="cpu"):
    """``(model, cfg)`` of the speaker-embedding run in ``exp``, in eval mode on ``device``."""
    from speechssl.downstream.store import load_downstream_model

    def build(upstream, cfg, meta):
        return build_sv_model(upstream, cfg.encoder, cfg.head, len(json.loads(meta["classes"])))

    model, cfg, _ = load_downstream_model(exp, FORMAT, "speaker verification", SvConfig, build, device)
    return model, cfg
