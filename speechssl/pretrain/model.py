"""The pretraining model: an encoder plus HuBERT's masked unit prediction head and HuBERTopic's
utterance-level topic classifier.

Forward pass (fairseq ``HubertModel.forward`` in order):

1. conv front end on the waveforms; the feature penalty is the mean square of its output
   (``features_pen``); its gradient is scaled by ``feature_grad_mult`` (0: the front end is frozen
   and runs without autograd);
2. feature projection, then masked frames replaced by the learned mask embedding;
3. the transformer;
4. a final projection of the last layer (one per label set when ``untie_final_proj``), cosine
   similarity against each label set's unit embeddings divided by ``logit_temp``, cross-entropy
   with the frame labels on masked frames (and, weighted, on unmasked ones);
5. HuBERTopic: the hidden states of one layer pooled over each utterance (all valid frames, or only
   unmasked ones), a linear classifier over the topics, cross-entropy against the hard topic label
   or the topic distribution.

The model returns loss *sums* and counts; the trainer divides by counts summed over the whole
optimizer step (every micro-batch and every rank), so gradient accumulation and DDP give the same
update as one big batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechssl.models.components import length_mask
from speechssl.models.encoder import SSLEncoder, normalize_waveforms

IGNORE = -100  # target of frames without a label (padding, frames past the label sequence)


@dataclass
class PredictionConfig:
    """Masked unit prediction (HuBERT). Comments name the fairseq option."""

    final_dim: int = 256  # final_dim: width of the projected frames and of the unit embeddings
    logit_temp: float = 0.1  # logit_temp: cosine similarities are divided by it
    masked_weight: float = 1.0  # pred_masked_weight
    unmasked_weight: float = 0.0  # pred_nomask_weight
    feature_penalty: float = 10.0  # loss_weights[0]: weight of the conv features' mean square
    feature_grad_mult: float = 0.1  # feature_grad_mult: gradient scale into the conv front end (0: frozen)
    untie_final_proj: bool = True  # untie_final_proj: one final projection per label set

    def __post_init__(self):
        if self.final_dim < 1:
            raise ValueError(f"final_dim must be >= 1, found {self.final_dim}")
        if self.logit_temp <= 0:
            raise ValueError(f"logit_temp must be > 0, found {self.logit_temp}")
        if self.masked_weight < 0 or self.unmasked_weight < 0 or self.feature_penalty < 0:
            raise ValueError("loss weights must be >= 0")
        if not 0.0 <= self.feature_grad_mult <= 1.0:
            raise ValueError(f"feature_grad_mult must be within [0, 1], found {self.feature_grad_mult}")


@dataclass
class TopicLossConfig:
    """HuBERTopic's auxiliary utterance-level topic classification."""

    weight: float = 0.0  # loss weight (0: off)
    layer: int = -1  # which hidden state feeds the classifier: 0..num_layers, -1 the last
    pooling: str = "all"  # mean over "all" valid frames or only the "unmasked" ones
    targets: str = "hard"  # "hard": the argmax topic label; "soft": the topic distribution

    def __post_init__(self):
        if self.weight < 0:
            raise ValueError(f"topic loss weight must be >= 0, found {self.weight}")
        if self.pooling not in ("all", "unmasked"):
            raise ValueError(f"topic pooling must be 'all' or 'unmasked', found {self.pooling!r}")
        if self.targets not in ("hard", "soft"):
            raise ValueError(f"topic targets must be 'hard' or 'soft', found {self.targets!r}")


@dataclass
class PretrainOutput:
    """Sums and counts of one micro-batch (divide by step-wide counts to get the losses)."""

    masked_loss: Tensor  # CE summed over masked frames and label sets
    unmasked_loss: Tensor  # CE summed over unmasked labelled frames and label sets
    feature_penalty: Tensor  # mean square of the conv features (already a mean)
    masked_correct: list[Tensor]  # per label set: correctly predicted masked frames
    unmasked_correct: list[Tensor]
    num_masked: Tensor  # labelled masked frames (a 0-dim tensor: reading it syncs with the device)
    num_unmasked: Tensor  # labelled unmasked frames
    topic_loss: Optional[Tensor] = None  # CE summed over utterances
    topic_correct: Optional[Tensor] = None
    num_utterances: int = 0
    extra: dict = field(default_factory=dict)


class _GradMultiply(torch.autograd.Function):
    """Identity forward; the gradient is multiplied by ``scale`` (fairseq's GradMultiply)."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad * ctx.scale, None


class PretrainModel(nn.Module):
    """``encoder`` plus the prediction heads for ``num_units`` (one entry per label set) and,
    when ``num_topics`` is given, the topic classifier."""

    def __init__(
        self,
        encoder: SSLEncoder,
        num_units: list[int],
        prediction: PredictionConfig | None = None,
        topic: TopicLossConfig | None = None,
        num_topics: int = 0,
    ):
        super().__init__()
        if not num_units or any(k < 1 for k in num_units):
            raise ValueError(f"num_units must list at least one label set of >= 1 units, found {num_units}")
        self.encoder = encoder
        self.cfg = prediction or PredictionConfig()
        self.topic_cfg = topic or TopicLossConfig()
        self.num_units = list(num_units)
        hidden, dim = encoder.hidden_size, self.cfg.final_dim
        heads = len(num_units) if self.cfg.untie_final_proj else 1
        self.final_proj = nn.Linear(hidden, dim * heads)
        # fairseq's label_embs_concat: uniform init, one table per label set
        self.label_embeddings = nn.ParameterList(nn.Parameter(torch.empty(k, dim).uniform_()) for k in num_units)
        self.topic_head: nn.Linear | None = None
        if self.topic_cfg.weight > 0:
            if num_topics < 2:
                raise ValueError(f"the topic loss needs topic labels with >= 2 topics, found {num_topics}")
            layer = self.topic_cfg.layer
            if not -1 <= layer <= encoder.num_layers:
                raise ValueError(f"topic layer must be within -1..{encoder.num_layers}, found {layer}")
            self.topic_head = nn.Linear(hidden, num_topics)

    def frame_lengths(self, wav_lens: Tensor) -> Tensor:
        return self.encoder.output_lengths(wav_lens)

    def _frontend(self, wavs: Tensor, wav_lens: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        enc = self.encoder
        if enc.config.normalize_waveform:
            wavs = normalize_waveforms(wavs, wav_lens)
        mult = self.cfg.feature_grad_mult
        if mult > 0 and self.training:
            feats, lengths = enc.feature_extractor(wavs, wav_lens)
            if mult != 1.0:
                feats = _GradMultiply.apply(feats, mult)
        else:
            with torch.no_grad():
                feats, lengths = enc.feature_extractor(wavs, wav_lens)
        if lengths is None:
            lengths = torch.full((wavs.shape[0],), feats.shape[1], dtype=torch.long, device=wavs.device)
        penalty = feats.float().pow(2).mean()
        return enc.feature_projection(feats), lengths, penalty

    def forward(
        self,
        wavs: Tensor,
        wav_lens: Tensor | None,
        mask: Tensor,
        targets: list[Tensor],
        topic_targets: Tensor | None = None,
    ) -> PretrainOutput:
        """wavs (B, S), wav_lens (B,) or None; mask (B, T) bool (True: masked) over the model's
        frames; targets: one (B, T) long tensor per label set (``IGNORE`` where a frame has no
        label); topic_targets: (B,) long (hard) or (B, num_topics) float (soft)."""
        if len(targets) != len(self.num_units):
            raise ValueError(f"expected {len(self.num_units)} label sets, found {len(targets)}")
        if wav_lens is not None and bool((wav_lens == wavs.shape[1]).all()):
            wav_lens = None  # nothing padded: no masks needed in the front end
        x, lengths, penalty = self._frontend(wavs, wav_lens)
        B, T, _ = x.shape
        if mask.shape != (B, T) or any(t.shape != (B, T) for t in targets):
            shapes = [tuple(t.shape) for t in targets]
            raise ValueError(f"mask {tuple(mask.shape)} and targets {shapes} must all be (batch, frames) = {(B, T)}")
        x = torch.where(mask[..., None], self.encoder.mask_embedding.to(x.dtype), x)
        need_states = self.topic_head is not None
        states, last = self.encoder.encoder(x, lengths if wav_lens is not None else None)

        valid = length_mask(lengths, T)  # (B, T)
        labelled = valid & (targets[0] != IGNORE)
        masked_sel = mask & labelled
        unmasked_sel = ~mask & labelled
        cfg = self.cfg
        proj = self.final_proj(last)  # (B, T, dim * heads)
        heads = proj.chunk(len(self.num_units), dim=-1) if cfg.untie_final_proj else [proj] * len(self.num_units)
        masked_loss = last.new_zeros((), dtype=torch.float32)
        unmasked_loss = last.new_zeros((), dtype=torch.float32)
        masked_correct, unmasked_correct = [], []
        # every frame is scored and the selections are weights, not indices: no data-dependent
        # shapes, so no host-device sync (the head is a small part of the step either way)
        m_w, u_w = masked_sel.float(), unmasked_sel.float()
        for head, emb, tgt in zip(heads, self.label_embeddings, targets):
            logits = self._logits(head, emb)  # (B, T, K)
            ce = F.cross_entropy(logits.transpose(1, 2), tgt.masked_fill(~labelled, IGNORE), reduction="none")  # (B, K, T) -> (B, T)
            hit = logits.argmax(-1) == tgt  # (B, T)
            masked_loss = masked_loss + (ce * m_w).sum()
            masked_correct.append((hit & masked_sel).sum())
            if cfg.unmasked_weight > 0:
                unmasked_loss = unmasked_loss + (ce * u_w).sum()
            unmasked_correct.append((hit & unmasked_sel).sum())
        out = PretrainOutput(
            masked_loss=masked_loss,
            unmasked_loss=unmasked_loss,
            feature_penalty=penalty,
            masked_correct=masked_correct,
            unmasked_correct=unmasked_correct,
            num_masked=masked_sel.sum(),
            num_unmasked=unmasked_sel.sum(),
        )
        if need_states and topic_targets is not None:
            out.topic_loss, out.topic_correct = self._topic_loss(states, last, valid, mask, topic_targets)
            out.num_utterances = B
        return out

    def _logits(self, frames: Tensor, embeddings: Tensor) -> Tensor:
        """Cosine similarity of each projected frame (..., D) with every unit embedding (K, D), over
        the temperature: (..., K). (fairseq scores the target against sampled negatives; HuBERT's
        negatives are all other units, which is exactly this full softmax.)"""
        with torch.autocast(frames.device.type, enabled=False):  # logits of up to 1 / logit_temp need fp32
            frames = F.normalize(frames.float(), dim=-1)
            embeddings = F.normalize(embeddings.float(), dim=-1)
            return frames @ embeddings.t() / self.cfg.logit_temp

    def _topic_loss(self, states: list[Tensor], last: Tensor, valid: Tensor, mask: Tensor, targets: Tensor):
        layer = self.topic_cfg.layer
        h = last if layer == -1 else states[layer]  # (B, T, C)
        keep = valid & ~mask if self.topic_cfg.pooling == "unmasked" else valid  # (B, T)
        keep = keep.to(h.dtype)
        pooled = (h * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp(min=1)  # (B, C)
        logits = self.topic_head(pooled).float()  # (B, num_topics)
        if targets.dim() == 1:
            loss = F.cross_entropy(logits, targets, reduction="sum")
            correct = (logits.argmax(-1) == targets).sum()
        else:  # soft targets: cross-entropy against the topic distribution
            loss = -(targets.float() * F.log_softmax(logits, -1)).sum()
            correct = (logits.argmax(-1) == targets.argmax(-1)).sum()
        return loss, correct
