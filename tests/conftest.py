"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mini_corpus(tmp_path_factory) -> Path:
    """The tiny synthetic mini corpus (``MiniCorpusConfig.tiny()``: 16 speakers, 80 utterances),
    built once per test session; returns its folder. Read it, never modify it.

    ``SPEECHSSL_TEST_MINI_CORPUS=DIR`` uses one made beforehand with ``speechssl make-mini-corpus DIR
    --tiny`` instead (where espeak-ng is missing: tools/gpu_check.sh on a GPU image)."""
    from speechssl.data.mini import MiniCorpusConfig, is_complete, make_mini_corpus
    from speechssl.data.mini.espeak import get_espeak

    given = os.environ.get("SPEECHSSL_TEST_MINI_CORPUS")
    if given:
        if not is_complete(given, MiniCorpusConfig.tiny()):
            pytest.fail(f"SPEECHSSL_TEST_MINI_CORPUS={given}: not a complete tiny mini corpus (speechssl make-mini-corpus {given} --tiny)")
        return Path(given)

    try:
        get_espeak()
    except FileNotFoundError as e:  # tools/setup.sh installs it; a missing one is a broken setup, not a skip
        pytest.fail(f"espeak-ng is not usable ({e}); run tools/setup.sh")
    # named "mini" so that egs/mini/run.sh --tiny true --data <its parent> finds it complete
    out = tmp_path_factory.mktemp("data") / "mini"
    make_mini_corpus(out, MiniCorpusConfig.tiny())
    return out
