"""`speechssl prepare`: help, examples, corpus names, and the dispatch through `speechssl`."""

from __future__ import annotations

import shlex

import pytest
from corpus_fakes import make_iemocap

from speechssl.cli import main as speechssl_main
from speechssl.cli.prepare import CORPORA, OPTIONS, get_parser, main
from speechssl.data.corpora import PREPARERS, get_preparer


def test_every_corpus_has_a_preparer_cli_and_example():
    assert set(CORPORA) == set(PREPARERS) == set(OPTIONS)
    assert {"librispeech", "librilight", "voxceleb", "commonvoice", "fleurs", "iemocap", "folder"} <= set(PREPARERS)


@pytest.mark.parametrize("corpus", list(CORPORA))
def test_examples_parse_and_match_the_library(corpus):
    argv = shlex.split(CORPORA[corpus][1])
    assert argv[:3] == ["speechssl", "prepare", corpus]
    args = get_parser().parse_args(argv[2:])
    assert args.corpus == corpus
    # every option the CLI passes is a keyword of the library function
    import inspect

    params = inspect.signature(PREPARERS[corpus]).parameters
    for dest in (*OPTIONS[corpus], "num_jobs", "strict", "verify"):
        assert params[dest].kind is inspect.Parameter.KEYWORD_ONLY


def test_help_shows_examples_and_corpus_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "Example:" in out and all(f"speechssl prepare {c} " in out for c in CORPORA)
    with pytest.raises(SystemExit) as exit_:
        main(["folder", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--sibling-text" in out and "--strict" in out and "Example:" in out


def test_unknown_corpus(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["timit", "a", "b"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "timit" in err and "librispeech" in err
    with pytest.raises(ValueError, match="valid corpora: librispeech"):
        get_preparer("timit")


def test_dispatch_through_speechssl(tmp_path, capsys):
    corpus = make_iemocap(tmp_path)
    assert speechssl_main.main(["prepare", "iemocap", str(corpus), str(tmp_path / "out"), "-q"]) == 0
    assert "session2" in capsys.readouterr().out
    assert (tmp_path / "out" / "cuts_session2.jsonl.gz").is_file()
