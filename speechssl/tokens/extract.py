"""Token extraction over a corpus: batched, resumable, shardable, and never half-written.

One run (or one shard ``i/n`` of it) writes into its output folder::

    tokens[.i-of-n].jsonl           {"id", "units"[, "durations"]} per utterance, one per line
    units[.i-of-n].part-NNNNN.npz   (--format npz) ids, units (concatenated), offsets[, durations]
    errors[.i-of-n].tsv             <id> <file> <problem> of each input that could not be read
    tokens[.i-of-n].json            the settings and summary; written last

While a run is going the JSONL is ``tokens[.i-of-n].jsonl.partial``; it is renamed when the run
ends, and the summary is written after that, so a folder with the summary is complete. Each npz
part is written in one step. A re-run (after an interruption, or with more inputs) skips every id
already written in all the chosen formats; an id found in one format only (an interruption between
the two) is written again, and the JSONL is first rewritten without it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet

from speechssl.data.dataset import AudioDataset
from speechssl.features.stream import shard_cuts
from speechssl.io import atomic_path, atomic_write_text, escape_tsv
from speechssl.tokens.bpe import dedup as run_lengths
from speechssl.tokens.inputs import InputError
from speechssl.tokens.tokenizer import Tokenizer

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "npz")


@dataclass
class ExtractConfig:
    formats: tuple[str, ...] = ("jsonl",)  # "jsonl" and/or "npz"
    dedup: bool = False  # collapse repeated units and keep their run lengths ("durations", in frames)
    shard: tuple[int, int] = (1, 1)  # (i, n), 1-based: every n-th cut from the i-th
    max_duration: float | None = None  # seconds of audio per batch, padding counted (None: 200 on a GPU, 20 on CPU)
    num_workers: int = 0  # audio decoding processes
    strict: bool = False  # fail on an unreadable file instead of reporting and skipping it
    part_size: int = 10000  # utterances per npz part
    progress: bool = True

    def __post_init__(self):
        self.formats = tuple(self.formats)
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise ValueError(f"formats must be some of {', '.join(FORMATS)}, found {', '.join(self.formats) or 'none'}")
        if self.part_size < 1:
            raise ValueError(f"part_size must be >= 1, found {self.part_size}")


@dataclass
class ExtractSummary:
    """What a run wrote (the whole folder's content for its shard, earlier runs included)."""

    utterances: int = 0
    frames: int = 0
    tokens: int = 0  # after de-duplication (= frames without it)
    frame_rate: float = 0.0  # units per second before de-duplication
    token_rate: float = 0.0  # tokens per second: frame_rate * tokens / frames
    errors: int = 0
    # this run only
    new_utterances: int = 0
    new_audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    real_time_factor: float = 0.0  # wall seconds per second of new audio
    files: dict[str, str] = field(default_factory=dict)


def _tag(shard: tuple[int, int]) -> str:
    return "" if shard == (1, 1) else f".{shard[0]}-of-{shard[1]}"


class _Outputs:
    """The output files of one shard, and what they already hold."""

    def __init__(self, out_dir: Path, cfg: ExtractConfig):
        tag = _tag(cfg.shard)
        self.dir, self.cfg = out_dir, cfg
        self.jsonl = out_dir / f"tokens{tag}.jsonl"
        self.partial = out_dir / f"tokens{tag}.jsonl.partial"
        self.summary = out_dir / f"tokens{tag}.json"
        self.errors = out_dir / f"errors{tag}.tsv"
        self.part_glob = f"units{tag}.part-*.npz"
        self.part_name = lambda k: out_dir / f"units{tag}.part-{k:05d}.npz"  # noqa: E731

    def settings_of_existing(self) -> dict | None:
        if self.summary.is_file():
            return json.loads(self.summary.read_text())["settings"]
        settings = self.dir / f".{self.summary.name}.settings"
        return json.loads(settings.read_text()) if settings.is_file() else None

    def record_settings(self, settings: dict) -> None:
        atomic_write_text(self.dir / f".{self.summary.name}.settings", json.dumps(settings, indent=1))

    def _jsonl_records(self) -> list[dict]:
        """Complete records of the JSONL (a torn last line from an interruption is dropped)."""
        path = self.partial if self.partial.is_file() else self.jsonl
        if not path.is_file():
            return []
        records = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # torn write
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    break
        return records

    def _npz_parts(self) -> list[Path]:
        return sorted(self.dir.glob(self.part_glob))

    def done(self) -> tuple[set[str], list[dict], int]:
        """Ids written in every chosen format; the JSONL records kept; the next npz part number.
        Leaves the JSONL, as ``.partial``, holding exactly the done ids."""
        sets, records = [], []
        if "jsonl" in self.cfg.formats:
            records = self._jsonl_records()
            sets.append({r["id"] for r in records})
        parts = self._npz_parts()
        if "npz" in self.cfg.formats:
            ids = set()
            for p in parts:
                with np.load(p, allow_pickle=False) as z:
                    ids.update(z["ids"].tolist())
            sets.append(ids)
        done = set.intersection(*sets) if sets else set()
        if "npz" in self.cfg.formats:
            parts = [p for p in parts if self._keep_only(p, done)]
        if "jsonl" in self.cfg.formats:
            kept = [r for r in records if r["id"] in done]
            with atomic_path(self.partial) as tmp:  # rewrite: no torn line, no id missing from the npz parts
                with open(tmp, "w", encoding="utf-8") as f:
                    f.writelines(json.dumps(r) + "\n" for r in kept)
            if self.jsonl.exists():
                self.jsonl.unlink()  # the run is no longer complete
            records = kept
        if self.summary.exists():
            self.summary.unlink()
        next_part = max((int(p.name.rsplit("part-", 1)[1][:5]) for p in parts), default=0) + 1
        return done, records, next_part


    @staticmethod
    def _keep_only(part: Path, done: set[str]) -> bool:
        """Rewrite an npz part without the ids that are not done (so they are not written twice);
        False when nothing is left of it (the part is removed)."""
        with np.load(part, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        ids = arrays["ids"].tolist()
        keep = [i for i, cut_id in enumerate(ids) if cut_id in done]
        if len(keep) == len(ids):
            return True
        if not keep:
            part.unlink()
            return False
        offsets = arrays["offsets"]
        spans = [np.arange(offsets[i], offsets[i + 1]) for i in keep]
        rows = np.concatenate(spans)
        new = {"ids": arrays["ids"][keep], "units": arrays["units"][rows], "offsets": np.cumsum([0] + [len(r) for r in spans]).astype(np.int64)}
        if "durations" in arrays:
            new["durations"] = arrays["durations"][rows]
        with atomic_path(part) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **new)
        return True


def _line(cut_id: str, units: np.ndarray, durations: np.ndarray | None) -> str:
    record = {"id": cut_id, "units": units.tolist()}
    if durations is not None:
        record["durations"] = durations.tolist()
    return json.dumps(record, separators=(", ", ": ")) + "\n"


def extract_tokens(
    tokenizer: Tokenizer,
    cuts: CutSet,
    out_dir: str | os.PathLike,
    cfg: ExtractConfig | None = None,
    *,
    input_errors: list[InputError] = (),
) -> ExtractSummary:
    """Tokenize ``cuts`` into ``out_dir`` (see the module doc for the files). ``input_errors``:
    inputs already found unreadable (they go to the errors file with the decoding failures)."""
    from tqdm import tqdm

    cfg = cfg or ExtractConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = _Outputs(out_dir, cfg)
    settings = {
        "encoder": tokenizer.extractor.spec.encoder,
        "encoder_path": tokenizer.extractor.spec.encoder_path,
        "kmeans": tokenizer.kmeans.model_id,
        "layer": tokenizer.layer,
        "num_units": tokenizer.num_units,
        "frame_rate": tokenizer.frame_rate,
        "dedup": cfg.dedup,
        "formats": list(cfg.formats),
        "shard": list(cfg.shard),
    }
    previous = outputs.settings_of_existing()
    if previous is not None:
        diff = [k for k in ("encoder", "kmeans", "layer", "dedup", "formats", "shard") if previous.get(k) != settings[k]]
        if diff:
            raise ValueError(
                f"{out_dir} holds tokens made with other settings ({', '.join(f'{k}: {previous.get(k)!r} there, {settings[k]!r} now' for k in diff)}); "
                "write to another folder or remove it"
            )
    outputs.record_settings(settings)
    done, records, next_part = outputs.done()

    cuts = shard_cuts(cuts, *cfg.shard)
    todo = CutSet.from_cuts(c for c in cuts if c.id not in done)
    todo_seconds = sum(c.duration for c in todo)
    errors = list(input_errors)
    summary = ExtractSummary(frame_rate=tokenizer.frame_rate)
    for r in records:
        summary.utterances += 1
        summary.frames += int(sum(r["durations"])) if "durations" in r else len(r["units"])
        summary.tokens += len(r["units"])
    if "jsonl" not in cfg.formats:  # the npz parts are the record
        for p in outputs._npz_parts():
            with np.load(p, allow_pickle=False) as z:
                summary.utterances += len(z["ids"])
                summary.tokens += len(z["units"])
                summary.frames += int(z["durations"].sum()) if "durations" in z else len(z["units"])

    t0 = time.perf_counter()
    buffer: list[tuple[str, np.ndarray, np.ndarray | None]] = []

    def flush_part() -> None:
        nonlocal next_part, buffer
        if not buffer:
            return
        arrays = {
            "ids": np.array([b[0] for b in buffer]),
            "units": np.concatenate([b[1] for b in buffer]).astype(np.int32),
            "offsets": np.cumsum([0] + [len(b[1]) for b in buffer]).astype(np.int64),  # units of item i: offsets[i]:offsets[i+1]
        }
        if cfg.dedup:
            arrays["durations"] = np.concatenate([b[2] for b in buffer]).astype(np.int32)
        with atomic_path(outputs.part_name(next_part)) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        next_part += 1
        buffer = []

    if len(todo):
        loader = torch.utils.data.DataLoader(
            AudioDataset(strict=cfg.strict),
            sampler=length_batches(todo, cfg.max_duration or (200.0 if tokenizer.device.type == "cuda" else 20.0)),
            batch_size=None,
            num_workers=cfg.num_workers,
            multiprocessing_context="forkserver" if cfg.num_workers > 0 else None,
        )
        jsonl = open(outputs.partial, "a", encoding="utf-8") if "jsonl" in cfg.formats else None
        try:
            with tqdm(total=todo_seconds, unit="s", desc="tokens", disable=not cfg.progress,
                      bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}{postfix}]") as bar:  # fmt: skip
                for batch in loader:
                    for cut_id, problem in batch.skipped:
                        errors.append(InputError(cut_id, _source_of(todo, cut_id), problem))
                    seconds = float(batch.lengths.sum()) / 16000 if len(batch) else 0.0
                    if len(batch):
                        units, finite = tokenizer.encode(batch.wavs, batch.lengths)
                        lines = []
                        for cut_id, u, ok in zip(batch.cut_ids, units, finite):
                            if not ok:  # audio that decodes but is not a signal: reported like unreadable audio
                                problem = "the encoder's features hold NaN or infinite values (is the audio a valid signal?)"
                                if cfg.strict:
                                    raise ValueError(f"{_source_of(todo, cut_id)}: {problem}")
                                errors.append(InputError(cut_id, _source_of(todo, cut_id), problem))
                                continue
                            u = u.numpy()
                            d = None
                            if cfg.dedup:
                                u, d = run_lengths(u)
                            summary.frames += int(d.sum()) if d is not None else len(u)
                            summary.tokens += len(u)
                            lines.append(_line(cut_id, u, d))
                            buffer.append((cut_id, u, d))
                        if jsonl is not None:
                            jsonl.writelines(lines)
                            jsonl.flush()
                        summary.new_utterances += len(lines)
                        summary.new_audio_seconds += seconds if all(finite) else float(batch.lengths[torch.tensor(finite)].sum()) / 16000
                        if len(buffer) >= cfg.part_size and "npz" in cfg.formats:
                            flush_part()
                    done_seconds = sum(_duration_of(todo, c) for c in batch.cut_ids) + sum(_duration_of(todo, c) for c, _ in batch.skipped)
                    bar.update(min(done_seconds, bar.total - bar.n))  # cut durations: they add up to the total
                    elapsed = time.perf_counter() - t0
                    if summary.new_audio_seconds:
                        bar.set_postfix_str(f"RTF {elapsed / summary.new_audio_seconds:.4f}")
            if "npz" in cfg.formats:
                flush_part()
            if jsonl is not None:
                jsonl.flush()
                os.fsync(jsonl.fileno())
        finally:
            if jsonl is not None:
                jsonl.close()
    summary.wall_seconds = time.perf_counter() - t0
    summary.utterances += summary.new_utterances
    summary.errors = len(errors)
    summary.token_rate = summary.frame_rate * summary.tokens / summary.frames if summary.frames else 0.0
    summary.real_time_factor = summary.wall_seconds / summary.new_audio_seconds if summary.new_audio_seconds else 0.0

    with atomic_path(outputs.errors) as tmp:
        tmp.write_text("".join(f"{escape_tsv(e.id)}\t{escape_tsv(e.path)}\t{escape_tsv(e.problem)}\n" for e in errors), encoding="utf-8")
    if "jsonl" in cfg.formats:
        if not outputs.partial.exists():
            outputs.partial.touch()
        os.replace(outputs.partial, outputs.jsonl)
        summary.files["jsonl"] = str(outputs.jsonl)
    if "npz" in cfg.formats:
        summary.files["npz"] = f"{out_dir}/{outputs.part_glob}"
    summary.files["errors"] = str(outputs.errors)
    atomic_write_text(outputs.summary, json.dumps({"settings": settings, "summary": asdict(summary)}, indent=1))
    (out_dir / f".{outputs.summary.name}.settings").unlink(missing_ok=True)
    return summary


def length_batches(cuts: CutSet, max_duration: float) -> list[CutSet]:
    """Batches of similar length, longest first (an out-of-memory batch shows at once), each at most
    ``max_duration`` seconds counted as padded (items x the longest); a longer cut is a batch alone."""
    batches, current, longest = [], [], 0.0
    for cut in sorted(cuts, key=lambda c: (-c.duration, c.id)):
        if current and max(longest, cut.duration) * (len(current) + 1) > max_duration:
            batches.append(CutSet.from_cuts(current))
            current, longest = [], 0.0
        current.append(cut)
        longest = max(longest, cut.duration)
    if current:
        batches.append(CutSet.from_cuts(current))
    return batches


def _source_of(cuts: CutSet, cut_id: str) -> str:
    rec = cuts[cut_id].recording
    return ",".join(str(s.source) for s in rec.sources)


def _duration_of(cuts: CutSet, cut_id: str) -> float:
    return cuts[cut_id].duration


def read_tokens_jsonl(path: str | os.PathLike) -> dict[str, dict]:
    """id -> record of a tokens JSONL file (``units`` and ``durations`` as int64 arrays)."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            r["units"] = np.asarray(r["units"], dtype=np.int64)
            if "durations" in r:
                r["durations"] = np.asarray(r["durations"], dtype=np.int64)
            out[r["id"]] = r
    return out


def read_tokens_npz(folder: str | os.PathLike, shard: tuple[int, int] = (1, 1)) -> dict[str, dict]:
    """id -> {"units"[, "durations"]} from the npz parts of one shard."""
    out = {}
    for p in sorted(Path(folder).glob(f"units{_tag(shard)}.part-*.npz")):
        with np.load(p, allow_pickle=False) as z:
            ids, units, offsets = z["ids"].tolist(), z["units"], z["offsets"]
            durations = z["durations"] if "durations" in z else None
            for i, cut_id in enumerate(ids):
                a, b = int(offsets[i]), int(offsets[i + 1])
                rec = {"units": units[a:b].astype(np.int64)}
                if durations is not None:
                    rec["durations"] = durations[a:b].astype(np.int64)
                out[cut_id] = rec
    return out
