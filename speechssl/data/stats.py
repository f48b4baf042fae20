"""Corpus statistics computed from cut manifests: hours, speakers, languages, styles, phones."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping


@dataclass
class SplitStats:
    """What one split of a corpus holds. Counters map a value to its number of cuts."""

    name: str
    num_cuts: int = 0
    seconds: float = 0.0
    speakers: set[str] = field(default_factory=set)
    genders: dict[str, set[str]] = field(default_factory=dict)  # gender -> speakers
    languages: Counter = field(default_factory=Counter)
    styles: Counter = field(default_factory=Counter)
    emotions: Counter = field(default_factory=Counter)  # custom["emotion4"] (IEMOCAP-style corpora)
    phones: Counter = field(default_factory=Counter)  # phone symbol -> occurrences
    min_duration: float = float("inf")
    max_duration: float = 0.0

    @property
    def hours(self) -> float:
        return self.seconds / 3600.0

    def add(self, cut) -> None:
        self.num_cuts += 1
        self.seconds += cut.duration
        self.min_duration = min(self.min_duration, cut.duration)
        self.max_duration = max(self.max_duration, cut.duration)
        for sup in cut.supervisions:
            if sup.speaker is not None:
                self.speakers.add(sup.speaker)
                if sup.gender:
                    self.genders.setdefault(sup.gender, set()).add(sup.speaker)
            if sup.language:
                self.languages[sup.language] += 1
            style = (sup.custom or {}).get("style")
            if style:
                self.styles[style] += 1
            emotion = (sup.custom or {}).get("emotion4")
            if emotion:
                self.emotions[emotion] += 1
            for item in (sup.alignment or {}).get("phone", []):
                self.phones[item.symbol] += 1

    def merge(self, other: "SplitStats") -> None:
        self.num_cuts += other.num_cuts
        self.seconds += other.seconds
        self.min_duration = min(self.min_duration, other.min_duration)
        self.max_duration = max(self.max_duration, other.max_duration)
        self.speakers |= other.speakers
        for g, spk in other.genders.items():
            self.genders.setdefault(g, set()).update(spk)
        self.languages.update(other.languages)
        self.styles.update(other.styles)
        self.emotions.update(other.emotions)
        self.phones.update(other.phones)

    def as_dict(self) -> dict:
        return {
            "cuts": self.num_cuts,
            "hours": round(self.hours, 4),
            "min_duration_s": round(self.min_duration, 3) if self.num_cuts else None,
            "max_duration_s": round(self.max_duration, 3),
            "speakers": len(self.speakers),
            "speakers_by_gender": {g: len(s) for g, s in sorted(self.genders.items())},
            "languages": dict(sorted(self.languages.items())),
            "styles": dict(sorted(self.styles.items())),
            "emotions": dict(sorted(self.emotions.items())),
            "phone_inventory": len(self.phones),
        }


def corpus_stats(splits: Mapping[str, Iterable]) -> dict[str, SplitStats]:
    """Statistics per split plus an ``"all"`` entry over every split (speakers counted once)."""
    out: dict[str, SplitStats] = {}
    total = SplitStats("all")
    for name, cuts in splits.items():
        st = SplitStats(name)
        for cut in cuts:
            st.add(cut)
        out[name] = st
        total.merge(st)
    out["all"] = total
    return out


def format_stats(stats: Mapping[str, SplitStats]) -> str:
    """A human-readable table: one row per split, then languages, styles and the phone inventory."""
    rows = [f"{'split':<10} {'cuts':>7} {'hours':>8} {'speakers':>8} {'f/m':>7} {'dur min-max (s)':>16}"]
    for name, st in stats.items():
        g = st.genders
        fm = f"{len(g.get('f', ()))}/{len(g.get('m', ()))}" if g else "-"
        dur = f"{st.min_duration:.1f}-{st.max_duration:.1f}" if st.num_cuts else "-"
        rows.append(f"{name:<10} {st.num_cuts:>7} {st.hours:>8.3f} {len(st.speakers):>8} {fm:>7} {dur:>16}")
    total = stats.get("all") or next(iter(stats.values()))
    if total.languages:
        rows.append("languages: " + ", ".join(f"{k} ({v})" for k, v in sorted(total.languages.items())))
    if total.styles:
        rows.append("styles: " + ", ".join(f"{k} ({v})" for k, v in sorted(total.styles.items())))
    if total.emotions:
        rows.append("emotions: " + ", ".join(f"{k} ({v})" for k, v in sorted(total.emotions.items())))
    if total.phones:
        rows.append(f"phone inventory: {len(total.phones)} phones: " + " ".join(sorted(total.phones)))
    return "\n".join(rows)
