"""Emotion recognition classification metrics: WA, UA, macro F1, confusion matrix, table and plot."""

from __future__ import annotations

import json

import pytest

from speechssl.downstream.er.metrics import classification_metrics, confusion_table, plot_confusion

pytestmark = pytest.mark.deps  # a dependency's behaviour: tools/deps_drift.sh runs these on the newest releases

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LABELS = ["neu", "hap", "ang", "sad"]  # "sad" is never a reference below
REFS = ["neu"] * 6 + ["hap"] * 2 + ["ang"] * 2
HYPS = ["neu"] * 5 + ["hap"] + ["hap", "neu"] + ["neu", "sad"]


@pytest.fixture
def metrics():
    return classification_metrics(REFS, HYPS, LABELS)


def test_wa_ua_f1_by_hand(metrics):
    # correct: 5 neu + 1 hap + 0 ang of 10 utterances
    assert metrics.accuracy == pytest.approx(0.6)
    # recalls over the classes present in the references: neu 5/6, hap 1/2, ang 0 ("sad" left out)
    assert metrics.unweighted_accuracy == pytest.approx((5 / 6 + 1 / 2 + 0) / 3)
    assert metrics.accuracy != pytest.approx(metrics.unweighted_accuracy)
    # precision: neu 5/7 (7 predicted neu), hap 1/2, ang 0 (never predicted), sad 0 (1 predicted, wrong)
    # F1 neu = 2 (5/7)(5/6) / (5/7 + 5/6) = 10/13, hap 1/2, ang 0, sad 0; the mean over all 4 labels
    assert metrics.macro_f1 == pytest.approx((10 / 13 + 1 / 2) / 4)
    assert metrics.per_class["neu"] == pytest.approx({"recall": 5 / 6, "precision": 5 / 7, "f1": 10 / 13, "support": 6})
    assert metrics.per_class["hap"] == pytest.approx({"recall": 0.5, "precision": 0.5, "f1": 0.5, "support": 2})
    assert metrics.per_class["ang"] == {"recall": 0.0, "precision": 0.0, "f1": 0.0, "support": 2}
    assert metrics.per_class["sad"] == {"recall": 0.0, "precision": 0.0, "f1": 0.0, "support": 0}
    assert metrics.utterances == 10 and metrics.labels == LABELS


def test_confusion_counts(metrics):
    assert metrics.confusion == [
        [5, 1, 0, 0],  # neu
        [1, 1, 0, 0],  # hap
        [1, 0, 0, 1],  # ang
        [0, 0, 0, 0],  # sad: absent from the references
    ]
    assert all(isinstance(n, int) for row in metrics.confusion for n in row)


def test_to_dict_is_json_ready(metrics):
    d = json.loads(json.dumps(metrics.to_dict()))
    assert d["accuracy"] == metrics.accuracy and d["confusion"] == metrics.confusion
    assert d["per_class"]["sad"]["support"] == 0


def test_perfect_predictions():
    m = classification_metrics(["a", "b", "b"], ["a", "b", "b"], ["a", "b"])
    assert (m.accuracy, m.unweighted_accuracy, m.macro_f1) == (1.0, 1.0, 1.0)


def test_label_order_is_kept():
    m = classification_metrics(["a", "b"], ["b", "b"], ["b", "a"])
    assert m.labels == ["b", "a"] and m.confusion == [[1, 0], [1, 0]]


@pytest.mark.parametrize(
    "refs,hyps,match",
    [
        (["neu", "fru"], ["neu", "neu"], r"unknown reference class 'fru'.*known classes are \['neu', 'hap', 'ang', 'sad'\]"),
        (["neu", "neu"], ["neu", "exc"], r"unknown prediction class 'exc'"),
        (["neu"], ["neu", "hap"], "1 references and 2 predictions"),
        ([], [], "at least one utterance"),
    ],
)
def test_bad_input(refs, hyps, match):
    with pytest.raises(ValueError, match=match):
        classification_metrics(refs, hyps, LABELS)


def test_bad_labels():
    with pytest.raises(ValueError, match="distinct"):
        classification_metrics(["a"], ["a"], ["a", "a"])
    with pytest.raises(ValueError, match="at least one class"):
        classification_metrics(["a"], ["a"], [])


def test_confusion_table(metrics):
    lines = confusion_table(metrics).splitlines()
    assert lines[0] == "| reference \\ predicted | neu | hap | ang | sad | recall % |"
    assert lines[1] == "|---|---:|---:|---:|---:|---:|"
    assert lines[2:] == [
        "| neu | 5 | 1 | 0 | 0 | 83.3 |",
        "| hap | 1 | 1 | 0 | 0 | 50.0 |",
        "| ang | 1 | 0 | 0 | 1 | 0.0 |",
        "| sad | 0 | 0 | 0 | 0 | - |",
    ]


@pytest.mark.parametrize("normalize", [True, False])
def test_plot_confusion(tmp_path, metrics, normalize):
    out = plot_confusion(metrics, tmp_path / "er" / "confusion.png", normalize=normalize)
    assert out == tmp_path / "er" / "confusion.png"
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000
    assert [p.name for p in out.parent.iterdir()] == ["confusion.png"]  # no temp file left behind
