"""The synthetic mini corpus: plan, synthesise in parallel, split, write manifests, trials and styles.

Output folder layout::

    OUT/wavs/<speaker>/<cut_id>.flac     16 kHz mono FLAC
    OUT/cuts_{train,dev,test}.jsonl.gz  lhotse CutSets (supervision: text, speaker, gender,
                                        language, custom style/voice, phone and word alignments)
    OUT/trials_{dev,test}.txt           speaker-verification trials: "<1|0> <cut_a> <cut_b>"
    OUT/styles_{train,dev,test}.txt     "<cut_id> <style>"
    OUT/stats.json                      SplitStats.as_dict() per split (and "all")
    OUT/config.yaml                     the resolved MiniCorpusConfig (written first)
    OUT/.complete                       written last: the folder is finished

Everything is decided by the config (the seed included) and the utterance index, never by the
order in which worker processes finish: the same config gives the same files for any ``num_jobs``.
Utterances are synthesised in fixed blocks of :data:`BLOCK_SIZE`, each in a fresh process (see
:mod:`speechssl.data.mini.synth`). An interrupted run resumes from ``OUT/.journal.jsonl``, the
blocks already written.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from speechssl.config import config_to_yaml, save_config, to_dict
from speechssl.data.manifest import cuts_path, load_cuts, save_cuts
from speechssl.data.mini.synth import (
    DEFAULT_STYLES,
    STYLES,
    VARIANTS,
    Speaker,
    UtteranceSpec,
    synthesize_block,
)
from speechssl.data.mini.vocab import LANGUAGES, load_vocab, random_sentence
from speechssl.data.stats import SplitStats, corpus_stats
from speechssl.io import LOCK_NAME, atomic_write_text

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "dev", "test")
HELDOUT_SPLITS: tuple[str, ...] = ("dev", "test")
#: Utterances synthesised in order by one fresh process. Part of what decides the audio: changing
#: it changes the samples (by a few sample periods), so it is a constant, not an option.
BLOCK_SIZE = 8
COMPLETE_MARKER = ".complete"
JOURNAL = ".journal.jsonl"

# Estimated duration of an utterance: a fixed part (leading silence, final pause) plus a part per
# word, measured on the default styles and speakers (all four languages together).
_SECONDS_PER_UTTERANCE = 0.38
_SECONDS_PER_WORD = 0.285

# independent random streams, combined with the seed: numpy SeedSequence([seed, stream, index])
_STREAM_SPEAKERS = 1
_STREAM_TEXT = 2
_STREAM_TRIALS = 3


@dataclass
class MiniCorpusConfig:
    """What the mini corpus holds. The defaults make about one hour (the default corpus);
    :meth:`tiny` is the CI-sized preset."""

    hours: float = 1.0  # target size; the utterance count is estimated from it
    utterances: int | None = None  # exact number of utterances (overrides hours when set)
    seed: int = 0  # decides speakers, texts, styles and trials
    num_speakers: int = 40  # speakers, half female, half male, spread over the languages
    languages: tuple[str, ...] = ("en", "de", "es", "fr")  # ISO codes; see vocab.LANGUAGES
    styles: tuple[str, ...] = DEFAULT_STYLES  # prosody styles standing in for emotions; see synth.STYLES
    min_words: int = 4  # words per sentence, drawn uniformly in [min_words, max_words]
    max_words: int = 14
    heldout_fraction: float = 0.2  # share of the speakers held out for dev, and again for test
    max_trials: int = 2000  # speaker-verification trials per held-out split (half target)

    def __post_init__(self) -> None:
        self.languages = tuple(self.languages)
        self.styles = tuple(self.styles)
        if not self.languages:
            raise ValueError(f"languages: give at least one of {', '.join(LANGUAGES)}")
        for code in self.languages:
            if code not in LANGUAGES:
                raise ValueError(f"unknown language '{code}'; valid languages: {', '.join(LANGUAGES)}")
        if not self.styles:
            raise ValueError(f"styles: give at least one of {', '.join(STYLES)}")
        for name in self.styles:
            if name not in STYLES:
                raise ValueError(f"unknown style '{name}'; valid styles: {', '.join(STYLES)}")
        for what, values in (("languages", self.languages), ("styles", self.styles)):
            if len(set(values)) != len(values):
                raise ValueError(f"{what}: each may appear once, found {list(values)}")
        if not self.hours > 0:
            raise ValueError(f"hours must be positive, found {self.hours}")
        if self.utterances is not None and self.utterances < 1:
            raise ValueError(f"utterances must be at least 1 (or null to use hours), found {self.utterances}")
        if self.num_speakers < 3:
            raise ValueError(
                f"num_speakers must be at least 3 (train, dev and test each need one), found {self.num_speakers}"
            )
        if not 1 <= self.min_words <= self.max_words:
            raise ValueError(f"need 1 <= min_words <= max_words, found {self.min_words} and {self.max_words}")
        if not 0.0 < self.heldout_fraction < 0.5:
            raise ValueError(f"heldout_fraction must be in (0, 0.5), found {self.heldout_fraction}")
        if self.max_trials < 2:
            raise ValueError(f"max_trials must be at least 2, found {self.max_trials}")

    @classmethod
    def tiny(cls) -> MiniCorpusConfig:
        """The CI-sized corpus: 16 speakers, 80 short utterances (about 3 minutes of audio)."""
        return cls(hours=0.04, utterances=80, num_speakers=16, min_words=3, max_words=6, max_trials=200)


@dataclass(frozen=True)
class CorpusPlan:
    """The speakers, their splits and every utterance, before any audio exists."""

    speakers: tuple[Speaker, ...]
    splits: dict[str, tuple[str, ...]]  # split -> speaker ids
    utterances: tuple[UtteranceSpec, ...]

    def split_of(self) -> dict[str, str]:
        return {spk: split for split, spks in self.splits.items() for spk in spks}


# --- planning -------------------------------------------------------------------------------------


def make_speakers(config: MiniCorpusConfig) -> list[Speaker]:
    """Speaker ``i`` has language ``languages[i % L]`` and alternating genders arranged so that any
    ``L`` consecutive speakers cover every language and (for ``L >= 2``) both genders. Variants are
    taken per gender in a seeded order; when speakers outnumber variants, a reused variant gets a
    pitch offset from another band (-10, +10, -20, ...) so that no two speakers sound alike."""
    rng = np.random.default_rng([config.seed, _STREAM_SPEAKERS])
    order = {g: rng.permutation(len(VARIANTS[g])) for g in ("f", "m")}
    used = {"f": 0, "m": 0}
    n_lang = len(config.languages)
    speakers = []
    for i in range(config.num_speakers):
        language = config.languages[i % n_lang]
        gender = "fm"[(i % n_lang + i // n_lang) % 2]
        k = used[gender]
        used[gender] += 1
        variants = VARIANTS[gender]
        variant = variants[int(order[gender][k % len(variants)])]
        band = (0, -10, 10, -20, 20)[(k // len(variants)) % 5]
        speakers.append(
            Speaker(
                id=f"spk{i:03d}",
                gender=gender,
                language=language,
                variant=variant,
                pitch_offset=band + int(rng.integers(-5, 6)),
                range_offset=int(rng.integers(-8, 9)),
                rate_scale=round(float(rng.uniform(0.9, 1.1)), 3),
            )
        )
    return speakers


def heldout_speakers_per_split(num_speakers: int, num_languages: int, fraction: float) -> int:
    """Speakers in each of dev and test: ``fraction`` of all, raised to cover every language and
    both genders when there are enough speakers, and always leaving train at least one."""
    cover = max(num_languages, 2)
    n = max(1, int(round(num_speakers * fraction)))
    if num_speakers >= 3 * cover:
        n = max(n, cover)
    return max(1, min(n, (num_speakers - 1) // 2))


def num_utterances(config: MiniCorpusConfig) -> int:
    """``config.utterances``, or the count estimated to fill ``config.hours`` (at least two per
    speaker, so every held-out speaker has target trials)."""
    if config.utterances is not None:
        return config.utterances
    mean_words = (config.min_words + config.max_words) / 2
    per_utt = _SECONDS_PER_UTTERANCE + _SECONDS_PER_WORD * mean_words
    return max(2 * config.num_speakers, int(round(config.hours * 3600 / per_utt)))


def plan_corpus(config: MiniCorpusConfig) -> CorpusPlan:
    """Speakers, splits and utterances. Utterance ``j`` belongs to speaker ``j % S``; its words come
    from a generator seeded with ``(seed, j)``; a speaker's ``k``-th utterance has style
    ``styles[(k + speaker index) % len(styles)]``, so styles are balanced within every speaker."""
    speakers = make_speakers(config)
    n_held = heldout_speakers_per_split(len(speakers), len(config.languages), config.heldout_fraction)
    ids = [s.id for s in speakers]
    splits = {"train": tuple(ids[2 * n_held :]), "dev": tuple(ids[n_held : 2 * n_held]), "test": tuple(ids[:n_held])}
    n = num_utterances(config)
    width = max(5, len(str(n - 1)))
    utterances = []
    for j in range(n):
        spk_index = j % len(speakers)
        speaker = speakers[spk_index]
        k = j // len(speakers)
        rng = np.random.default_rng([config.seed, _STREAM_TEXT, j])
        words = random_sentence(rng, load_vocab(speaker.language), config.min_words, config.max_words)
        utterances.append(
            UtteranceSpec(
                index=j,
                cut_id=f"{speaker.id}_{speaker.language}_{j:0{width}d}",
                speaker=speaker,
                style=config.styles[(k + spk_index) % len(config.styles)],
                words=tuple(words),
            )
        )
    return CorpusPlan(speakers=tuple(speakers), splits=splits, utterances=tuple(utterances))


# --- trials --------------------------------------------------------------------------------------


def make_trials(
    cut_speakers: Iterable[tuple[str, str]], max_trials: int, rng: np.random.Generator
) -> list[tuple[int, str, str]]:
    """Speaker-verification trials ``(label, cut_a, cut_b)`` from ``(cut_id, speaker)`` pairs: up to
    ``max_trials // 2`` target pairs (same speaker) and as many non-target pairs, all distinct, no
    cut paired with itself, in a seeded random order."""
    cuts = list(cut_speakers)
    by_speaker: dict[str, list[str]] = {}
    for cut_id, spk in cuts:
        by_speaker.setdefault(spk, []).append(cut_id)
    targets = [pair for spk in sorted(by_speaker) for pair in itertools.combinations(by_speaker[spk], 2)]
    n_target = min(len(targets), max_trials // 2)
    picked = sorted(rng.choice(len(targets), size=n_target, replace=False).tolist()) if n_target else []
    trials = [(1, *targets[i]) for i in picked]

    n_cuts = len(cuts)
    total_non = n_cuts * (n_cuts - 1) // 2 - len(targets)
    n_non = min(total_non, max(n_target, 1) if total_non else 0)
    if total_non <= 4 * n_non:  # small: enumerate every non-target pair and pick
        pairs = [(a, b) for (a, sa), (b, sb) in itertools.combinations(cuts, 2) if sa != sb]
        chosen = sorted(rng.choice(len(pairs), size=n_non, replace=False).tolist())
        non = [pairs[i] for i in chosen]
    else:  # large: draw random pairs until enough distinct ones
        seen: set[tuple[int, int]] = set()
        while len(seen) < n_non:
            i, j = (int(x) for x in rng.integers(n_cuts, size=2))
            if i != j and cuts[i][1] != cuts[j][1]:
                seen.add((min(i, j), max(i, j)))
        non = [(cuts[i][0], cuts[j][0]) for i, j in sorted(seen)]
    trials += [(0, a, b) for a, b in non]
    order = rng.permutation(len(trials))
    return [trials[i] for i in order]


# --- the output folder ---------------------------------------------------------------------------


def _our_outputs(out: Path) -> list[Path]:
    names = [COMPLETE_MARKER, JOURNAL, "config.yaml", "stats.json"]
    names += [cuts_path(out, s).name for s in SPLITS]
    names += [f"styles_{s}.txt" for s in SPLITS] + [f"trials_{s}.txt" for s in HELDOUT_SPLITS]
    return [out / n for n in names] + [out / "wavs"]


def _remove_outputs(out: Path) -> None:
    """Remove what a mini-corpus build writes (the marker first), nothing else."""
    for path in _our_outputs(out):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _config_diff(old_yaml: str, config: MiniCorpusConfig) -> str:
    try:
        old = yaml.safe_load(old_yaml) or {}
    except yaml.YAMLError:
        return "unreadable config.yaml"
    new = to_dict(config)
    if not isinstance(old, dict):
        return "unreadable config.yaml"
    keys = [k for k in dict.fromkeys([*new, *old]) if old.get(k) != new.get(k)]
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys) or "same values, different file"


def _folder_state(out: Path, config: MiniCorpusConfig, overwrite: bool) -> str:
    """``"complete"`` (nothing to do), ``"resume"`` (same config, unfinished) or ``"new"``; an
    incompatible folder raises unless ``overwrite``, which clears our outputs first."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if not out.exists():
        return "new"
    cfg_file = out / "config.yaml"
    old_yaml = cfg_file.read_text(encoding="utf-8") if cfg_file.is_file() else None
    if overwrite:
        _remove_outputs(out)
        return "new"
    if old_yaml is not None and old_yaml == config_to_yaml(config):
        return "complete" if (out / COMPLETE_MARKER).exists() else "resume"
    if old_yaml is None:
        if not any(p for p in out.iterdir() if not p.name.startswith(LOCK_NAME)):  # the run's own lock file is not content
            return "new"
        raise ValueError(
            f"{out}: folder is not empty and holds no mini corpus (no config.yaml); "
            "choose an empty or new folder, or pass overwrite (--overwrite) to write into it"
        )
    raise ValueError(
        f"{out}: holds a mini corpus made with a different config ({_config_diff(old_yaml, config)}); "
        "choose another folder or pass overwrite (--overwrite) to replace it"
    )


def _read_journal(out: Path) -> dict[str, dict]:
    """Cuts of finished blocks (cut id -> cut dict) whose audio file exists; a torn last line
    (interrupted write) is ignored."""
    path = out / JOURNAL
    done: dict[str, dict] = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            block = json.loads(line)
        except json.JSONDecodeError:
            continue
        if all(Path(c["recording"]["sources"][0]["source"]).is_file() for c in block):
            done.update({c["id"]: c for c in block})
    return done


# --- parallel synthesis --------------------------------------------------------------------------


def _mp_context() -> multiprocessing.context.BaseContext:
    """Fresh worker processes that never synthesised: forked from a forkserver that has imported
    the heavy modules once (a plain fork could copy a parent's used espeak-ng state)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["torch", "torchaudio.functional", "lhotse", "speechssl.data.mini.synth"])
        return ctx
    return multiprocessing.get_context("spawn")


def _synthesize_block_task(args: tuple[list[UtteranceSpec], str]) -> list[dict]:
    return synthesize_block(*args)


def default_num_jobs() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _synthesize(
    blocks: list[list[UtteranceSpec]], out: Path, num_jobs: int, on_block: Callable[[list[dict]], None]
) -> None:
    if not blocks:
        return
    ctx = _mp_context()
    tasks = [(block, str(out)) for block in blocks]
    # maxtasksperchild=1: every block starts from a fresh espeak-ng state
    with ctx.Pool(processes=min(num_jobs, len(blocks)), maxtasksperchild=1) as pool:
        for cuts in pool.imap_unordered(_synthesize_block_task, tasks):
            on_block(cuts)


# --- the build -----------------------------------------------------------------------------------


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    atomic_write_text(path, "".join(f"{line}\n" for line in lines))


def is_complete(out_dir: str | os.PathLike, config: MiniCorpusConfig) -> bool:
    """Whether ``out_dir`` holds a finished mini corpus made with ``config``."""
    out = Path(out_dir)
    cfg_file = out / "config.yaml"
    return (
        (out / COMPLETE_MARKER).is_file()
        and cfg_file.is_file()
        and cfg_file.read_text(encoding="utf-8") == config_to_yaml(config)
    )


def load_mini_corpus_stats(out_dir: str | os.PathLike) -> dict[str, SplitStats]:
    """Statistics of a finished mini corpus, from its manifests."""
    out = Path(out_dir)
    return corpus_stats({s: load_cuts(cuts_path(out, s), lazy=True) for s in SPLITS})


def make_mini_corpus(
    out_dir: str | os.PathLike,
    config: MiniCorpusConfig | None = None,
    *,
    num_jobs: int | None = None,
    overwrite: bool = False,
) -> dict[str, SplitStats]:
    """Synthesise the mini corpus into ``out_dir`` and return its statistics per split (and "all").

    A folder already complete with the same config is left as it is; an unfinished one (same
    config) is resumed; one with another config is refused unless ``overwrite``, which deletes the
    previous corpus's files first. ``num_jobs`` (default: the CPUs available) changes the speed only.

    Workers are started by multiprocessing's forkserver (spawn where there is none): as with any
    such code, a script that calls this must do so under ``if __name__ == "__main__":``.
    """
    from lhotse import CutSet

    config = config or MiniCorpusConfig()
    num_jobs = num_jobs or default_num_jobs()
    if num_jobs < 1:
        raise ValueError(f"num_jobs must be at least 1, found {num_jobs}")
    out = Path(out_dir).resolve()
    state = _folder_state(out, config, overwrite)
    if state == "complete":
        logger.info("%s: already complete with this config; nothing to do", out)
        return load_mini_corpus_stats(out)

    t0 = time.perf_counter()
    plan = plan_corpus(config)
    out.mkdir(parents=True, exist_ok=True)
    if state == "new":
        save_config(config, out / "config.yaml")
    done = _read_journal(out) if state == "resume" else {}
    blocks = [list(plan.utterances[i : i + BLOCK_SIZE]) for i in range(0, len(plan.utterances), BLOCK_SIZE)]
    todo = [b for b in blocks if any(u.cut_id not in done for u in b)]
    if state == "resume":
        logger.info("%s: resuming, %d of %d blocks already synthesised", out, len(blocks) - len(todo), len(blocks))
    logger.info(
        "synthesising %d utterances (%d speakers, %s) with %d process(es)",
        len(plan.utterances), len(plan.speakers), ", ".join(config.languages), num_jobs,
    )  # fmt: skip

    journal = open(out / JOURNAL, "a", encoding="utf-8")
    if journal.tell() > 0 and not (out / JOURNAL).read_bytes().endswith(b"\n"):
        journal.write("\n")  # end a line torn by the interruption
    progress = {"blocks": 0, "next_log": 0.1}

    def on_block(cuts: list[dict]) -> None:
        journal.write(json.dumps(cuts, ensure_ascii=False) + "\n")
        journal.flush()
        done.update({c["id"]: c for c in cuts})
        progress["blocks"] += 1
        if progress["blocks"] / len(todo) >= progress["next_log"]:
            logger.info("synthesised %d/%d blocks", progress["blocks"], len(todo))
            progress["next_log"] += 0.1

    try:
        _synthesize(todo, out, num_jobs, on_block)
    finally:
        journal.close()
    t_synth = time.perf_counter() - t0

    # manifests, in plan order, one per split
    split_of = plan.split_of()
    by_split: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for utt in plan.utterances:
        by_split[split_of[utt.speaker.id]].append(done[utt.cut_id])
    cutsets = {s: CutSet.from_dicts(by_split[s]) for s in SPLITS}
    for split, cuts in cutsets.items():
        save_cuts(cuts, cuts_path(out, split))
        _write_lines(out / f"styles_{split}.txt", (f"{c.id} {c.supervisions[0].custom['style']}" for c in cuts))
    for k, split in enumerate(HELDOUT_SPLITS):
        rng = np.random.default_rng([config.seed, _STREAM_TRIALS, k])
        pairs = [(c.id, c.supervisions[0].speaker) for c in cutsets[split]]
        trials = make_trials(pairs, config.max_trials, rng)
        if len({label for label, _, _ in trials}) < 2:
            logger.warning("%s: trials_%s.txt has only one label (too few speakers or utterances)", out, split)
        _write_lines(out / f"trials_{split}.txt", (f"{label} {a} {b}" for label, a, b in trials))
    stats = corpus_stats(cutsets)
    atomic_write_text(
        out / "stats.json", json.dumps({k: v.as_dict() for k, v in stats.items()}, indent=2, ensure_ascii=False) + "\n"
    )
    for stray in (out / "wavs").rglob(".*.partial-*"):  # left by workers killed mid-write
        stray.unlink(missing_ok=True)
    (out / JOURNAL).unlink(missing_ok=True)
    atomic_write_text(out / COMPLETE_MARKER, f"mini corpus complete: {len(plan.utterances)} utterances\n")
    logger.info(
        "%s: done in %.1f s (synthesis %.1f s), %.3f hours",
        out, time.perf_counter() - t0, t_synth, stats["all"].hours,
    )  # fmt: skip
    return stats
