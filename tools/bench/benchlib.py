"""What several benchmark scripts share (imported by them as scripts: ``from benchlib import ...``)."""

from __future__ import annotations

from pathlib import Path


def log(msg: str) -> None:
    print(msg, flush=True)


def default_mini_corpus(data: Path) -> Path:
    """The default-size mini corpus in ``data``, built there first if it is not complete."""
    from speechssl.data.mini import MiniCorpusConfig, make_mini_corpus

    if not (data / ".complete").is_file():
        log(f"building the default mini corpus in {data} ...")
        make_mini_corpus(data, MiniCorpusConfig())
    return data
