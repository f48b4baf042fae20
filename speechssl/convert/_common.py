"""What the torchaudio and fairseq converters share: renaming a foreign state dict to ours strictly
(every key used, ignored by an explicit pattern, or an error), the forms a weight-normalised
positional conv is stored in, and a load that reports mismatches as ``ValueError``."""

from __future__ import annotations

import re
from typing import Iterable, Mapping

from torch import Tensor

from speechssl.models.encoder import SSLEncoder

# the positional conv's weight norm, as (magnitude, direction) key suffixes: the old
# torch.nn.utils.weight_norm hook, then torch.nn.utils.parametrizations.weight_norm
WEIGHT_NORM_FORMS = (("weight_g", "weight_v"), ("parametrizations.weight.original0", "parametrizations.weight.original1"))


def format_keys(keys: Iterable[str], limit: int = 12) -> str:
    keys = list(keys)
    if not keys:
        return "none"
    shown = ", ".join(keys[:limit])
    return shown + (f" ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def pop_weight_norm(state: dict[str, Tensor], prefix: str) -> tuple[Tensor, Tensor] | None:
    """Pop the positional conv weight under ``prefix`` (``"...conv."``) as ``(g, v)`` with
    ``g * v / ||v||`` the weight, the norm over all dims but the kernel dim (weight norm ``dim=2``).

    Reads either weight-norm form, or a plain ``weight`` (weight norm removed), which is the same
    function with ``v = weight`` and ``g = ||weight||``. None when no form is there.
    """
    for g_name, v_name in WEIGHT_NORM_FORMS:
        if prefix + g_name in state and prefix + v_name in state:
            return state.pop(prefix + g_name), state.pop(prefix + v_name)
    if prefix + "weight" in state:
        weight = state.pop(prefix + "weight")
        return weight.norm(dim=(0, 1), keepdim=True), weight
    return None


def rename_strict(
    state: Mapping[str, Tensor],
    pairs: Iterable[tuple[str, str]],
    *,
    source: str,
    ignore: re.Pattern[str] | None = None,
) -> dict[str, Tensor]:
    """Rename ``state`` (foreign names) to ours through ``pairs`` of ``(ours, theirs)`` names.

    Keys matching ``ignore`` are dropped (pretraining heads and the like, named explicitly by the
    caller). A pair whose foreign key is absent, or a key no pair or pattern claims, raises a
    ``ValueError`` that names ``source`` and lists the keys.
    """
    left = dict(state)
    out: dict[str, Tensor] = {}
    missing = []
    for ours, theirs in pairs:
        if theirs in left:
            out[ours] = left.pop(theirs)
        else:
            missing.append(theirs)
    unexpected = [k for k in left if ignore is None or not ignore.search(k)]
    if missing or unexpected:
        raise ValueError(
            f"{source}: weights do not match the architecture "
            f"(missing: {format_keys(missing)}; unexpected: {format_keys(unexpected)})"
        )
    return out


def load_strict(encoder: SSLEncoder, state: Mapping[str, Tensor], source: str) -> SSLEncoder:
    """``encoder.load_state_dict(state, strict=True)`` with missing, unexpected and wrongly shaped
    tensors reported together as one ``ValueError`` naming ``source``. Returns the encoder in eval mode."""
    own = encoder.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        raise ValueError(
            f"{source}: weights do not match the architecture (missing: {format_keys(missing)}; "
            f"unexpected: {format_keys(unexpected)}; wrong shape: {format_keys(shapes)})"
        )
    encoder.load_state_dict(dict(state), strict=True)
    return encoder.eval()
