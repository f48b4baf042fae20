"""Corpus preparation: one module per corpus, each a library function

    prepare_<corpus>(corpus_dir, out_dir, *, <typed options>, num_jobs=1, strict=False, verify=False)
        -> dict[str, CutSet]

that writes ``<out_dir>/cuts_<split>.jsonl.gz`` (lhotse CutSets) and ``<out_dir>/skipped.tsv`` (the
inputs left out, ``path<TAB>problem``). LibriSpeech, Libri-Light, Common Voice and FLEURS wrap
lhotse's recipes; VoxCeleb, IEMOCAP and the generic folder importer are our own. ``PREPARERS`` maps
the corpus names that ``speechssl prepare`` accepts to these functions.
"""

from __future__ import annotations

from typing import Callable

from speechssl.data.corpora._common import SKIPPED_FILE, read_skipped
from speechssl.data.corpora.commonvoice import prepare_commonvoice
from speechssl.data.corpora.fleurs import prepare_fleurs
from speechssl.data.corpora.folder import prepare_folder
from speechssl.data.corpora.iemocap import leave_one_session_out, prepare_iemocap
from speechssl.data.corpora.librilight import prepare_librilight
from speechssl.data.corpora.librispeech import prepare_librispeech
from speechssl.data.corpora.voxceleb import prepare_voxceleb

PREPARERS: dict[str, Callable] = {
    "librispeech": prepare_librispeech,
    "librilight": prepare_librilight,
    "voxceleb": prepare_voxceleb,
    "commonvoice": prepare_commonvoice,
    "fleurs": prepare_fleurs,
    "iemocap": prepare_iemocap,
    "folder": prepare_folder,
}


def get_preparer(name: str) -> Callable:
    """The preparer for corpus ``name``; an unknown name raises ValueError listing the valid ones."""
    try:
        return PREPARERS[name]
    except KeyError:
        raise ValueError(f"unknown corpus '{name}'; valid corpora: {', '.join(PREPARERS)}") from None


__all__ = [
    "PREPARERS",
    "SKIPPED_FILE",
    "get_preparer",
    "leave_one_session_out",
    "prepare_commonvoice",
    "prepare_fleurs",
    "prepare_folder",
    "prepare_iemocap",
    "prepare_librilight",
    "prepare_librispeech",
    "prepare_voxceleb",
    "read_skipped",
]
