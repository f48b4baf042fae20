"""The main job, egs/mini/run.sh, end to end on the tiny corpus (--tiny true), and its report."""

from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path

import pytest

from recipe_runner import ok, run_recipe
from test_examples import help_examples

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "mini" / "run.sh"
# the downstream systems the test compares: one of each kind (features, random weights, pretrained);
# iter1 and iter2_notopic take iter2's code path (pretrained encoders) and cost a minute more
SYSTEMS = ["mfcc", "random", "iter2"]


@pytest.fixture(scope="module")
def main_job(mini_corpus, tmp_path_factory):
    """One tiny run of every stage (stage 0 finds the session's tiny corpus complete)."""
    exp = tmp_path_factory.mktemp("main_job") / "exp"
    # --nj 1: no worker pools for tiny inputs
    cmd = ["--tiny", "true", "--data", mini_corpus.parent, "--exp", exp, "--nj", "1", "--systems", " ".join(SYSTEMS)]
    run = ok(run_recipe(RECIPE, *cmd))
    return exp, cmd, run


def _table(report: str, heading: str) -> list[list[str]]:
    """The rows (cells) of the first table under ``## heading``."""
    section = report.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows[2:]]


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def test_every_stage_ran(main_job):
    exp, _, run = main_job
    for s in range(10):
        assert f"stage {s}:" in run.stdout, f"stage {s} did not run"
    assert shlex.split((exp / "run.command").read_text())[-4:] == ["--nj", "1", "--systems", " ".join(SYSTEMS)]
    assert "phone inventory" in run.stdout  # stage 1 prints the statistics
    stats = json.loads((exp / "stats" / "stats.json").read_text())
    assert stats["all"]["speakers"] == 16 and len(stats["all"]["languages"]) == 4

    # German is held out of pretraining; ASR learns it
    pretrain_stats = (exp / "data" / "pretrain" / "subset.json").read_text()
    assert '"de"' not in pretrain_stats and '"en"' in pretrain_stats
    runs = (exp / "ssl" / "report" / "runs.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in runs[1:]] == ["iter1", "iter2", "iter2_notopic"]
    for run_dir in ("iter1", "iter2", "iter2_notopic"):
        assert (exp / "ssl" / "pretrain" / run_dir / "encoder.safetensors").is_file()
    # the topic loss in both iterations, and not in the ablation
    assert "weight: 0.1" in (exp / "ssl" / "pretrain" / "iter2" / "config.yaml").read_text()
    ablation = (exp / "ssl" / "pretrain" / "iter2_notopic" / "log.jsonl").read_text()
    assert '"topic"' not in ablation and '"topic"' in (exp / "ssl" / "pretrain" / "iter2" / "log.jsonl").read_text()

    # tokens of every utterance of the corpus, and their BPE
    tokens = json.loads((exp / "tokens" / "extract" / "tokens.json").read_text())
    assert tokens["summary"]["utterances"] == stats["all"]["cuts"] and tokens["summary"]["errors"] == 0
    assert (exp / "tokens" / "bpe40.model").is_file()


def test_downstream_models(main_job):
    exp, _, _ = main_job
    for s in SYSTEMS:
        for task, test in (("asr", "decode_test"), ("sv", "eval_test"), ("er", "eval_test")):
            m = _metrics(exp / task / s / test)
            assert m["split"] == "test", (task, s)
    asr = _metrics(exp / "asr" / "mfcc" / "decode_test")
    assert asr["corpus"].endswith("de_10min")  # the held-out language
    assert _metrics(exp / "asr" / "iter2_adapters" / "decode_test")["mode"] == "adapters"
    assert _metrics(exp / "sv" / "random" / "eval_test")["upstream"] == "random"
    assert _metrics(exp / "er" / "mfcc" / "eval_test")["upstream"] == "mfcc"
    for interface in ("last", "weighted_sum", "conv"):
        config = (exp / "interfaces" / interface / "config.yaml").read_text()
        assert f"interface: {interface}" in config


def test_report(main_job):
    """The report's figures exist and its tables hold the numbers the stages measured."""
    exp, _, _ = main_job
    out = exp / "report"
    report = (out / "report.md").read_text()
    for png in ("pretraining_curves.png", "label_quality.png", "topics.png", "layer_weights.png", "sv_det.png",
                "er_confusion.png", "asr_adapters.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG", png
        assert f"({png})" in report, png

    comparison = {row[0]: row[1:] for row in _table(report, "Comparison")}
    assert list(comparison) == SYSTEMS
    for s in SYSTEMS:
        cer = _metrics(exp / "asr" / s / "decode_test")["cer"]
        eer = _metrics(exp / "sv" / s / "eval_test")["eer"]
        ua = _metrics(exp / "er" / s / "eval_test")["unweighted_accuracy"]
        assert comparison[s] == [f"{100 * cer:.2f}", f"{100 * eer:.2f}", f"{100 * ua:.2f}"], s

    before = _metrics(exp / "asr" / "iter2" / "decode_test")["cer"]
    after = _metrics(exp / "asr" / "iter2_adapters" / "decode_test")["cer"]
    assert f"CER before adapters (iter2, frozen): {100 * before:.2f}%; after (iter2_adapters): {100 * after:.2f}%" in report

    # label quality: each iteration's units and the tokens, every split; PNMI in (0, 1]
    quality = _table(report, "Label quality of the units")
    assert {(row[0], row[2]) for row in quality} == {(u, s) for u in ("iter1", "iter2", "tokens") for s in ("train", "dev", "test")}
    assert all(0.0 < float(row[-1]) <= 1.0 for row in quality)
    # the PNMI of iteration 1's units equals label-quality's own
    ssl_quality = json.loads((exp / "ssl" / "report" / "label_quality.json").read_text())
    iter1 = next(v for k, v in ssl_quality.items() if "mfcc" in Path(k).name)
    assert [row[-1] for row in quality if row[0] == "iter1" and row[2] == "dev"] == [f"{iter1['dev']['pnmi']:.3f}"]

    topics = _table(report, "Topic labels (HuBERTopic)")
    assert [row[0] for row in topics] == ["iter1", "iter2"]
    pretraining = _table(report, "Pretraining")
    assert [row[0] for row in pretraining] == ["iter1", "iter2", "iter2_notopic"]
    assert pretraining[2][3] == "none"  # the ablation has no topic labels

    weights = _table(report, "Learned layer weights per task")
    assert [row[0] for row in weights] == ["ASR", "speaker verification", "emotion"]
    summary = json.loads((exp / "sv" / "iter2" / "summary.json").read_text())
    assert weights[1][1] == " ".join(f"{w:.2f}" for w in summary["layer_weights"])
    assert [row[0] for row in _table(report, "Interfaces")] == ["last", "weighted_sum", "conv"]


def test_rerun_skips_and_report_examples(main_job, tmp_path, monkeypatch):
    """A second run recomputes nothing; the report verb's --help examples run on the job's folders."""
    exp, cmd, _ = main_job
    models = sorted(exp.glob("*/*/model.safetensors"))
    assert len(models) >= 3 * len(SYSTEMS) + 4
    stamps = {p: p.stat().st_mtime_ns for p in models + [exp / "tokens" / ".done"]}
    start = time.perf_counter()
    again = ok(run_recipe(RECIPE, *cmd, "--stage", "2"))
    assert time.perf_counter() - start < 120
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert len(re.findall("done before", again.stdout)) >= 3 * len(SYSTEMS) + 4

    from speechssl.cli.main import main

    monkeypatch.chdir(exp.parent)
    for line in help_examples("report"):
        assert main(shlex.split(line)[1:]) == 0, line
        assert (exp / "report" / "report.md").is_file()


def test_options(tmp_path):
    help_ = run_recipe(RECIPE, "--help")
    assert help_.returncode == 0 and "--stop_stage (100)" in help_.stdout and "--new_lang (de)" in help_.stdout
    bad = run_recipe(RECIPE, "--stag", "1")
    assert bad.returncode == 2 and "unknown option --stag" in bad.stderr
    bad = run_recipe(RECIPE, "--systems", "mfcc wav2vec", "--exp", tmp_path / "exp")
    assert bad.returncode == 2 and "unknown system 'wav2vec'" in bad.stderr
    bad = run_recipe(RECIPE, "--new_lang", "it", "--exp", tmp_path / "exp")
    assert bad.returncode == 2 and "--new_lang" in bad.stderr


def test_report_errors(main_job, tmp_path, capsys):
    """Bad inputs name the file and what is wrong, and leave no report.md behind."""
    from speechssl.cli.main import main

    exp, _, _ = main_job
    out = tmp_path / "report"
    bad_runs = tmp_path / "runs.tsv"
    bad_runs.write_text("name\tfolder\n")
    assert main(["report", "--out", str(out), "--runs", str(bad_runs)]) == 1
    assert f"{bad_runs}: expected the header" in capsys.readouterr().err
    sv = f"iter2={exp / 'sv' / 'iter2' / 'eval_test'}"
    assert main(["report", "--out", str(out), "--sv", sv, "--compare", "iter2", "wav2vec"]) == 1
    assert "--compare names 'wav2vec'" in capsys.readouterr().err
    missing = tmp_path / "nowhere"
    assert main(["report", "--out", str(out), "--er", f"x={missing}"]) == 1
    assert f"{missing / 'metrics.json'}: not found" in capsys.readouterr().err
    assert main(["report", "--out", str(out), "--sv", sv, sv]) == 1
    assert "the name 'iter2' is given twice" in capsys.readouterr().err
    assert not (out / "report.md").exists()


def test_report_tells_the_truth(main_job, mini_corpus, tmp_path, capsys):
    """The report reads what verbs write by default (sv evaluate without AS-norm), and a
    pretraining run that did not finish is marked unfinished, not tabulated like a finished one."""
    import shutil

    from speechssl.cli.main import main

    exp, _, _ = main_job
    plain = tmp_path / "eval_plain"
    trials = mini_corpus / "trials_test.txt"
    assert main(["sv", "evaluate", str(exp / "sv" / "iter2"), "--trials", str(trials), "--split", "test", "--out", str(plain), "-q"]) == 0
    assert json.loads((plain / "metrics.json").read_text())["asnorm"] is None
    capsys.readouterr()
    assert main(["report", "--out", str(tmp_path / "r1"), "--sv", f"iter2={plain}"]) == 0, capsys.readouterr().err
    sv_rows = _table((tmp_path / "r1" / "report.md").read_text(), "Speaker verification")
    assert sv_rows[0][0] == "iter2" and sv_rows[0][4] == "-"  # no AS-norm EER

    # a run killed after its first logged step: its config and the log it wrote, no encoder
    killed = tmp_path / "killed"
    killed.mkdir()
    shutil.copy(exp / "ssl" / "pretrain" / "iter1" / "config.yaml", killed)
    records = (exp / "ssl" / "pretrain" / "iter1" / "log.jsonl").read_text().splitlines()
    first = json.loads(records[0])["step"]
    (killed / "log.jsonl").write_text("".join(r + "\n" for r in records if json.loads(r)["step"] <= first))
    finished = exp / "ssl" / "pretrain" / "iter1"
    runs = tmp_path / "runs.tsv"
    runs.write_text(f"run\tpretrain\tunits\ttopics\niter1\t{finished}\t-\t-\nkilled\t{killed}\t-\t-\n")
    assert main(["report", "--out", str(tmp_path / "r2"), "--runs", str(runs)]) == 0, capsys.readouterr().err
    rows = {row[0]: row for row in _table((tmp_path / "r2" / "report.md").read_text(), "Pretraining")}
    planned = json.loads(records[-1])["step"]
    assert first < planned
    assert rows["iter1"][1] == str(planned)
    assert rows["killed"][1] == f"{first} of {planned} (unfinished)"
