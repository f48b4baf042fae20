"""Building blocks of the HuBERT / WavLM / wav2vec 2.0 encoder family.

Leaf modules take plain numbers; :mod:`speechssl.models.encoder` assembles them from a config.
Shapes are batch-first: waveforms ``(B, S)``, conv features ``(B, C, T)``, transformer features
``(B, T, C)``. Lengths travel with the tensors and masks are built where they are needed, so a
padded batch gives every item the features it gets alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def conv_output_lengths(lengths: Tensor, layers: list[tuple[int, int, int]]) -> Tensor:
    """Output frames of a stack of unpadded 1-D convs, ``floor((L - kernel) / stride) + 1`` each."""
    for _, kernel, stride in layers:
        lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
    return lengths.clamp(min=0)


def length_mask(lengths: Tensor, max_len: int) -> Tensor:
    """``(B, max_len)`` bool, True at valid positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class MaskedChannelNorm(nn.Module):
    """GroupNorm with one group per channel (fairseq's ``extractor_mode=default`` first-layer norm),
    computing the statistics over the valid frames of each item only.

    Without lengths it equals ``nn.GroupNorm(C, C)``; with lengths, padding does not change the
    valid frames' output.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:  # x: (B, C, T)
        if lengths is None:
            return F.group_norm(x, x.shape[1], self.weight, self.bias, self.eps)
        mask = length_mask(lengths, x.shape[-1])[:, None, :].to(x.dtype)  # (B, 1, T)
        count = mask.sum(-1, keepdim=True).clamp(min=1)  # (B, 1, 1)
        mean = (x * mask).sum(-1, keepdim=True) / count  # (B, C, 1)
        var = ((x - mean).square() * mask).sum(-1, keepdim=True) / count  # biased, as GroupNorm
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return x * self.weight[None, :, None] + self.bias[None, :, None]


class ConvLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a ``(B, C, T)`` tensor (fairseq's ``extractor_mode=layer_norm``)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)  # (B, C, T) -> (B, T, C) -> (B, C, T)


class ConvBlock(nn.Module):
    """Conv1d, optional norm, GELU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, bias: bool, norm: str | None):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=stride, bias=bias)
        if norm == "group":
            self.norm: nn.Module | None = MaskedChannelNorm(out_channels)
        elif norm == "layer":
            self.norm = ConvLayerNorm(out_channels)
        elif norm is None:
            self.norm = None
        else:
            raise ValueError(f"unknown conv norm {norm!r}; valid: 'group', 'layer', None")

    def forward(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        x = self.conv(x)
        if lengths is not None:
            lengths = torch.div(lengths - self.kernel, self.stride, rounding_mode="floor") + 1
        if isinstance(self.norm, MaskedChannelNorm):
            x = self.norm(x, lengths)
        elif self.norm is not None:
            x = self.norm(x)
        return F.gelu(x), lengths


class ConvFeatureExtractor(nn.Module):
    """The waveform front end: a stack of strided convs, 320x down-sampling for the standard stack.

    ``mode="group_norm"`` (fairseq ``extractor_mode=default``, Base models): a per-channel norm
    after the first conv only. ``mode="layer_norm"`` (Large models): LayerNorm after every conv.
    """

    def __init__(self, layers: list[tuple[int, int, int]], mode: str, bias: bool):
        super().__init__()
        if mode not in ("group_norm", "layer_norm"):
            raise ValueError(f"unknown extractor mode {mode!r}; valid: 'group_norm', 'layer_norm'")
        self.layer_specs = [tuple(spec) for spec in layers]
        blocks, in_channels = [], 1
        for i, (channels, kernel, stride) in enumerate(self.layer_specs):
            norm = "layer" if mode == "layer_norm" else ("group" if i == 0 else None)
            blocks.append(ConvBlock(in_channels, channels, kernel, stride, bias, norm))
            in_channels = channels
        self.layers = nn.ModuleList(blocks)

    def forward(self, wavs: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if wavs.device.type == "cpu" and wavs.dtype == torch.float32:
            if not torch.is_grad_enabled():
                return self._forward_gemm(wavs, lengths)
            if not torch.is_autocast_enabled("cpu"):
                return self._forward_train_cpu(wavs, lengths)
        return self._forward_conv(wavs, lengths)

    def _forward_conv(self, wavs: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The reference computation: torch's conv1d layer by layer (GPU, and CPU under autocast)."""
        x = wavs[:, None, :]  # (B, S) -> (B, 1, S)
        for block in self.layers:
            x, lengths = block(x, lengths)
        return x.transpose(1, 2), lengths  # (B, C, T) -> (B, T, C)

    def _forward_train_cpu(self, wavs: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """The same function with autograd, for training on CPU in fp32: after the first layer,
        channels-last, each strided conv one GEMM per tap forward and backward
        (:class:`_StridedConv`), where oneDNN's conv backward on these shapes runs at half its
        forward's rate."""
        first = self.layers[0]
        channels, kernel, stride = self.layer_specs[0]
        B, S = wavs.shape
        T = (S - kernel) // stride + 1
        n = conv_output_lengths(lengths, self.layer_specs[:1]) if lengths is not None else None
        if isinstance(first.norm, MaskedChannelNorm):
            norm = first.norm
            x = _FirstConvChannelNorm.apply(wavs, first.conv.weight, first.conv.bias, norm.weight, norm.bias, n, stride, norm.eps)
        else:
            frames = wavs.contiguous().as_strided((B, T, kernel), (S, stride, 1))  # (B, T, K); no grad into waveforms
            x = frames @ first.conv.weight[:, 0, :].t()  # (B, T, K) @ (K, C) -> (B, T, C)
            if first.conv.bias is not None:
                x = x + first.conv.bias
            if first.norm is not None:
                x = F.layer_norm(x, (channels,), first.norm.weight, first.norm.bias, first.norm.eps)
        x = F.gelu(x)
        for block, (channels, kernel, stride) in zip(self.layers[1:], self.layer_specs[1:]):
            x = _StridedConv.apply(x, block.conv.weight, block.conv.bias, stride)
            if n is not None:
                n = torch.div(n - kernel, stride, rounding_mode="floor") + 1
            if block.norm is not None:
                if isinstance(block.norm, MaskedChannelNorm):
                    raise AssertionError("a per-channel norm is only used after the first conv")
                x = F.layer_norm(x, (channels,), block.norm.weight, block.norm.bias, block.norm.eps)
            x = F.gelu(x)
        return x, n

    FUSED_LAYERS = 3  # conv layers after the first computed blockwise with it (inference on CPU)
    BLOCK_FRAMES = 512  # output frames of the last fused layer per block (its inputs stay in cache)

    @torch.no_grad()
    def _forward_gemm(self, wavs: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """The same function for inference on CPU, computed channels-last as one GEMM per tap and
        item on strided views (no im2col copies), with the first layer's per-channel norm folded
        into its weights and GELU applied in place. fp32 convs over long time axes are where an
        encoder's CPU time goes; this runs them at GEMM speed."""
        B, S = wavs.shape
        wavs = wavs.contiguous()
        first = self.layers[0]
        channels, kernel, stride = self.layer_specs[0]
        T = (S - kernel) // stride + 1
        frames = wavs.as_strided((B, T, kernel), (S, stride, 1))  # (B, T, K): frame t is wav[t*stride : t*stride+K]
        w = first.conv.weight[:, 0, :].t()  # (C, 1, K) -> (K, C)
        n_frames = conv_output_lengths(lengths, self.layer_specs[:1]) if lengths is not None else None
        # the first layer as an affine map of the frames: x = frames @ w_b + shift_b
        affine = []
        for b in range(B):
            if isinstance(first.norm, MaskedChannelNorm):
                # GroupNorm(C, C) of a bias-free linear map of the frames: each channel's mean and
                # variance follow from the frames' mean and covariance, so the norm folds into W.
                valid = frames[b, : int(n_frames[b])] if n_frames is not None else frames[b]
                mean = valid.mean(0, dtype=torch.float64)  # (K,)
                centered = valid.double() - mean
                cov = centered.t() @ centered / valid.shape[0]  # (K, K)
                w64 = w.double()
                var = ((cov @ w64) * w64).sum(0)  # (C,): w_c^T cov w_c
                scale = first.norm.weight.double() * torch.rsqrt(var + first.norm.eps)
                shift = first.norm.bias.double() - (mean @ w64) * scale  # the conv bias cancels out
                affine.append(((w64 * scale).float(), shift.float()))
            else:
                affine.append((w, first.conv.bias))
        specs = list(zip(self.layers[1:], self.layer_specs[1:]))
        fused = []
        while isinstance(first.norm, MaskedChannelNorm) and specs and specs[0][0].norm is None and len(fused) < self.FUSED_LAYERS:
            fused.append(specs.pop(0))
        if fused:
            # layer 1 and the next ones, a cache-sized block of time at a time
            x = self._first_layers_blocked(frames, affine, fused)
        else:
            x = torch.empty(B, T, channels, dtype=wavs.dtype)
            for b, (wb, shift) in enumerate(affine):
                torch.mm(frames[b], wb, out=x[b])
                if shift is not None:
                    x[b].add_(shift)
            if isinstance(first.norm, ConvLayerNorm):
                x = F.layer_norm(x, (channels,), first.norm.weight, first.norm.bias, first.norm.eps)
            x = _gelu_(x)
        for block, (channels, kernel, stride) in specs:
            T_in = x.shape[1]
            T = (T_in - kernel) // stride + 1
            taps = [block.conv.weight[:, :, j].t().contiguous() for j in range(kernel)]  # (C_out, C_in, K) -> K x (C_in, C_out)
            y = torch.empty(B, T, channels, dtype=x.dtype)
            span = stride * (T - 1) + 1
            for b in range(B):
                xb = x[b]  # (T_in, C_in)
                if block.conv.bias is not None:
                    torch.addmm(block.conv.bias, xb[0:span:stride], taps[0], out=y[b])
                else:
                    torch.mm(xb[0:span:stride], taps[0], out=y[b])
                for j in range(1, kernel):
                    y[b].addmm_(xb[j : j + span : stride], taps[j])
            if isinstance(block.norm, ConvLayerNorm):
                y = F.layer_norm(y, (channels,), block.norm.weight, block.norm.bias, block.norm.eps)
            elif block.norm is not None:
                raise AssertionError("a per-channel norm is only used after the first conv")
            x = _gelu_(y)
        if lengths is not None:
            lengths = conv_output_lengths(lengths, self.layer_specs)
        return x, lengths


    def _first_layers_blocked(self, frames: Tensor, affine, layers) -> Tensor:
        """Layer 1 (an affine map of the frames, its norm folded in, then GELU) and ``layers`` (bias-
        free or biased convs without norm, each then GELU), computed ``chunk`` output frames of the
        last of them at a time: the intermediate activations (the largest tensors of the whole model)
        only ever exist one cache-sized block at a time. frames: (B, T1, K1) -> (B, T, C)."""
        B, T1, _ = frames.shape
        chunk = self.BLOCK_FRAMES
        sizes = [T1]
        for _, (_, kernel, stride) in layers:
            sizes.append((sizes[-1] - kernel) // stride + 1)
        taps = [[blk.conv.weight[:, :, j].t().contiguous() for j in range(kernel)] for blk, (_, kernel, _) in layers]  # K x (C_in, C_out)
        # frames of each level needed for one block of the last level (plus slack for the ragged end)
        need = [chunk]
        for _, (_, kernel, stride) in reversed(layers):
            need.insert(0, stride * (need[0] - 1) + kernel)
        bufs = [torch.empty(n, w.shape[1], dtype=frames.dtype) for n, w in zip(need[:-1], [affine[0][0]] + [t[0] for t in taps[:-1]])]
        channels = layers[-1][1][0]
        out = torch.empty(B, sizes[-1], channels, dtype=frames.dtype)
        for b, (wb, shift) in enumerate(affine):
            for o0 in range(0, sizes[-1], chunk):
                ranges = [(o0, min(o0 + chunk, sizes[-1]))]  # frame ranges per level, from the last level down
                for _, (_, kernel, stride) in reversed(layers):
                    lo, hi = ranges[0]
                    ranges.insert(0, (lo * stride, (hi - 1) * stride + kernel))
                lo, hi = ranges[0]
                h = bufs[0][: hi - lo]
                torch.mm(frames[b, lo:hi], wb, out=h)
                h.add_(shift)
                _gelu_(h)
                for i, (blk, (_, kernel, stride)) in enumerate(layers):
                    lo, hi = ranges[i + 1]
                    n = hi - lo
                    dst = out[b, lo:hi] if i == len(layers) - 1 else bufs[i + 1][:n]
                    span = stride * (n - 1) + 1  # h starts at input frame lo * stride
                    if blk.conv.bias is not None:
                        torch.addmm(blk.conv.bias, h[0:span:stride], taps[i][0], out=dst)
                    else:
                        torch.mm(h[0:span:stride], taps[i][0], out=dst)
                    for j in range(1, kernel):
                        dst.addmm_(h[j : j + span : stride], taps[i][j])
                    h = _gelu_(dst)
        return out


class _StridedConv(torch.autograd.Function):
    """A 1-D conv over a channels-last ``(B, T_in, C_in)`` tensor, weight ``(C_out, C_in, K)``,
    stride ``s``, no padding, as GEMMs on strided views of the input, forward and backward.

    Forward and weight gradient: one GEMM per tap and item (tap j reads rows ``j, j + s, ...``).
    (The K frames under an output frame are K * C_in consecutive floats, but as a matrix those
    windows overlap, which BLAS refuses: torch would copy them.) Input gradient: ``dy @ W^T`` written
    straight into grad_x, s taps per GEMM: taps ``j0 .. j0 + s - 1`` of frame t are rows
    ``t * s + j0 ..``, consecutive and not overlapping between frames, so a ``(T, s * C_in)`` view
    with row stride ``s * C_in`` is a valid output matrix; the first GEMM overwrites, later ones add."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, stride: int) -> Tensor:
        B, T_in, C_in = x.shape
        C_out, _, K = weight.shape
        T = (T_in - K) // stride + 1
        span = stride * (T - 1) + 1
        taps = weight.permute(2, 1, 0)  # (C_out, C_in, K) -> (K, C_in, C_out)
        y = torch.empty(B, T, C_out, dtype=x.dtype)
        for b in range(B):
            xb = x[b]
            if bias is not None:
                torch.addmm(bias, xb[0:span:stride], taps[0], out=y[b])
            else:
                torch.mm(xb[0:span:stride], taps[0], out=y[b])
            for j in range(1, K):
                y[b].addmm_(xb[j : j + span : stride], taps[j])
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.has_bias = stride, bias is not None
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        s = ctx.stride
        B, T_in, C_in = x.shape
        C_out, _, K = weight.shape
        T = grad.shape[1]
        span = s * (T - 1) + 1
        grad = grad.contiguous()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            taps = torch.zeros(K, C_in, C_out, dtype=x.dtype)
            for b in range(B):
                for j in range(K):
                    taps[j].addmm_(x[b, j : j + span : s].t(), grad[b])  # (C_in, T) @ (T, C_out)
            grad_w = taps.permute(2, 1, 0)  # (K, C_in, C_out) -> (C_out, C_in, K)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 1))
        if ctx.needs_input_grad[0]:
            w_t = weight.permute(0, 2, 1).reshape(C_out, K * C_in)  # (C_out, K*C_in): tap j in columns j*C_in..
            # taps 0..s-1 of all frames cover rows 0 .. s*T - 1 exactly once: the first GEMM overwrites
            # them; the rows after that, and the gaps when K < s, start from zero
            covers = K >= s
            grad_x = torch.empty_like(x) if covers else torch.zeros_like(x)
            for b in range(B):
                if covers:
                    grad_x[b, s * T :].zero_()
                for j0 in range(0, K, s):
                    width = min(s, K - j0) * C_in
                    rows = grad_x[b, j0:].as_strided((T, width), (s * C_in, 1))  # (T, width) from row j0
                    part = w_t[:, j0 * C_in : j0 * C_in + width]
                    if covers and j0 == 0:
                        torch.mm(grad[b], part, out=rows)
                    else:
                        rows.addmm_(grad[b], part)
        return grad_x, grad_w, grad_b, None


class _FirstConvChannelNorm(torch.autograd.Function):
    """The first conv layer (one input channel, weight ``(C, 1, K)``, stride s) and its
    :class:`MaskedChannelNorm`, for training on CPU: waveforms ``(B, S)`` -> channels-last
    ``(B, T, C)``, before the GELU.

    The layer's output is a linear map of the waveform's frames ``F`` (``(T, K)``, a strided view),
    so each channel's mean and variance over the valid frames follow from the frames' mean and
    ``K x K`` covariance (in float64), the norm folds into the weights, and the forward is one GEMM
    per item. The backward needs only ``F^T dy`` and ``sum_t dy`` (one more GEMM per item): the
    gradients of the weight, the norm's scale and shift and the conv bias are all small products
    of those with the frames' statistics. Neither the conv output nor its gradient, the largest
    tensors of the whole model, is ever made. No gradient flows into the waveforms."""

    @staticmethod
    def forward(ctx, wavs, weight, bias, gamma, beta, lengths, stride: int, eps: float) -> Tensor:
        B, S = wavs.shape
        C, _, K = weight.shape
        T = (S - K) // stride + 1
        frames = wavs.detach().contiguous().as_strided((B, T, K), (S, stride, 1))  # (B, T, K)
        w = weight.detach()[:, 0, :].double()  # (C, K)
        c0 = bias.detach().double() if bias is not None else w.new_zeros(C)
        counts = [T] * B if lengths is None else [min(int(n), T) for n in lengths.tolist()]
        y = torch.empty(B, T, C, dtype=wavs.dtype)
        stats = []  # per item: frames' mean (K,), second moment (K, K), x's mean and rstd (C,)
        for b, n in enumerate(counts):
            if n > 0:
                fv = frames[b, :n].double()
                mf = fv.mean(0)
                centred = fv - mf
                cov = centred.t() @ centred / n
                mean, var = w @ mf + c0, ((w @ cov) * w).sum(1)  # each channel: w_c . mf + c0, w_c^T cov w_c
            else:  # MaskedChannelNorm of an empty item: mean and variance 0
                mf, cov = w.new_zeros(K), w.new_zeros(K, K)
                mean, var = w.new_zeros(C), w.new_zeros(C)
            rstd = torch.rsqrt(var + eps)
            scale = gamma.detach().double() * rstd
            shift = beta.detach().double() + (c0 - mean) * scale
            torch.addmm(shift.to(y.dtype), frames[b], (w.t() * scale).to(y.dtype), out=y[b])
            stats.append((mf, cov + torch.outer(mf, mf), mean, rstd))
        ctx.save_for_backward(wavs, weight, bias, gamma)
        ctx.stats, ctx.counts, ctx.stride = stats, counts, stride
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):
        wavs, weight, bias, gamma = ctx.saved_tensors
        B, S = wavs.shape
        C, _, K = weight.shape
        T = grad.shape[1]
        frames = wavs.contiguous().as_strided((B, T, K), (S, ctx.stride, 1))
        ones = torch.ones(T, 1, dtype=grad.dtype)
        w = weight[:, 0, :].double()  # (C, K)
        c0 = bias.double() if bias is not None else w.new_zeros(C)
        g_w, g_c0 = w.new_zeros(C, K), w.new_zeros(C)
        g_gamma, g_beta = w.new_zeros(C), w.new_zeros(C)
        grad = grad.contiguous()
        for b, (n, (mf, second, mean, rstd)) in enumerate(zip(ctx.counts, ctx.stats)):
            # one pass over dy: F^T dy (K, C) and sum_t dy (C,), together as [F, 1]^T dy
            moments = (torch.cat([frames[b], ones], 1).t() @ grad[b]).double()  # (K + 1, C)
            fg, s1 = moments[:K], moments[K]
            s2 = (w.t() * fg).sum(0) + (c0 - mean) * s1  # sum_t dy * (x - mean), x = F w^T + c0
            k = gamma.double() * rstd
            g_gamma += rstd * s2
            g_beta += s1
            # dx = k dy on every frame, plus u x + v on the valid ones (through the statistics)
            g_w += k[:, None] * fg.t()
            g_c0 += k * s1
            if n > 0:
                u = -k * rstd.square() * s2 / n
                v = -k * s1 / n - u * mean
                # sum over valid frames of F^T x = n (E[f f^T] w^T + E[f] c0^T); of F^T 1 = n E[f]
                ftx = n * (second @ w.t() + torch.outer(mf, c0))  # (K, C)
                g_w += u[:, None] * ftx.t() + v[:, None] * (n * mf)[None, :]
                g_c0 += u * n * mean + v * n
        dtype = weight.dtype
        return (
            None,
            g_w.to(dtype)[:, None, :] if ctx.needs_input_grad[1] else None,
            g_c0.to(dtype) if bias is not None and ctx.needs_input_grad[2] else None,
            g_gamma.to(dtype) if ctx.needs_input_grad[3] else None,
            g_beta.to(dtype) if ctx.needs_input_grad[4] else None,
            None,
            None,
            None,
        )


def _gelu_(x: Tensor) -> Tensor:
    """Exact (erf) GELU in place: the front end's activations are too large to copy."""
    return torch.ops.aten.gelu_(x)


class FeatureProjection(nn.Module):
    """LayerNorm (optional) + Linear from conv channels to the transformer width, then dropout."""

    def __init__(self, in_features: int, out_features: int, dropout: float, layer_norm: bool = True, eps: float = 1e-5):
        super().__init__()
        self.layer_norm = nn.LayerNorm(in_features, eps=eps) if layer_norm else None
        self.projection = nn.Linear(in_features, out_features)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return self.dropout(self.projection(x))


class ConvPositionalEmbedding(nn.Module):
    """Grouped, weight-normalised conv over time whose GELU output is added to its input
    (fairseq ``conv_pos`` / ``conv_pos_groups``). The weight is ``g * v / ||v||``, the norm taken
    over all dims but the kernel dim (``torch.nn.utils.weight_norm(conv, dim=2)``)."""

    def __init__(self, channels: int, kernel: int, groups: int):
        super().__init__()
        if channels % groups:
            raise ValueError(f"positional conv: {channels} channels do not split into {groups} groups")
        self.kernel, self.groups = kernel, groups
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.empty(channels, channels // groups, kernel))
        self.bias = nn.Parameter(torch.zeros(channels))
        nn.init.normal_(self.weight_v, mean=0.0, std=math.sqrt(4.0 / (kernel * channels)))
        with torch.no_grad():
            self.weight_g.copy_(self.weight_v.norm(dim=(0, 1), keepdim=True))

    def weight(self) -> Tensor:
        return self.weight_g * self.weight_v / self.weight_v.norm(dim=(0, 1), keepdim=True)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, T, C), padded frames already zero
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # torch 2.11's CPU bf16 grouped conv1d is wrong for some shapes (e.g. 32 channels, 4
            # groups, kernel 16: ~50% relative error against float64; right at 768/16/128), so on
            # CPU this conv stays fp32 under autocast
            with torch.autocast("cpu", enabled=False):
                return self._forward(x.float())
        return self._forward(x)

    def _forward(self, x: Tensor) -> Tensor:
        y = F.conv1d(x.transpose(1, 2), self.weight(), self.bias, padding=self.kernel // 2, groups=self.groups)
        if self.kernel % 2 == 0:  # an even kernel with symmetric padding gives one frame too many
            y = y[..., :-1]
        return F.gelu(y).transpose(1, 2)  # (B, C, T) -> (B, T, C)


class RelativePositionBias(nn.Module):
    """WavLM's bucketed relative position bias (T5-style, bidirectional): one learned value per
    bucket and head, computed once per forward and shared by all layers."""

    def __init__(self, num_buckets: int, max_distance: int, num_heads: int):
        super().__init__()
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.embedding = nn.Embedding(num_buckets, num_heads)

    def buckets(self, relative: Tensor) -> Tensor:
        half = self.num_buckets // 2  # one half per direction
        out = (relative > 0).long() * half
        distance = relative.abs()
        exact = half // 2  # distances below this get a bucket each; beyond, log-spaced up to max_distance
        log_ratio = torch.log(distance.float() / exact) / math.log(self.max_distance / exact)
        large = (exact + log_ratio * (half - exact)).long().clamp(max=half - 1)
        return out + torch.where(distance < exact, distance, large)

    def forward(self, length: int) -> Tensor:
        pos = torch.arange(length, device=self.embedding.weight.device)
        relative = pos[None, :] - pos[:, None]  # (T_query, T_key): key - query
        return self.embedding(self.buckets(relative)).permute(2, 0, 1)  # (T, T, H) -> (H, T, T)


class SelfAttention(nn.Module):
    """Multi-head self-attention through ``scaled_dot_product_attention``.

    With ``gated_bias=True`` (WavLM's ``gru_rel_pos``) the shared relative position bias is scaled
    per query and head by a gate computed from the layer input.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float, gated_bias: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention: width {dim} is not divisible by {num_heads} heads")
        self.num_heads, self.head_dim, self.dropout = num_heads, dim // num_heads, dropout
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        if gated_bias:
            self.gate_proj: nn.Linear | None = nn.Linear(self.head_dim, 8)
            self.gate_const = nn.Parameter(torch.ones(1, num_heads, 1, 1))
        else:
            self.gate_proj = None

    def _gate(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        per_head = x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, T, C) -> (B, H, T, D)
        proj = self.gate_proj(per_head).view(B, self.num_heads, T, 2, 4).sum(-1)  # (B, H, T, 8) -> (B, H, T, 2)
        gate_a, gate_b = torch.sigmoid(proj).chunk(2, dim=-1)  # (B, H, T, 1) each
        return gate_a * (gate_b * self.gate_const - 1.0) + 2.0  # (B, H, T, 1)

    def forward(self, x: Tensor, key_padding: Tensor | None = None, position_bias: Tensor | None = None) -> Tensor:
        """x: (B, T, C); key_padding: (B, T) bool, True at padded frames; position_bias: (H, T, T)."""
        B, T, C = x.shape
        split = lambda t: t.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # noqa: E731  (B, T, C) -> (B, H, T, D)
        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        mask = None
        if position_bias is not None:
            bias = position_bias[None].to(q.dtype)  # (1, H, T, T)
            mask = self._gate(x).to(q.dtype) * bias if self.gate_proj is not None else bias  # (B|1, H, T, T)
        if key_padding is not None:
            pad = key_padding[:, None, None, :]  # (B, 1, 1, T)
            mask = (
                torch.zeros(pad.shape, dtype=q.dtype, device=q.device) if mask is None else mask
            ).masked_fill(pad, float("-inf"))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))  # (B, H, T, D) -> (B, T, C)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, activation_dropout: float, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.activation_dropout = nn.Dropout(activation_dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc1(x)
        # in inference, GELU in place: no second (B, T, 4C) tensor to allocate and fill
        h = F.gelu(h) if h.requires_grad else _gelu_(h)
        return self.dropout(self.fc2(self.activation_dropout(h)))


class TransformerLayer(nn.Module):
    """One encoder layer. ``pre_norm=False``: post-LN (Base models, fairseq ``layer_norm_first=False``);
    ``pre_norm=True``: pre-LN ("stable layer norm", Large models)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        *,
        pre_norm: bool,
        dropout: float,
        attention_dropout: float,
        activation_dropout: float,
        gated_bias: bool = False,
        eps: float = 1e-5,
    ):
        super().__init__()
        self.pre_norm = pre_norm
        self.attention = SelfAttention(dim, num_heads, attention_dropout, gated_bias)
        self.attention_norm = nn.LayerNorm(dim, eps=eps)
        self.feed_forward = FeedForward(dim, ffn_dim, activation_dropout, dropout)
        self.ffn_norm = nn.LayerNorm(dim, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, key_padding: Tensor | None = None, position_bias: Tensor | None = None) -> Tensor:
        if self.pre_norm:
            x = x + self.dropout(self.attention(self.attention_norm(x), key_padding, position_bias))
            return x + self.feed_forward(self.ffn_norm(x))
        x = self.attention_norm(x + self.dropout(self.attention(x, key_padding, position_bias)))
        return self.ffn_norm(x + self.feed_forward(x))
