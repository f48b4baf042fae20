"""What every corpus preparer shares: checking audio files, the list of skipped inputs, turning
lhotse's recording + supervision manifests into cuts, and writing a prepared corpus folder.

A prepared corpus folder holds one ``cuts_<split>.jsonl.gz`` per split and ``skipped.tsv``: the
inputs that were left out, one ``path<TAB>problem`` line each under a ``path	problem`` header
(written on every run, so an empty list means nothing was skipped).
"""

from __future__ import annotations

import logging
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence, TypeVar

from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.audio import AudioSource

from speechssl.data.audio import MIN_SAMPLES, SAMPLE_RATE, AudioError, audio_info, load_audio, load_cut_audio
from speechssl.data.manifest import save_splits
from speechssl.io import atomic_write_text, escape_tsv, unescape_tsv

log = logging.getLogger(__name__)

SKIPPED_FILE = "skipped.tsv"

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class AudioHeader:
    """What a file's header says: native rate, frames per channel and channel count."""

    sample_rate: int
    num_frames: int
    num_channels: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.sample_rate


@dataclass
class SkipList:
    """Inputs left out of a prepared corpus, each with its problem.

    Non-strict: each one is logged and remembered (``write`` lists them in ``skipped.tsv``).
    Strict: the first one raises (:class:`AudioError` for audio problems, ``ValueError`` otherwise).
    """

    strict: bool = False
    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, path: str | os.PathLike, problem: str, *, audio: bool = True) -> None:
        problem = " ".join(str(problem).split())  # one line, no tabs: it goes into a TSV cell
        if self.strict:
            if audio:
                raise AudioError(path, f"{problem} (strict mode stops at the first bad input)")
            raise ValueError(f"{path}: {problem} (strict mode stops at the first bad input)")
        log.warning("skipping %s: %s", path, problem)
        self.items.append((str(path), problem))

    def __len__(self) -> int:
        return len(self.items)

    def write(self, out_dir: str | os.PathLike, splits: Iterable[str] = ()) -> Path:
        """Write ``<out_dir>/skipped.tsv`` (header only when nothing was skipped), each row tagged
        with ``splits``, the splits this run prepares. Rows an earlier run into the same folder
        wrote for other splits are kept (``prepare folder --split dev`` beside a train split does
        not lose train's list). Paths are TSV-escaped (:func:`speechssl.io.escape_tsv`)."""
        path = Path(out_dir) / SKIPPED_FILE
        tag = ",".join(splits)
        mine = set(splits)
        kept = [row for row in _skipped_rows(path) if mine and not (set(row[2].split(",")) & mine) and row[2]]
        rows = [*kept, *((p, problem, tag) for p, problem in self.items)]
        lines = ["path\tproblem\tsplits", *("\t".join(map(escape_tsv, row)) for row in rows)]
        atomic_write_text(path, "\n".join(lines) + "\n")
        return path


def _skipped_rows(path: Path) -> list[tuple[str, str, str]]:
    if not path.is_file():
        return []
    rows = []
    for row in path.read_text(encoding="utf-8").splitlines()[1:]:
        if row:
            cells = [unescape_tsv(c) for c in row.split("\t")]
            rows.append((cells[0], cells[1] if len(cells) > 1 else "", cells[2] if len(cells) > 2 else ""))
    return rows


def read_skipped(out_dir: str | os.PathLike, splits: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """The ``(path, problem)`` rows of ``<out_dir>/skipped.tsv`` (empty if the file is absent);
    with ``splits``, only those of a run that prepared any of them."""
    want = set(splits) if splits is not None else None
    return [
        (p, problem)
        for p, problem, tag in _skipped_rows(Path(out_dir) / SKIPPED_FILE)
        if want is None or not tag or set(tag.split(",")) & want
    ]


def _too_short_problem(num_frames: int, sample_rate: int, what: str = "") -> str | None:
    """A problem string if ``num_frames`` at ``sample_rate`` gives fewer than MIN_SAMPLES at 16 kHz."""
    at_16k = math.ceil(num_frames * SAMPLE_RATE / sample_rate)  # the resampler's output length
    if at_16k >= MIN_SAMPLES:
        return None
    return (
        f"too short{what}: {num_frames / sample_rate:.4f} s ({num_frames} samples at {sample_rate} Hz), "
        f"need at least {MIN_SAMPLES / SAMPLE_RATE:.4f} s ({MIN_SAMPLES} samples at {SAMPLE_RATE} Hz)"
    )


def check_audio_file(path: str | os.PathLike, *, verify: bool = False) -> AudioHeader:
    """Check one audio file and return its header, or raise :class:`AudioError` naming the problem.

    Checks: the file exists and is not 0 bytes, libsndfile reads its header (format detected from
    the contents, not the extension), it has frames, and it is at least ``MIN_SAMPLES`` long at
    16 kHz. With ``verify`` the whole file is also decoded (catches truncated or corrupt bodies).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "file not found (or a broken link)")
    if path.stat().st_size == 0:
        raise AudioError(path, "file is empty (0 bytes)")
    rate, frames, channels = audio_info(path)
    if frames <= 0:
        raise AudioError(path, "no audio samples (0 frames in the header)")
    problem = _too_short_problem(frames, rate)
    if problem:
        raise AudioError(path, problem)
    if verify:
        load_audio(path)
    return AudioHeader(rate, frames, channels)


def thread_map(fn: Callable[[T], R], items: Sequence[T], num_jobs: int) -> list[R]:
    """``[fn(x) for x in items]`` on ``num_jobs`` threads (file I/O and decoding release the GIL)."""
    if num_jobs <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(num_jobs) as ex:
        return list(ex.map(fn, items))


def check_audio_files(
    paths: Sequence[Path], skips: SkipList, *, verify: bool = False, num_jobs: int = 1
) -> dict[Path, AudioHeader]:
    """Headers of the usable files among ``paths``; each bad one goes to ``skips`` (or raises in strict mode)."""

    def check(path: Path) -> AudioHeader | AudioError:
        try:
            return check_audio_file(path, verify=verify)
        except AudioError as e:
            return e

    good: dict[Path, AudioHeader] = {}
    for path, result in zip(paths, thread_map(check, list(paths), num_jobs), strict=True):
        if isinstance(result, AudioError):
            skips.add(path, result.problem)
        else:
            good[path] = result
    return good


def recording_from_header(path: Path, recording_id: str, header: AudioHeader) -> Recording:
    """A lhotse Recording of a whole file at its native rate and channel count."""
    return Recording(
        id=recording_id,
        sources=[AudioSource(type="file", channels=list(range(header.num_channels)), source=str(path))],
        sampling_rate=header.sample_rate,
        num_samples=header.num_frames,
        duration=header.duration,
    )


def whole_recording_channel(recording: Recording) -> int | list[int]:
    """The ``channel`` value of a supervision that covers every channel of ``recording``."""
    return recording.channel_ids[0] if recording.num_channels == 1 else list(recording.channel_ids)


def cuts_from_manifests(recordings: RecordingSet, supervisions: SupervisionSet) -> CutSet:
    """One cut per supervision, sorted by id.

    A recording with a single supervision that covers it becomes one cut with the supervision's id;
    a recording with several supervisions (or one that covers only part of it) is trimmed to its
    supervisions (cut id = supervision id). Recordings without supervisions are dropped.
    """
    out = []
    for cut in CutSet.from_manifests(recordings=recordings, supervisions=supervisions):
        sups = cut.supervisions
        if not sups:
            log.debug("recording %s has no supervision: left out", cut.recording_id)
            continue
        if len(sups) == 1 and sups[0].start <= 1e-3 and sups[0].end >= cut.duration - 1e-3:
            out.append(cut.with_id(sups[0].id))
        else:
            out.extend(cut.trim_to_supervisions(keep_overlapping=False))
    return CutSet.from_cuts(sorted(out, key=lambda c: c.id))


def cut_path(cut) -> str:
    """The audio file of a cut (or its recording id when the source is not a file)."""
    sources = cut.recording.sources
    if len(sources) == 1 and sources[0].type == "file":
        return str(sources[0].source)
    return f"recording {cut.recording_id}"


def check_cuts(cuts: CutSet, skips: SkipList, *, verify: bool = False, num_jobs: int = 1) -> CutSet:
    """Drop (or, strict, raise on) cuts that are empty or too short at 16 kHz; with ``verify`` also
    those whose audio does not decode."""
    kept = []
    for cut in cuts:
        segment = (
            ""
            if (cut.start == 0 and abs(cut.duration - cut.recording.duration) < 1e-3)
            else (f" (segment {cut.id}: {cut.start:.3f}-{cut.end:.3f} s)")
        )
        num_frames = round(cut.duration * cut.sampling_rate)
        if cut.recording.num_samples == 0 or num_frames <= 0:
            skips.add(cut_path(cut), f"no audio samples{segment}")
            continue
        problem = _too_short_problem(num_frames, cut.sampling_rate, segment)
        if problem:
            skips.add(cut_path(cut), problem)
            continue
        kept.append(cut)
    if verify:

        def decode(cut) -> AudioError | None:
            try:
                load_cut_audio(cut)
            except (AudioError, FileNotFoundError) as e:
                return e if isinstance(e, AudioError) else AudioError(cut_path(cut), "file not found")
            return None

        errors = thread_map(decode, kept, num_jobs)
        bad = [(cut, err) for cut, err in zip(kept, errors, strict=True) if err is not None]
        for _, err in bad:
            skips.add(err.path, err.problem)
        bad_ids = {cut.id for cut, _ in bad}
        kept = [c for c in kept if c.id not in bad_ids]
    return CutSet.from_cuts(kept)


def resolve_corpus_dir(corpus_dir: str | os.PathLike, corpus: str) -> Path:
    """The absolute corpus folder, or FileNotFoundError naming it."""
    path = Path(corpus_dir).expanduser()
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "not found"
        raise FileNotFoundError(f"{path}: {corpus} corpus folder {what}")
    return path.resolve()


def listing(folder: Path, limit: int = 8) -> str:
    """A short description of what a folder holds, for error messages."""
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir() if not p.name.startswith("."))
    except OSError:
        return "(unreadable folder)"
    if not names:
        return "an empty folder"
    more = f", ... ({len(names)} entries)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def select_parts(
    requested: Sequence[str] | None,
    present: Sequence[str],
    *,
    root: Path,
    what: str,
    expected: str,
    valid: Sequence[str] | None = None,
) -> list[str]:
    """The parts (subsets, sessions, languages) to prepare: all ``present`` ones when none are
    ``requested``, else the requested ones, deduplicated in order. Fails naming ``root`` when none
    is present (saying what layout was ``expected``), when a requested one is not among ``valid``,
    or when it is not present."""
    if requested is None:
        if not present:
            raise ValueError(f"{root}: expected {expected}; found {listing(root)}")
        return list(present)
    if valid is not None:
        unknown = [str(p) for p in requested if p not in valid]
        if unknown:
            raise ValueError(f"unknown {what} {', '.join(unknown)}; valid: {', '.join(map(str, valid))}")
    missing = [str(p) for p in requested if p not in present]
    if missing:
        found = ", ".join(map(str, present)) or listing(root)
        raise ValueError(f"{root}: requested {what} {', '.join(missing)} not found; found {found}")
    return list(dict.fromkeys(requested))


def call_lhotse(
    recipe: str,
    fn: Callable[..., T],
    *args,
    unreadable_scan: Callable[[], Iterable[Path]] | None = None,
    skips: SkipList | None = None,
    out_dir: Path | None = None,
    **kwargs,
) -> T:
    """Run a lhotse recipe function; turn its failures into a ValueError a user can act on.

    lhotse's recipes stop at the first file they cannot read. When that happens and
    ``unreadable_scan`` is given, every file it yields is header-checked, the bad ones are listed
    in ``<out_dir>/skipped.tsv``, and the error says how many there are.
    """
    from lhotse.audio.utils import AudioLoadingError

    try:
        return fn(*args, **kwargs)
    except AudioLoadingError as e:
        message = str(e).strip().splitlines()[0]
        named = re.search(r"from '(.+?)' failed", message)
        path = Path(named.group(1)) if named else None
        if path is not None and not path.exists():
            what, problem = f"a missing audio file: {path}", "listed by the corpus metadata but not found"
        else:
            what, problem = f"an unreadable audio file: {path or message}", "unreadable"
        found = ""
        if unreadable_scan is not None and skips is not None and out_dir is not None:
            scan = SkipList()
            if path is not None and not path.exists():
                scan.add(path, problem)
            check_audio_files(sorted(unreadable_scan()), scan)
            skips.items.extend(scan.items)
            skips.write(out_dir)
            found = f" {len(scan)} unusable audio file(s) are listed in {out_dir / SKIPPED_FILE}."
        raise ValueError(
            f"lhotse's {recipe} recipe stopped at {what}.{found} lhotse's recipes cannot skip bad or missing "
            f"files: fix, remove or re-download them (or import the audio with 'speechssl prepare folder', which "
            f"reports and skips bad files)"
        ) from e
    except (AssertionError, KeyError, IndexError, ValueError) as e:
        raise ValueError(f"lhotse's {recipe} recipe failed ({type(e).__name__}: {e}); check the corpus layout") from e


def write_prepared(
    splits: Mapping[str, CutSet], out_dir: str | os.PathLike, skips: SkipList, *, corpus: str
) -> dict[str, CutSet]:
    """Write the non-empty splits as ``cuts_<split>.jsonl.gz`` and ``skipped.tsv``; return the splits.

    Raises ValueError when no split has a single usable cut.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kept: dict[str, CutSet] = {}
    for name, cuts in splits.items():
        if len(cuts) == 0:
            log.warning("%s: split '%s' has no usable cuts; no manifest written for it", corpus, name)
        else:
            kept[name] = cuts
    skipped_path = skips.write(out_dir, splits)
    if not kept:
        raise ValueError(
            f"{corpus}: no usable utterances found (splits tried: {', '.join(splits) or 'none'}; "
            f"{len(skips)} input(s) skipped, see {skipped_path})"
        )
    paths = save_splits(kept, out_dir)
    for name, path in paths.items():
        log.info("%s: wrote %d cuts to %s", corpus, len(kept[name]), path)
    if len(skips):
        log.warning("%s: skipped %d input(s), listed in %s", corpus, len(skips), skipped_path)
    return kept


def lhotse_splits_to_cuts(
    manifests: Mapping[str, Mapping[str, object]],
    normalize: Callable[[SupervisionSegment], SupervisionSegment] | None = None,
) -> dict[str, CutSet]:
    """``{split: {"recordings": ..., "supervisions": ...}}`` from a lhotse recipe -> ``{split: CutSet}``."""
    out: dict[str, CutSet] = {}
    for split, m in manifests.items():
        recordings, supervisions = m.get("recordings"), m.get("supervisions")
        if recordings is None or supervisions is None:
            continue  # e.g. VoxCeleb trial tuples
        if normalize is not None:
            supervisions = SupervisionSet.from_segments([normalize(s) for s in supervisions])
        out[split] = cuts_from_manifests(recordings, supervisions)
    return out


def normalize_gender(value: str | None) -> str | None:
    """``m``/``f`` from the spellings corpora use (M, male, MALE, male_masculine, ...); else None."""
    if not value:
        return None
    v = value.strip().lower()
    if v in ("m", "male", "male_masculine", "man"):
        return "m"
    if v in ("f", "female", "female_feminine", "woman"):
        return "f"
    return None
