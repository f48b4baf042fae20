"""``speechssl subset``: language/speaker filters, the seeded minute budget, errors, subset.json."""

from __future__ import annotations

import json
import shlex
import shutil

import pytest

from speechssl.cli import subset as subset_cli
from speechssl.data.manifest import cuts_path, find_splits, load_cuts
from speechssl.data.subset import DONE_FILE, PARTIAL_FILE, budget_select, subset_corpus


@pytest.fixture(scope="module")
def source(mini_corpus):
    """split -> list of (id, speaker, language, duration) of the mini corpus, in manifest order."""
    out = {}
    for split, path in find_splits(mini_corpus).items():
        out[split] = [(c.id, c.supervisions[0].speaker, c.supervisions[0].language, c.duration) for c in load_cuts(path)]
    return out


def _ids(out_dir, split):
    return [c.id for c in load_cuts(cuts_path(out_dir, split))]


def test_language_filter_keeps_exactly_the_right_cuts(mini_corpus, source, tmp_path):
    got = subset_corpus(mini_corpus, tmp_path / "sub", languages=["en", "de"])
    assert list(got) == ["train", "dev", "test"]
    for split, rows in source.items():
        want = [cid for cid, _, lang, _ in rows if lang in ("en", "de")]
        assert want and _ids(tmp_path / "sub", split) == want  # same cuts, original order
        assert got[split].cuts == len(want) and set(got[split].languages) == {"en", "de"}
    # audio paths stay absolute paths into the source corpus
    cut = load_cuts(cuts_path(tmp_path / "sub", "train"))[0]
    assert cut.recording.sources[0].source.startswith(str(mini_corpus))


def test_speakers_and_exclude_speakers(mini_corpus, source, tmp_path):
    train_spk = sorted({spk for _, spk, _, _ in source["train"]})
    keep = train_spk[:2]
    subset_corpus(mini_corpus, tmp_path / "keep", splits=["train"], speakers=keep)
    assert _ids(tmp_path / "keep", "train") == [cid for cid, spk, _, _ in source["train"] if spk in keep]
    assert not cuts_path(tmp_path / "keep", "dev").exists()

    got = subset_corpus(mini_corpus, tmp_path / "drop", exclude_speakers=keep)
    assert _ids(tmp_path / "drop", "train") == [cid for cid, spk, _, _ in source["train"] if spk not in keep]
    assert _ids(tmp_path / "drop", "dev") == [cid for cid, *_ in source["dev"]]  # no excluded speaker there
    assert got["train"].speakers == set(train_spk[2:])


def test_max_minutes_budget(mini_corpus, source, tmp_path):
    minutes = 0.3
    a = subset_corpus(mini_corpus, tmp_path / "a", max_minutes=minutes, seed=0)
    b = subset_corpus(mini_corpus, tmp_path / "b", max_minutes=minutes, seed=0)
    c = subset_corpus(mini_corpus, tmp_path / "c", max_minutes=minutes, seed=1)
    dur = {cid: d for cid, _, _, d in source["train"]}
    ids_a = _ids(tmp_path / "a", "train")
    assert 0 < len(ids_a) < len(source["train"])
    assert sum(dur[i] for i in ids_a) <= minutes * 60 and a["train"].seconds <= minutes * 60
    # nearly full: no left-out cut would still fit
    assert min(d for i, d in dur.items() if i not in ids_a) > minutes * 60 - a["train"].seconds
    order = [cid for cid, *_ in source["train"]]
    assert ids_a == [i for i in order if i in set(ids_a)]  # original order
    assert ids_a == _ids(tmp_path / "b", "train")  # deterministic for a seed
    assert ids_a != _ids(tmp_path / "c", "train")  # another seed, another selection
    assert (cuts_path(tmp_path / "a", "train")).read_bytes() == cuts_path(tmp_path / "b", "train").read_bytes()
    for split in ("dev", "test"):  # not budget splits: whole
        assert _ids(tmp_path / "a", split) == [cid for cid, *_ in source[split]] and c[split].cuts == len(source[split])
    assert b["train"].cuts == len(ids_a)


def test_budget_on_chosen_splits_after_filtering(mini_corpus, source, tmp_path):
    got = subset_corpus(mini_corpus, tmp_path / "s", languages=["en"], max_minutes=0.1, budget_splits=["dev", "test"])
    assert got["train"].cuts == sum(lang == "en" for _, _, lang, _ in source["train"])  # whole
    for split in ("dev", "test"):
        assert 0 < got[split].seconds <= 6.0 and got[split].languages == {"en": got[split].cuts}


def test_budget_select_skips_what_does_not_fit():
    durations = [5.0, 1.0, 4.0, 2.0, 3.0]
    for seed in range(10):
        kept = budget_select(durations, 6.0, seed)
        assert kept == sorted(kept) and sum(durations[i] for i in kept) <= 6.0
        assert all(durations[i] > 6.0 - sum(durations[k] for k in kept) for i in set(range(5)) - set(kept))
    assert budget_select(durations, 100.0, 0) == [0, 1, 2, 3, 4]


def test_subset_json_written_last_and_correct(mini_corpus, source, tmp_path):
    out = tmp_path / "sub"
    subset_corpus(mini_corpus, out, splits=["train", "test"], languages=["fr"], max_minutes=0.1, seed=3)
    record = json.loads((out / DONE_FILE).read_text())
    assert record["arguments"] == {
        "source": str(mini_corpus.resolve()),
        "splits": ["train", "test"],
        "languages": ["fr"],
        "speakers": None,
        "exclude_speakers": None,
        "max_minutes": 0.1,
        "budget_splits": ["train"],
        "seed": 3,
    }
    assert list(record["splits"]) == ["train", "test"]
    for split, info in record["splits"].items():
        cuts = load_cuts(cuts_path(out, split))
        assert info["cuts"] == len(cuts) and info["seconds"] == pytest.approx(sum(c.duration for c in cuts), abs=1e-3)
        assert info["speakers"] == sorted({c.supervisions[0].speaker for c in cuts})
        assert info["languages"] == {"fr": len(cuts)}
    assert not (out / PARTIAL_FILE).exists()
    assert sorted(p.name for p in out.iterdir()) == ["cuts_test.jsonl.gz", "cuts_train.jsonl.gz", DONE_FILE]


def test_rerun_same_arguments_rewrites_other_arguments_refused(mini_corpus, tmp_path):
    out = tmp_path / "sub"
    subset_corpus(mini_corpus, out, languages=["en", "de"])
    before = cuts_path(out, "train").read_bytes()
    subset_corpus(mini_corpus, out, languages=["de", "en"])  # same subset, other order: rewritten
    assert cuts_path(out, "train").read_bytes() == before
    with pytest.raises(FileExistsError, match=r"other arguments \(languages: \['de', 'en'\] -> \['en'\]\)"):
        subset_corpus(mini_corpus, out, languages=["en"])
    assert cuts_path(out, "train").read_bytes() == before and (out / DONE_FILE).exists()


def test_interrupted_subset_is_cleared_foreign_folder_refused(mini_corpus, tmp_path):
    out = tmp_path / "sub"
    subset_corpus(mini_corpus, out)
    # an interrupted run: manifests and the partial marker, no subset.json
    (out / DONE_FILE).unlink()
    (out / PARTIAL_FILE).write_text("{}")
    subset_corpus(mini_corpus, out, splits=["dev"])
    assert sorted(find_splits(out)) == ["dev"] and not (out / PARTIAL_FILE).exists()
    # a folder with manifests that this tool did not make
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    shutil.copy(cuts_path(mini_corpus, "dev"), cuts_path(foreign, "dev"))
    with pytest.raises(FileExistsError, match=r"cuts_dev.jsonl.gz\) but no subset.json"):
        subset_corpus(mini_corpus, foreign)


def test_errors(mini_corpus, source, tmp_path):
    out = tmp_path / "out"
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty: no cuts_<split>.jsonl.gz manifests"):
        subset_corpus(tmp_path / "empty", out)
    with pytest.raises(ValueError, match=r"no split\(s\) eval; it has: train, dev, test"):
        subset_corpus(mini_corpus, out, splits=["train", "eval"])
    with pytest.raises(ValueError, match=r"output folder is the source folder"):
        subset_corpus(mini_corpus, mini_corpus.parent / ".." / mini_corpus.parent.name / mini_corpus.name)
    with pytest.raises(ValueError, match=r"either speakers .* or exclude_speakers"):
        subset_corpus(mini_corpus, out, speakers=["spk000"], exclude_speakers=["spk001"])
    # a filter that leaves a split empty names the split, the filter and what the split has
    train_spk = sorted({spk for _, spk, _, _ in source["train"]})
    dev_spk = sorted({spk for _, spk, _, _ in source["dev"]})
    with pytest.raises(ValueError, match=rf"split dev: no cut left after filtering by speakers {train_spk[0]};.*speakers: {', '.join(dev_spk)}"):
        subset_corpus(mini_corpus, out, speakers=[train_spk[0]])
    spk_lang = next(lang for _, spk, lang, _ in source["train"] if spk == train_spk[0])
    with pytest.raises(ValueError, match=rf"split dev: no cut left after filtering by languages {spk_lang}; speakers {train_spk[0]};"):
        subset_corpus(mini_corpus, out, languages=[spk_lang], speakers=[train_spk[0]])
    with pytest.raises(ValueError, match=r"languages: xx found in none of the splits train, dev, test .*they have languages: de, en, es, fr"):
        subset_corpus(mini_corpus, out, languages=["en", "xx"])
    with pytest.raises(ValueError, match=r"split train: max_minutes 0.0001 .* keeps no cut; its shortest cut lasts"):
        subset_corpus(mini_corpus, out, max_minutes=0.0001)
    with pytest.raises(ValueError, match=r"budget split\(s\) train not among the chosen splits: dev"):
        subset_corpus(mini_corpus, out, splits=["dev"], max_minutes=1)
    with pytest.raises(ValueError, match=r"budget_splits is given without max_minutes"):
        subset_corpus(mini_corpus, out, budget_splits=["dev"])
    assert not out.exists()  # every check runs before anything is written


def test_cli_end_to_end(mini_corpus, source, tmp_path, capsys):
    out = tmp_path / "sub"
    argv = [str(mini_corpus), str(out), "--splits", "train", "dev", "--languages", "en", "--max-minutes", "0.2", "--seed", "7"]
    assert subset_cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    record = json.loads((out / DONE_FILE).read_text())
    for line, split in zip(lines, ("train", "dev")):
        info = record["splits"][split]
        assert line == (
            f"{split}: {info['cuts']} cuts, {info['seconds'] / 60:.2f} min, {len(info['speakers'])} speakers, languages: en"
        )
    assert record["arguments"]["seed"] == 7 and record["splits"]["train"]["seconds"] <= 12.0
    assert _ids(out, "dev") == [cid for cid, _, lang, _ in source["dev"] if lang == "en"]
    # user errors: one line on stderr, exit status 1
    assert subset_cli.main([str(mini_corpus), str(out), "--splits", "eval"]) == 1
    assert "speechssl subset: error:" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: mutually exclusive options
        subset_cli.main([str(mini_corpus), str(out), "--speakers", "a", "--exclude-speakers", "b"])


def test_parser_examples_parse_and_run(mini_corpus, tmp_path, monkeypatch, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mini").symlink_to(mini_corpus)
    monkeypatch.chdir(tmp_path)
    parser = subset_cli.get_parser()
    examples = [line.strip() for line in parser.epilog.split("Example:")[1].splitlines() if line.strip()]
    assert examples
    for line in examples:
        argv = shlex.split(line)
        assert argv[:2] == ["speechssl", "subset"]
        parser.parse_args(argv[2:])
        assert subset_cli.main(argv[2:]) == 0, line
    assert "train:" in capsys.readouterr().out
