"""IEMOCAP (emotion recognition; lhotse has no recipe for it).

Layout (the USC release, unpacked)::

    IEMOCAP_full_release/Session{1..5}/
      sentences/wav/<dialog>/<utterance>.wav                e.g. Ses01F_impro01/Ses01F_impro01_F000.wav
      dialog/EmoEvaluation/<dialog>.txt                      "[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]"
      dialog/transcriptions/<dialog>.txt                     "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me."

One cut per labelled utterance, cut id = utterance id, speaker = session + the utterance speaker's
gender (``Ses01F`` for ``Ses01M_impro01_F000``: the ``_F000`` part says who speaks), gender m/f,
language ``en``, text from the transcriptions (None where there is none), and ``custom``:

  * ``emotion``: the label as annotated (neu, hap, exc, ang, sad, fru, sur, fea, dis, oth, xxx);
  * ``emotion4``: the usual 4-class label -- neu, hap (excited merged into happy), ang, sad --
    absent for other labels;
  * ``session`` (1-5), ``dialog``, ``improvised`` (True for the improvised dialogs);
  * ``valence``, ``arousal``, ``dominance``: the dimensional labels (1-5).

By default only the 4-class utterances are kept (5531 in the full corpus); ``four_class=False``
keeps every utterance. One split per session (``cuts_session1.jsonl.gz`` ... ``cuts_session5``),
because IEMOCAP is evaluated by 5-fold leave-one-session-out: fold k tests on session k and trains
on the other four (:func:`leave_one_session_out` builds a fold).
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from pathlib import Path
from typing import Mapping, Sequence

from lhotse import CutSet, RecordingSet, SupervisionSegment, SupervisionSet

from speechssl.data.corpora._common import (
    SkipList,
    check_audio_files,
    check_cuts,
    cuts_from_manifests,
    listing,
    recording_from_header,
    resolve_corpus_dir,
    select_parts,
    write_prepared,
)

log = logging.getLogger(__name__)

SESSIONS = (1, 2, 3, 4, 5)
#: Raw label -> 4-class label (excited counts as happy); labels not listed have no 4-class label.
FOUR_CLASS = {"neu": "neu", "hap": "hap", "exc": "hap", "ang": "ang", "sad": "sad"}
LABELS = ("neu", "hap", "exc", "ang", "sad", "fru", "sur", "fea", "dis", "oth", "xxx")

_EVAL_LINE = re.compile(
    r"^\[\s*(?P<start>[\d.]+)\s*-\s*(?P<end>[\d.]+)\s*\]\s+(?P<utt>\S+)\s+(?P<label>\S+)\s+"
    r"\[\s*(?P<v>[\d.]+)\s*,\s*(?P<a>[\d.]+)\s*,\s*(?P<d>[\d.]+)\s*\]"
)
_TRANSCRIPT_LINE = re.compile(r"^(?P<utt>Ses\S+)\s+\[[^\]]*\]:\s?(?P<text>.*)$")
_UTT_ID = re.compile(r"^Ses(?P<session>\d{2})[FM]_.+_(?P<gender>[FM])[^_]*$")


def read_emo_evaluation(path: Path) -> dict[str, tuple[str, float, float, float]]:
    """Utterance id -> (label, valence, arousal, dominance) from one EmoEvaluation file."""
    out = {}
    for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines():
        m = _EVAL_LINE.match(line)
        if m:
            out[m["utt"]] = (m["label"], float(m["v"]), float(m["a"]), float(m["d"]))
    return out


def read_transcriptions(path: Path) -> dict[str, str]:
    """Utterance id -> transcript from one transcriptions file."""
    out = {}
    for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines():
        m = _TRANSCRIPT_LINE.match(line.strip())
        if m:
            out[m["utt"]] = m["text"].strip()
    return out


def speaker_of(utt_id: str) -> tuple[str, str]:
    """``Ses01M_impro01_F000`` -> (``Ses01F``, ``f``): session + the speaking actor's gender."""
    m = _UTT_ID.match(utt_id)
    if not m:
        raise ValueError(f"not an IEMOCAP utterance id: {utt_id!r} (expected e.g. Ses01F_impro01_F000)")
    return f"Ses{m['session']}{m['gender']}", m["gender"].lower()


def _find_root(corpus_dir: Path) -> Path:
    if not (corpus_dir / "Session1").is_dir() and (corpus_dir / "IEMOCAP_full_release").is_dir():
        return corpus_dir / "IEMOCAP_full_release"
    return corpus_dir


def _txt_files(folder: Path) -> list[Path]:
    """The ``<dialog>.txt`` files directly in ``folder`` (not its Categorical/ etc. subfolders, not ``._*``)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.txt") if p.is_file() and not p.name.startswith("."))


def prepare_iemocap(
    corpus_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    sessions: Sequence[int] | None = None,
    four_class: bool = True,
    num_jobs: int = 1,
    strict: bool = False,
    verify: bool = False,
) -> dict[str, CutSet]:
    """Prepare IEMOCAP as ``<out_dir>/cuts_session<N>.jsonl.gz``, one per session.

    :param corpus_dir: ``IEMOCAP_full_release`` (or the folder that holds it).
    :param sessions: sessions to prepare (1-5); default: those present.
    :param four_class: keep only neu/hap/exc/ang/sad utterances (``emotion4`` set); False keeps all.
    :param num_jobs: threads for reading audio headers.
    :param strict: raise on the first unusable utterance (unreadable or missing audio) instead of skipping it.
    :param verify: decode every file (slow) instead of trusting the headers.
    :return: ``{"session1": CutSet, ...}``.
    """
    root = _find_root(resolve_corpus_dir(corpus_dir, "IEMOCAP"))
    present = [s for s in SESSIONS if (root / f"Session{s}").is_dir()]
    if sessions is not None and any(s not in SESSIONS for s in sessions):
        raise ValueError(f"IEMOCAP sessions are 1-5; got {[s for s in sessions if s not in SESSIONS]}")
    folders = select_parts(
        None if sessions is None else [f"Session{s}" for s in sessions],
        [f"Session{s}" for s in present],
        root=root,
        what="IEMOCAP session folder(s)",
        expected="IEMOCAP_full_release with Session1..Session5 folders "
        "(Session<N>/sentences/wav, Session<N>/dialog/EmoEvaluation)",
    )
    sessions = sorted(int(name[len("Session") :]) for name in folders)

    skips = SkipList(strict=strict)
    labels_seen: Counter = Counter()
    splits: dict[str, CutSet] = {}
    for session in sessions:
        sdir = root / f"Session{session}"
        eval_dir = sdir / "dialog" / "EmoEvaluation"
        eval_files = _txt_files(eval_dir)
        if not eval_files:
            found = listing(eval_dir) if eval_dir.is_dir() else "no such folder"
            raise ValueError(f"{eval_dir}: expected <dialog>.txt label files; found {found}")
        transcripts: dict[str, str] = {}
        for t in _txt_files(sdir / "dialog" / "transcriptions"):
            transcripts.update(read_transcriptions(t))
        items = []  # (path, utt id, dialog, label, v, a, d)
        for ev in eval_files:
            dialog = ev.stem
            for utt, (label, v, a, d) in read_emo_evaluation(ev).items():
                labels_seen[label] += 1
                if four_class and label not in FOUR_CLASS:
                    continue
                items.append((sdir / "sentences" / "wav" / dialog / f"{utt}.wav", utt, dialog, label, v, a, d))
        paths = []
        for path, utt, dialog, *_ in items:
            if not _UTT_ID.match(utt):
                skips.add(
                    path,
                    f"unexpected utterance id {utt!r} in {dialog}.txt (expected e.g. Ses01F_impro01_F000)",
                    audio=False,
                )
            elif not path.is_file():
                skips.add(path, f"labelled in {dialog}.txt (EmoEvaluation) but the audio file is missing")
            else:
                paths.append(path)
        headers = check_audio_files(paths, skips, verify=verify, num_jobs=num_jobs)
        recordings, supervisions = [], []
        for path, utt, dialog, label, v, a, d in items:
            if path not in headers:
                continue
            speaker, gender = speaker_of(utt)
            rec = recording_from_header(path, utt, headers[path])
            custom = {"emotion": label}
            if label in FOUR_CLASS:
                custom["emotion4"] = FOUR_CLASS[label]
            custom.update(
                session=session, dialog=dialog, improvised="_impro" in dialog, valence=v, arousal=a, dominance=d
            )
            recordings.append(rec)
            supervisions.append(
                SupervisionSegment(
                    id=utt,
                    recording_id=utt,
                    start=0.0,
                    duration=rec.duration,
                    channel=0 if rec.num_channels == 1 else list(rec.channel_ids),
                    text=transcripts.get(utt),
                    language="en",
                    speaker=speaker,
                    gender=gender,
                    custom=custom,
                )
            )
        no_text = sum(1 for s in supervisions if s.text is None)
        if no_text:
            log.info("IEMOCAP session %d: %d utterance(s) have no transcript (text=None)", session, no_text)
        cuts = cuts_from_manifests(RecordingSet.from_recordings(recordings), SupervisionSet.from_segments(supervisions))
        splits[f"session{session}"] = check_cuts(cuts, skips, num_jobs=num_jobs)
    log.info("IEMOCAP labels found: %s", ", ".join(f"{k} {v}" for k, v in labels_seen.most_common()))
    if four_class:
        dropped = {k: v for k, v in labels_seen.items() if k not in FOUR_CLASS}
        if dropped:
            log.info(
                "IEMOCAP: left out %d utterances outside the 4 classes (%s); four_class=False keeps them",
                sum(dropped.values()),
                ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())),
            )
    return write_prepared(splits, out_dir, skips, corpus="IEMOCAP")


def leave_one_session_out(splits: Mapping[str, CutSet], test_session: int) -> tuple[CutSet, CutSet]:
    """Fold ``test_session`` of the 5-fold protocol: ``(train, test)`` = (every other session, that one).

    ``splits`` maps ``session<N>`` to cuts, as :func:`prepare_iemocap` returns (or as loaded with
    ``speechssl.data.manifest.find_splits`` + ``load_cuts``).
    """
    key = f"session{test_session}"
    if key not in splits:
        raise ValueError(f"no split '{key}' among {', '.join(sorted(splits))}")
    train = [c for name, cuts in sorted(splits.items()) if name != key and name.startswith("session") for c in cuts]
    return CutSet.from_cuts(train), splits[key]
