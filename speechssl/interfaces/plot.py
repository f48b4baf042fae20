"""Bar charts of learned layer weights (``WeightedSum.layer_weights()``), one group per task."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Union

import numpy as np
from torch import Tensor

from speechssl.io import atomic_path

Weights = Union[Tensor, np.ndarray]


def _as_vector(name: str, weights: Weights) -> np.ndarray:
    if isinstance(weights, Tensor):
        weights = weights.detach().float().cpu().numpy()
    vec = np.asarray(weights, dtype=np.float64)
    if vec.ndim != 1 or vec.size == 0:
        raise ValueError(f"expected the layer weights of {name!r} as a non-empty 1-D vector, found shape {vec.shape}")
    if not np.all(np.isfinite(vec)):
        raise ValueError(f"expected finite layer weights for {name!r}, found {vec.tolist()}")
    return vec


def plot_layer_weights(
    weights: Mapping[str, Weights] | Weights,
    path: str | os.PathLike,
    title: str | None = None,
) -> Path:
    """Write a PNG bar chart of layer weights to ``path`` (atomically) and return the path.

    ``weights`` is one vector ``(num_layers,)`` or a mapping task name -> vector; each task is one
    group of bars, one bar per layer, coloured by layer index (layer 0 is the encoder's input
    embedding, as in ``hidden_states``). Tasks may have different numbers of layers. The figure is
    drawn on matplotlib's Agg canvas (no display, no pyplot state); on any error ``path`` is left
    as it was.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    if isinstance(weights, Mapping):
        if not weights:
            raise ValueError("expected at least one task's layer weights, found an empty mapping")
        groups = {str(name): _as_vector(str(name), w) for name, w in weights.items()}
    else:
        groups = {"": _as_vector("weights", weights)}

    max_layers = max(len(v) for v in groups.values())
    norm = Normalize(vmin=0, vmax=max(max_layers - 1, 1))
    mappable = ScalarMappable(norm=norm, cmap="viridis")

    fig = Figure(figsize=(max(4.0, 0.2 * sum(len(v) + 2 for v in groups.values())), 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    start, centers = 0, []
    for vec in groups.values():
        xs = start + np.arange(len(vec))
        ax.bar(xs, vec, width=0.9, color=mappable.to_rgba(np.arange(len(vec))))
        centers.append(start + (len(vec) - 1) / 2)
        start += len(vec) + 2  # a gap of two bars between groups
    ax.set_ylabel("layer weight")
    ax.set_ylim(bottom=min(0.0, *(float(v.min()) for v in groups.values())))  # room for negative raw weights
    if list(groups) == [""]:  # one vector: the layers are the x axis
        ax.set_xlabel("layer")
        ticks = np.arange(0, max_layers, 1 if max_layers <= 16 else 2)  # every other label past 16 layers
        ax.set_xticks(ticks, [str(i) for i in ticks])
    else:  # one group per task, the colour tells the layer
        ax.set_xticks(centers, list(groups))
        fig.colorbar(mappable, ax=ax, label="layer")
    if title:
        ax.set_title(title)

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)
