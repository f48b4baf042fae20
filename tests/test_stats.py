"""Corpus statistics from manifests."""

from __future__ import annotations

import json

from lhotse import CutSet, SupervisionSegment
from lhotse.testing.dummies import dummy_cut

from speechssl.cli import stats as stats_cli
from speechssl.data.manifest import find_splits, load_cuts
from speechssl.data.stats import corpus_stats, format_stats


def test_counts_on_hand_made_cuts():
    cuts = []
    for i, (spk, gender, lang, emo) in enumerate([("a", "f", "en", "hap"), ("a", "f", "en", "neu"), ("b", "m", "de", None)]):
        cut = dummy_cut(i, duration=2.0 + i)
        custom = {"emotion4": emo} if emo else {}
        cut.supervisions = [SupervisionSegment(f"s{i}", cut.recording_id, 0, cut.duration, speaker=spk, gender=gender, language=lang, custom=custom)]
        cuts.append(cut)
    st = corpus_stats({"train": CutSet.from_cuts(cuts[:2]), "test": CutSet.from_cuts(cuts[2:])})
    assert st["all"].num_cuts == 3 and st["all"].seconds == 2.0 + 3.0 + 4.0
    d = st["all"].as_dict()
    assert d["speakers"] == 2 and d["speakers_by_gender"] == {"f": 1, "m": 1}
    assert d["languages"] == {"de": 1, "en": 2} and d["emotions"] == {"hap": 1, "neu": 1}
    assert d["min_duration_s"] == 2.0 and d["max_duration_s"] == 4.0
    table = format_stats(st)
    assert "emotions: hap (1), neu (1)" in table and "1/1" in table


def test_stats_cli_on_the_mini_corpus(mini_corpus, capsys):
    assert stats_cli.main([str(mini_corpus), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert set(got) == {"train", "dev", "test", "all"}
    # the same numbers the corpus wrote when it was made
    assert got == json.loads((mini_corpus / "stats.json").read_text())
    n = sum(len(load_cuts(p)) for p in find_splits(mini_corpus).values())
    assert got["all"]["cuts"] == n
