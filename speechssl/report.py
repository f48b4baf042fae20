"""One report of a whole run (``speechssl report``; egs/mini/run.sh's last stage): Markdown with PNG
figures, made from what the stages wrote.

Inputs, each optional, each a folder or file some verb wrote:

- pretraining runs (``runs.tsv`` of egs/mini/ssl/run.sh: run name, pretraining folder, units, topics):
  the training curves of their ``log.jsonl``, the label quality of each run's units against the
  phone alignments, and the topic-label analysis;
- more units (``NAME=LABEL_DIR``, e.g. the tokens' k-means units) for the label-quality table;
- tokens (``tokens extract``'s folder) and their unit BPE (``tokens bpe-encode``'s JSONL);
- downstream evaluations (``NAME=FOLDER`` of ``asr decode``, ``sv evaluate``, ``er evaluate``): their
  tables, the learned layer weights of each task, one DET plot of all SV systems, the confusion
  matrix of one ER system, and ASR's CER before and after adapters;
- a comparison: the systems named in ``compare``, one row each, with each task's main figure.

:func:`write_report` writes the figures first and ``report.md`` last (atomically), so a folder without
``report.md`` is incomplete.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from speechssl.downstream.results import count_str, minutes_str, size_str
from speechssl.io import atomic_path, atomic_write_text

TASK_NAMES = {"asr": "ASR", "sv": "speaker verification", "er": "emotion"}


@dataclass
class Run:
    """One pretraining run of a runs.tsv."""

    name: str
    pretrain: Path
    units: Optional[Path]
    topics: Optional[Path]


@dataclass
class ReportInputs:
    out: Path
    title: str = "Report"
    notes: str = ""
    stats: Optional[Path] = None  # 'speechssl stats --json' output
    runs: list[Run] = field(default_factory=list)
    units: dict[str, Path] = field(default_factory=dict)  # more label folders
    tokens: Optional[Path] = None  # 'tokens extract' folder
    bpe: Optional[Path] = None  # 'tokens bpe-encode' JSONL
    interfaces: dict[str, Path] = field(default_factory=dict)  # interface name -> er eval folder
    asr: dict[str, Path] = field(default_factory=dict)  # system -> asr decode folder
    sv: dict[str, Path] = field(default_factory=dict)  # system -> sv eval folder
    er: dict[str, Path] = field(default_factory=dict)  # system -> er eval folder
    compare: list[str] = field(default_factory=list)  # systems of the comparison table
    before_after: Optional[tuple[str, str]] = None  # ASR systems: before adapters, after
    focus: Optional[str] = None  # the system whose layer weights per task and ER confusion are shown (default: the last compared)


# --------------------------------------------------------------------------------------- reading


def read_runs(path: str | os.PathLike) -> list[Run]:
    """Read a runs.tsv (header ``run pretrain units topics``; ``-`` for none)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no runs.tsv (egs/mini/ssl/run.sh writes it in its report stage)")
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    if not rows or rows[0] != ["run", "pretrain", "units", "topics"]:
        raise ValueError(f"{path}: expected the header 'run pretrain units topics' (tab-separated), found {rows[:1]}")
    runs = []
    for lineno, row in enumerate(rows[1:], start=2):
        if len(row) != 4:
            raise ValueError(f"{path}:{lineno}: expected 4 tab-separated fields, found {len(row)}: {row}")
        name, pretrain, units, topics = row
        runs.append(Run(name, Path(pretrain), None if units == "-" else Path(units), None if topics == "-" else Path(topics)))
    if not runs:
        raise ValueError(f"{path}: no runs listed")
    return runs


def read_log(path: Path) -> tuple[list[dict], list[dict]]:
    """The train and valid records of a training log.jsonl."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no training log")
    train, valid = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: not JSON ({e.msg})") from None
        (train if record.get("split") == "train" else valid if record.get("split") == "valid" else []).append(record)
    if not train:
        raise ValueError(f"{path}: no training records")
    return train, valid


def read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found ({what})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg})") from None


def read_eval(folder: Path, task: str) -> dict:
    """An evaluation folder's metrics.json, with the layer weights and training facts of its model
    (summary.json of the model folder the metrics name)."""
    m = read_json(folder / "metrics.json", f"the metrics of 'speechssl {task} {'decode' if task == 'asr' else 'evaluate'}'")
    model = Path(m.get("exp", folder.parent))
    summary = model / "summary.json"
    if summary.is_file():
        s = json.loads(summary.read_text())
        m.setdefault("layer_weights", s.get("layer_weights"))
        m.setdefault("steps", s.get("steps"))
    m["folder"] = str(folder)
    return m


# ------------------------------------------------------------------------------------- formatting


def pct(x: Optional[float], digits: int = 2) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}"


def _value(record: dict, key: str) -> float:
    """A logged metric for a plot: NaN (a gap) where it was not finite (``null``) or not logged."""
    v = record.get(key)
    return float("nan") if v is None else v


def num(x: Optional[float], spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] = ()) -> list[str]:
    """A Markdown table; columns flagged in ``right`` are right-aligned."""
    align = ["---:" if i < len(right) and right[i] else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _weights_str(w: Optional[Sequence[float]]) -> str:
    return "-" if not w else " ".join(f"{x:.2f}" for x in w)


# ---------------------------------------------------------------------------------------- figures


def plot_curves(logs: dict[str, tuple[list[dict], list[dict]]], path: Path) -> Path:
    """Training loss (train: lines, valid: markers) and masked accuracy of each pretraining run."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.0, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_acc, ax_topic = fig.subplots(1, 3)
    for name, (train, valid) in logs.items():
        (line,) = ax_loss.plot([r["step"] for r in train], [_value(r, "loss") for r in train], label=name)
        colour = line.get_color()
        if valid:
            ax_loss.plot([r["step"] for r in valid], [_value(r, "loss") for r in valid], "o--", color=colour, markersize=4)
        acc = [r for r in train if "masked_acc" in r]
        ax_acc.plot([r["step"] for r in acc], [_value(r, "masked_acc") for r in acc], color=colour, label=name)
        vacc = [r for r in valid if "masked_acc" in r]
        if vacc:
            ax_acc.plot([r["step"] for r in vacc], [_value(r, "masked_acc") for r in vacc], "o--", color=colour, markersize=4)
        topic = [r for r in train if "topic" in r]
        if topic:
            ax_topic.plot([r["step"] for r in topic], [_value(r, "topic") for r in topic], color=colour, label=name)
    ax_loss.set(xlabel="step", ylabel="loss", title="pretraining loss")
    ax_acc.set(xlabel="step", ylabel="accuracy", title="masked unit accuracy")
    ax_topic.set(xlabel="step", ylabel="loss", title="topic loss (HuBERTopic)")
    for ax in (ax_loss, ax_acc, ax_topic):
        ax.grid(True, linewidth=0.5, alpha=0.5)
    ax_loss.legend(fontsize="small", title="lines: train, dots: valid", title_fontsize="small")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def plot_bars(groups: dict[str, dict[str, float]], path: Path, ylabel: str, title: str) -> Path:
    """Grouped bars: one group per outer key, one bar per inner key."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    series = list(dict.fromkeys(k for inner in groups.values() for k in inner))
    fig = Figure(figsize=(max(4.5, 1.2 * len(groups) * max(1, len(series)) * 0.5 + 2), 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for j, s in enumerate(series):
        values = [groups[g].get(s, np.nan) for g in groups]
        ax.bar(x + (j - (len(series) - 1) / 2) * width, values, width, label=s)
    ax.set_xticks(x, list(groups))
    ax.set(ylabel=ylabel, title=title)
    ax.grid(True, axis="y", linewidth=0.5, alpha=0.5)
    if len(series) > 1:
        ax.legend(fontsize="small")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


# --------------------------------------------------------------------------------------- sections


def _stats_section(path: Path) -> list[str]:
    stats = read_json(path, "'speechssl stats --json'")
    rows = []
    for name, v in stats.items():
        if isinstance(v, dict) and "cuts" in v:
            langs = ", ".join(f"{k} {n}" for k, n in (v.get("languages") or {}).items())
            styles = ", ".join(f"{k} {n}" for k, n in (v.get("styles") or {}).items())
            rows.append([name, str(v["cuts"]), num(v.get("hours"), ".3f"), str(v.get("speakers", "-")), langs or "-", styles or "-"])
    lines = ["## Corpus", ""]
    if rows:
        lines += table(["split", "utterances", "hours", "speakers", "languages", "styles"], rows,
                       [False, True, True, True, False, False])
    return lines


def _pretraining_section(inputs: ReportInputs, out: Path) -> list[str]:
    logs = {run.name: read_log(run.pretrain / "log.jsonl") for run in inputs.runs}
    plot_curves(logs, out / "pretraining_curves.png")
    rows = []
    for run in inputs.runs:
        train, valid = logs[run.name]
        last_valid = valid[-1] if valid else {}
        rows.append(
            [
                run.name,
                _steps(run.pretrain, train[-1]["step"]),
                Path(run.units).name if run.units else "-",
                Path(run.topics).name if run.topics else "none",
                num(train[0].get("loss")),
                num(train[-1].get("loss")),
                num(last_valid.get("loss")),
                pct(last_valid.get("masked_acc"), 1),
                pct(last_valid.get("topic_acc"), 1),
            ]
        )
    lines = ["## Pretraining", ""]
    lines += table(
        ["run", "steps", "targets (units)", "topic labels", "first train loss", "last train loss", "valid loss", "valid masked acc %", "valid topic acc %"],
        rows,
        [False, True, False, False, True, True, True, True, True],
    )
    lines += ["![pretraining curves](pretraining_curves.png)", ""]
    lines += ["The loss includes the topic loss where the run has one, so compare runs by masked accuracy.", ""]
    return lines


def _steps(exp: Path, last: int) -> str:
    """The steps a pretraining run logged; a run that did not write its encoder is marked
    unfinished, with the steps its config asked for where config.yaml says."""
    if (exp / "encoder.safetensors").is_file():
        return str(last)
    try:
        import yaml

        planned = int(yaml.safe_load((exp / "config.yaml").read_text(encoding="utf-8"))["optim"]["max_steps"])
        return f"{last} of {planned} (unfinished)"
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        return f"{last} (unfinished)"


def _units_section(inputs: ReportInputs, out: Path) -> list[str]:
    from speechssl.labels.quality import split_quality
    from speechssl.labels.store import read_label_dir

    units: dict[str, Path] = {}
    for run in inputs.runs:
        if run.units is not None and run.units not in units.values():
            units[run.name.split("_")[0]] = run.units
    units.update(inputs.units)
    if not units:
        return []
    rows, pnmi = [], {}
    for name, path in units.items():
        info = read_label_dir(path)
        for split in info.splits:
            q = split_quality(info, split)
            rows.append(
                [
                    name,
                    path.name,
                    split,
                    f"{q.used_units}/{q.num_units}",
                    num(q.phone_purity),
                    num(q.cluster_purity),
                    num(q.pnmi),
                ]
            )
            if q.pnmi is not None:
                pnmi.setdefault(split, {})[name] = q.pnmi
    lines = ["## Label quality of the units", ""]
    lines += ["Each iteration's k-means units against the phone alignments of the corpus (HuBERT's measures): "
              "the units of iteration i are the targets of pretraining iteration i.", ""]
    lines += table(["units", "folder", "split", "used/k", "phone purity", "cluster purity", "PNMI"], rows,
                   [False, False, False, True, True, True, True])
    if pnmi:
        plot_bars(pnmi, out / "label_quality.png", "PNMI", "phone-normalised mutual information of the units")
        lines += ["![label quality](label_quality.png)", ""]
    return lines


def _topics_section(inputs: ReportInputs, out: Path) -> list[str]:
    from speechssl.labels.topics import analyze_topic_dir

    analyses = {run.name: analyze_topic_dir(run.topics) for run in inputs.runs if run.topics is not None}
    if not analyses:
        return []
    attributes = list(dict.fromkeys(a.name for an in analyses.values() for a in an.attributes))
    rows = []
    for name, an in analyses.items():
        scores = {a.name: a for a in an.attributes}
        cells = [name, f"{an.topics_used}/{an.num_topics}", f"{an.entropy_bits:.2f}/{an.max_entropy_bits:.2f}"]
        for attr in attributes:
            a = scores.get(attr)
            cells.append("-" if a is None else f"{a.nmi:.3f} / {a.purity:.2f} ({a.majority:.2f})")
        rows.append(cells)
    plot_bars(
        {attr: {name: next((a.nmi for a in an.attributes if a.name == attr), np.nan) for name, an in analyses.items()} for attr in attributes},
        out / "topics.png",
        "NMI",
        "topic labels vs utterance attributes",
    )
    lines = ["## Topic labels (HuBERTopic)", ""]
    lines += ["The LDA topic of each utterance's units against what the corpus knows about it: NMI / purity "
              "(purity of a single label in parentheses). A topic label that follows speaker, language or style "
              "gives the auxiliary loss something beyond the frame units.", ""]
    lines += table(["units of", "topics used", "entropy bits"] + [f"{a}: NMI / purity" for a in attributes], rows,
                   [False, True, True] + [True] * len(attributes))
    lines += ["![topic labels](topics.png)", ""]
    return lines


def _tokens_section(inputs: ReportInputs) -> list[str]:
    lines = ["## Tokens", ""]
    rows = []
    if inputs.tokens is not None:
        summary = read_json(inputs.tokens / "tokens.json", "the summary of 'speechssl tokens extract'")
        s = summary.get("summary", summary)
        settings = summary.get("settings", {})
        rows += [
            ["utterances", str(s.get("utterances"))],
            ["encoder, layer", f"{settings.get('encoder_path', '-')} ({str(settings.get('encoder', '-'))[:12]}), layer {settings.get('layer', '-')}"],
            ["units (k-means clusters)", str(settings.get("num_units", "-"))],
            ["units per second (frames)", num(s.get("frame_rate"), ".1f")],
            ["tokens per second after de-duplication", num(s.get("token_rate"), ".1f")],
            ["unreadable inputs", str(s.get("errors", 0))],
        ]
    if inputs.bpe is not None:
        if not inputs.bpe.is_file():
            raise FileNotFoundError(f"{inputs.bpe}: no unit BPE output ('speechssl tokens bpe-encode')")
        pieces = frames = 0
        for line in inputs.bpe.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                pieces += len(record.get("pieces", record.get("ids", [])))
        if inputs.tokens is not None and s.get("tokens"):
            frames = s["tokens"]
            rows.append(["BPE pieces per de-duplicated unit", num(pieces / frames, ".3f")])
            rate = s.get("token_rate")
            if rate:
                rows.append(["BPE pieces per second", num(rate * pieces / frames, ".1f")])
        rows.append(["BPE pieces in all", str(pieces)])
    lines += table(["", ""], rows, [False, True])
    return lines


def _eval_rows(evals: dict[str, dict], task: str) -> tuple[list[str], list[list[str]], list[bool]]:
    if task == "asr":
        header = ["system", "mode", "CER %", "WER %", "trainable", "stored", "training time"]
        rows = [[n, m.get("mode", "-"), pct(m.get("cer")), pct(m.get("wer")), count_str(m.get("trainable_params")),
                 size_str(m.get("stored_bytes")), minutes_str(m.get("train_seconds"))] for n, m in evals.items()]
        return header, rows, [False, False, True, True, True, True, True]
    if task == "sv":
        header = ["system", "EER %", "minDCF 0.01", "minDCF 0.05", "EER % AS-norm", "trainable", "training time"]
        rows = []
        for n, m in evals.items():
            dcf = m.get("min_dcf", {})
            rows.append([n, pct(m.get("eer")), num(dcf.get("0.01"), ".4f"), num(dcf.get("0.05"), ".4f"),
                         pct((m.get("asnorm") or {}).get("eer")), count_str(m.get("trainable_params")), minutes_str(m.get("train_seconds"))])
        return header, rows, [False, True, True, True, True, True, True]
    header = ["system", "WA %", "UA %", "macro-F1 %", "trainable", "training time"]
    rows = [[n, pct(m.get("accuracy")), pct(m.get("unweighted_accuracy")), pct(m.get("macro_f1")),
             count_str(m.get("trainable_params")), minutes_str(m.get("train_seconds"))] for n, m in evals.items()]
    return header, rows, [False, True, True, True, True, True]


def _task_section(task: str, evals: dict[str, dict], inputs: ReportInputs, out: Path) -> list[str]:
    header, rows, right = _eval_rows(evals, task)
    lines = [f"## {TASK_NAMES[task][0].upper() + TASK_NAMES[task][1:]}", ""]
    first = next(iter(evals.values()))
    lines += [f"Test split: {first.get('split', '-')} ({first.get('utterances', '-')} utterances"
              + (f", {first.get('trials')} trials" if task == "sv" else "") + ").", ""]
    if task == "asr" and inputs.before_after:
        before, after = inputs.before_after
        for name in (before, after):
            if name not in evals:
                raise ValueError(f"--before-after names the ASR system '{name}', but --asr has only {', '.join(evals)}")
        b, a = evals[before], evals[after]
        lines += [f"**CER before adapters ({before}, frozen): {pct(b.get('cer'))}%; after ({after}): {pct(a.get('cer'))}%**, "
                  f"training {count_str(a.get('trainable_params'))} parameters and storing {size_str(a.get('stored_bytes'))} "
                  "beyond the encoder.", ""]
        plot_bars({"CER": {before: 100 * b["cer"], after: 100 * a["cer"]}}, out / "asr_adapters.png", "CER %",
                  "ASR CER before and after adapters")
        lines += ["![CER before and after adapters](asr_adapters.png)", ""]
    lines += table(header, rows, right)
    if task == "sv":
        from speechssl.downstream.sv.scoring import error_curve, read_scores

        curves = {}
        for name, m in evals.items():
            trials, scores = read_scores(Path(m["folder"]) / "scores.txt")
            labels = np.array([t.label for t in trials])
            curves[name] = error_curve(scores["score"], labels)  # cosine
        from speechssl.downstream.sv.scoring import plot_det

        plot_det(curves, out / "sv_det.png", title="DET curves (cosine scoring)")
        lines += ["![DET curves](sv_det.png)", ""]
    if task == "er":
        name = inputs.focus or (inputs.compare[-1] if inputs.compare else list(evals)[-1])
        if name not in evals:
            raise ValueError(f"the confusion matrix shown is {name}'s, but --er has only {', '.join(evals)}")
        src = Path(evals[name]["folder"]) / "confusion.png"
        if not src.is_file():
            raise FileNotFoundError(f"{src}: no confusion matrix ('speechssl er evaluate' writes it)")
        shutil.copyfile(src, out / "er_confusion.png")
        lines += [f"Confusion matrix of {name} (rows: reference, % of the class):", "", "![confusion matrix](er_confusion.png)", ""]
    return lines


def _interfaces_section(evals: dict[str, dict]) -> list[str]:
    rows = [[n, pct(m.get("unweighted_accuracy")), pct(m.get("macro_f1")), count_str(m.get("trainable_params")),
             _weights_str(m.get("layer_weights"))] for n, m in evals.items()]
    lines = ["## Interfaces", ""]
    lines += ["Emotion recognition with the same frozen encoder and head, through each interface from its hidden "
              "states to the head.", ""]
    lines += table(["interface", "UA %", "macro-F1 %", "trainable", "learned layer weights (input, layer 1, ...)"], rows,
                   [False, True, True, True, False])
    return lines


def _layer_weights_section(tasks: dict[str, dict[str, dict]], system: str, out: Path) -> list[str]:
    from speechssl.interfaces import plot_layer_weights

    weights = {TASK_NAMES[t]: evals[system]["layer_weights"] for t, evals in tasks.items()
               if system in evals and evals[system].get("layer_weights")}
    if not weights:
        return []
    plot_layer_weights(weights, out / "layer_weights.png", title=f"learned layer weights of {system}")
    lines = ["## Learned layer weights per task", ""]
    lines += [f"The softmax weights of the weighted sum over {system}'s hidden states (0: the input of the first "
              "transformer layer), as each task learnt them:", ""]
    lines += table(["task", "weights"], [[t, _weights_str(w)] for t, w in weights.items()], [False, False])
    lines += ["![layer weights](layer_weights.png)", ""]
    return lines


def _comparison_section(inputs: ReportInputs, tasks: dict[str, dict[str, dict]]) -> list[str]:
    columns = [("asr", "ASR CER %", "cer"), ("sv", "SV EER %", "eer"), ("er", "ER UA %", "unweighted_accuracy")]
    columns = [c for c in columns if c[0] in tasks]
    rows = []
    for name in inputs.compare:
        cells = [name]
        for task, _, key in columns:
            m = tasks[task].get(name)
            cells.append(pct(m.get(key)) if m else "-")
        rows.append(cells)
    lines = ["## Comparison", ""]
    lines += ["Each system frozen, a learned weighted sum of its layers (MFCC: the features themselves), the same "
              "heads; lower CER and EER and higher UA are better.", ""]
    lines += table(["system"] + [c[1] for c in columns], rows, [False] + [True] * len(columns))
    return lines


# ------------------------------------------------------------------------------------------- main


def write_report(inputs: ReportInputs) -> Path:
    """Write ``inputs.out``/report.md and its figures; return the report's path. Every input is read
    and checked before the report is written."""
    out = inputs.out
    out.mkdir(parents=True, exist_ok=True)
    tasks: dict[str, dict[str, dict]] = {}
    for task in ("asr", "sv", "er"):
        folders = getattr(inputs, task)
        if folders:
            tasks[task] = {name: read_eval(path, task) for name, path in folders.items()}
    interfaces = {name: read_eval(path, "er") for name, path in inputs.interfaces.items()}
    for name in inputs.compare:
        if not any(name in evals for evals in tasks.values()):
            raise ValueError(f"--compare names '{name}', which no --asr, --sv or --er folder has")

    lines = [f"# {inputs.title}", ""]
    if inputs.notes:
        lines += [inputs.notes, ""]
    sections: list[list[str]] = []
    if inputs.stats is not None:
        sections.append(_stats_section(inputs.stats))
    if inputs.runs:
        sections.append(_pretraining_section(inputs, out))
    sections.append(_units_section(inputs, out))
    if inputs.runs:
        sections.append(_topics_section(inputs, out))
    if inputs.tokens is not None or inputs.bpe is not None:
        sections.append(_tokens_section(inputs))
    if inputs.compare and tasks:
        sections.append(_comparison_section(inputs, tasks))
    if interfaces:
        sections.append(_interfaces_section(interfaces))
    system = inputs.focus or (inputs.compare[-1] if inputs.compare else None)
    if system is not None and tasks:
        sections.append(_layer_weights_section(tasks, system, out))
    for task, evals in tasks.items():
        sections.append(_task_section(task, evals, inputs, out))
    for section in sections:
        lines += section
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines).rstrip() + "\n")
    return report
