"""A folder of audio files as one split, with optional transcripts and speaker ids.

Every file whose extension (any case) is in ``AUDIO_EXTENSIONS`` is found recursively (hidden
files and folders are ignored; linked folders are followed once). The cut id is the path relative
to the folder without the extension, ``/``-separated, whitespace replaced by ``_``
(``spk1/utt 1.wav`` -> ``spk1/utt_1``). The recording keeps the file's native rate and channel
count (loading converts to 16 kHz mono); a multi-channel file's supervision covers every channel.

Transcripts (optional, one source):
  * ``text_file``: Kaldi-style ``<id> <transcript>`` lines;
  * ``sibling_text``: ``<name>.txt`` or ``<name>.lab`` next to each audio file.
Speakers (optional, one source):
  * ``utt2spk``: Kaldi-style ``<id> <speaker>`` lines;
  * ``speaker_from_dir=N``: the N-th folder of the relative path (1 = the top folder; -1 = the
    folder that holds the file).
An ``<id>`` in a Kaldi-style file is the cut id, or the bare file name without extension when that
name is unique in the folder. ``spk2gender`` (``<speaker> <m|f>``) adds genders.

Bad inputs are reported and skipped, and listed in ``<out_dir>/skipped.tsv``: unreadable files
(format detected from the contents: a WAV named ``.flac`` imports, a text file named ``.wav`` does
not), empty ones (0 bytes or 0 frames), files shorter than ``MIN_SAMPLES`` at 16 kHz, duplicate ids
(``a.wav`` next to ``a.flac``), and files with no transcript (or speaker) when transcripts (or
speakers) were asked for -- unless ``allow_missing_text`` (``allow_missing_speaker``) keeps them
with ``text=None`` (``speaker=None``). Empty transcripts count as missing. ``strict=True`` raises at
the first bad input instead.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from pathlib import Path

from lhotse import CutSet, RecordingSet, SupervisionSegment, SupervisionSet

from speechssl.data.corpora._common import (
    SkipList,
    check_audio_files,
    check_cuts,
    cuts_from_manifests,
    listing,
    recording_from_header,
    resolve_corpus_dir,
    whole_recording_channel,
    write_prepared,
)

log = logging.getLogger(__name__)

#: Extensions (lower case) of the formats libsndfile reads; matched case-insensitively.
AUDIO_EXTENSIONS = (
    ".wav",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".aif",
    ".aiff",
    ".aifc",
    ".au",
    ".caf",
    ".w64",
    ".rf64",
    ".sph",
    ".nist",
)
TRANSCRIPT_SUFFIXES = (".txt", ".lab")


def find_audio_files(root: Path, extensions: tuple[str, ...] = AUDIO_EXTENSIONS) -> list[Path]:
    """Audio files under ``root`` (sorted), skipping hidden entries; linked folders are followed once."""
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    found, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a link loop or a folder linked twice
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in exts:
                found.append(Path(dirpath) / name)
    return sorted(found)


def cut_id_for(path: Path, root: Path) -> str:
    """``spk1/utt 1.wav`` -> ``spk1/utt_1``."""
    rel = path.relative_to(root).with_suffix("").as_posix()
    return re.sub(r"\s+", "_", rel)


def read_kaldi_map(path: str | os.PathLike, what: str) -> dict[str, str]:
    """``<key> <value...>`` lines (Kaldi ``text``/``utt2spk``/``spk2gender``); the value may be empty."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} file not found")
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        key, _, value = line.strip().partition(" ")
        if key in out:
            log.warning("%s:%d: duplicate id %s in the %s file; the later line wins", path, n, key, what)
        out[key] = value.strip()
    return out


class _Lookup:
    """Finds a file's entry in a Kaldi-style map by cut id, else by unique bare file name."""

    def __init__(self, table: dict[str, str], stems: Counter):
        self.table, self.stems, self.used = table, stems, set()

    def get(self, cut_id: str, path: Path) -> str | None:
        for key in (cut_id, path.stem):
            if key in self.table and (key == cut_id or self.stems[key] == 1):
                self.used.add(key)
                return self.table[key]
        return None

    def report_unused(self, what: str, source: str | os.PathLike) -> None:
        unused = [k for k in self.table if k not in self.used]
        if unused:
            log.warning(
                "%s: %d %s entries match no usable audio file (e.g. %s)",
                source,
                len(unused),
                what,
                ", ".join(unused[:3]),
            )


def _sibling_text(path: Path) -> str | None:
    for suffix in TRANSCRIPT_SUFFIXES:
        t = path.with_suffix(suffix)
        if t.is_file():
            return " ".join(t.read_text(encoding="utf-8-sig", errors="replace").split())
    return None


def _speaker_from_dir(cut_id: str, level: int) -> str | None:
    folders = cut_id.split("/")[:-1]
    index = level - 1 if level > 0 else len(folders) + level
    return folders[index] if 0 <= index < len(folders) else None


def prepare_folder(
    corpus_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    split: str = "all",
    text_file: str | os.PathLike | None = None,
    sibling_text: bool = False,
    utt2spk: str | os.PathLike | None = None,
    speaker_from_dir: int | None = None,
    spk2gender: str | os.PathLike | None = None,
    language: str | None = None,
    allow_missing_text: bool = False,
    allow_missing_speaker: bool = False,
    extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
    num_jobs: int = 1,
    strict: bool = False,
    verify: bool = False,
) -> dict[str, CutSet]:
    """Import every audio file under ``corpus_dir`` as ``<out_dir>/cuts_<split>.jsonl.gz``.

    :param split: the split name of the manifest.
    :param text_file: Kaldi-style ``<id> <transcript>`` file (exclusive with ``sibling_text``).
    :param sibling_text: read ``<name>.txt``/``<name>.lab`` next to each audio file.
    :param utt2spk: Kaldi-style ``<id> <speaker>`` file (exclusive with ``speaker_from_dir``).
    :param speaker_from_dir: take the speaker from this folder level of the relative path
        (1 = top folder, -1 = the file's own folder).
    :param spk2gender: Kaldi-style ``<speaker> <m|f>`` file.
    :param language: language code stored in every supervision.
    :param allow_missing_text: keep files without a transcript (``text=None``) instead of skipping them.
    :param allow_missing_speaker: keep files without a speaker (``speaker=None``) instead of skipping them.
    :param extensions: audio extensions to pick up (case-insensitive).
    :param num_jobs: threads for reading audio headers (and decoding with ``verify``).
    :param strict: raise at the first bad input instead of skipping it.
    :param verify: fully decode every file instead of trusting the header.
    :return: ``{split: CutSet}``.
    """
    root = resolve_corpus_dir(corpus_dir, "audio")
    if text_file is not None and sibling_text:
        raise ValueError("give either text_file (a Kaldi-style text file) or sibling_text (<name>.txt files), not both")
    if utt2spk is not None and speaker_from_dir is not None:
        raise ValueError("give either utt2spk or speaker_from_dir, not both")
    if speaker_from_dir == 0:
        raise ValueError(
            "speaker_from_dir counts folders from 1 (top folder) or from -1 (the file's folder); 0 is neither"
        )
    if not split or "/" in split or split.strip() != split:
        raise ValueError(f"invalid split name {split!r}: expected a non-empty name without '/' or surrounding spaces")

    files = find_audio_files(root, extensions)
    if not files:
        raise ValueError(
            f"{root}: no audio files found (extensions {', '.join(extensions)}, any case, searched recursively); "
            f"found {listing(root)}"
        )
    log.info("folder: %d audio files under %s", len(files), root)
    skips = SkipList(strict=strict)
    ids = {path: cut_id_for(path, root) for path in files}
    stems = Counter(p.stem for p in files)

    # duplicate ids (a.wav next to a.flac): the first (sorted) file keeps the id
    first_of: dict[str, Path] = {}
    unique = []
    for path in files:
        if ids[path] in first_of:
            skips.add(path, f"duplicate cut id '{ids[path]}' (also from {first_of[ids[path]]})", audio=False)
        else:
            first_of[ids[path]] = path
            unique.append(path)

    texts = _Lookup(read_kaldi_map(text_file, "text"), stems) if text_file is not None else None
    speakers = _Lookup(read_kaldi_map(utt2spk, "utt2spk"), stems) if utt2spk is not None else None
    genders = read_kaldi_map(spk2gender, "spk2gender") if spk2gender is not None else {}

    # audio first, so that a bad file is reported for what is wrong with its audio
    headers = check_audio_files(unique, skips, verify=verify, num_jobs=num_jobs)
    annotated: dict[Path, tuple[str | None, str | None]] = {}
    for path in headers:
        cut_id = ids[path]
        text = None
        if texts is not None or sibling_text:
            text = texts.get(cut_id, path) if texts is not None else _sibling_text(path)
            if not text:
                where = f"in {text_file}" if texts is not None else f"({path.stem}.txt / {path.stem}.lab next to it)"
                problem = f"no transcript {where}" if text is None else f"empty transcript {where}"
                if not allow_missing_text:
                    skips.add(path, problem, audio=False)
                    continue
                log.info("%s: %s; kept with text=None", path, problem)
                text = None
        speaker = None
        if speakers is not None or speaker_from_dir is not None:
            speaker = (
                speakers.get(cut_id, path) if speakers is not None else _speaker_from_dir(cut_id, speaker_from_dir)
            )
            if not speaker:
                where = (
                    f"in {utt2spk}" if speakers is not None else f"(no folder level {speaker_from_dir} in '{cut_id}')"
                )
                if not allow_missing_speaker:
                    skips.add(path, f"no speaker {where}", audio=False)
                    continue
                log.info("%s: no speaker %s; kept with speaker=None", path, where)
                speaker = None
        annotated[path] = (text, speaker)
    if texts is not None:
        texts.report_unused("transcript", text_file)
    if speakers is not None:
        speakers.report_unused("utt2spk", utt2spk)

    recordings, supervisions = [], []
    for path, (text, speaker) in annotated.items():
        rec = recording_from_header(path, ids[path], headers[path])
        gender = genders.get(speaker, "").lower() if speaker else ""
        recordings.append(rec)
        supervisions.append(
            SupervisionSegment(
                id=rec.id,
                recording_id=rec.id,
                start=0.0,
                duration=rec.duration,
                channel=whole_recording_channel(rec),
                text=text,
                speaker=speaker,
                gender=gender if gender in ("m", "f") else None,
                language=language,
            )
        )
    cuts = cuts_from_manifests(RecordingSet.from_recordings(recordings), SupervisionSet.from_segments(supervisions))
    cuts = check_cuts(cuts, skips, num_jobs=num_jobs)
    return write_prepared({split: cuts}, out_dir, skips, corpus="folder")
