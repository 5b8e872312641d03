"""The exhaustive engine's index: its on-disk format (a folder, version 1)
and :class:`SparseIndex`, the index loaded (in memory or memory-mapped)

- ``offsets.npy``: int64, ``num_terms + 1`` entries; the postings of term
  ``t`` are ``offsets[t]:offsets[t + 1]``;
- ``docids.npy``: uint32, ``num_postings`` entries (document ids in
  ``[0, num_docs)``), increasing within a term (ties, i.e. a term repeated
  in a document, keep their insertion order);
- ``weights.npy``: float32, ``num_postings`` entries;
- ``meta.json``: ``{"format": "splade-exhaustive", "version": 1,
  "num_docs": ..., "num_terms": ..., "num_postings": ...}``, written last (a
  folder without it is an unfinished build).

Postings with a zero weight are dropped when building
(:mod:`.build`); term ids are 32-bit, so any vocabulary fits.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from splade.engines.exhaustive.search import Searcher

__all__ = ["FORMAT", "VERSION", "SparseIndex", "read_meta"]

FORMAT = "splade-exhaustive"
VERSION = 1
MAX_UINT32 = 2**32 - 1


def npy_header(dtype, length: int) -> bytes:
    """The header of a 1-D ``.npy`` file (written before streamed data)"""
    buffer = io.BytesIO()
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": (int(length),),
    }
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def write_meta(folder: Path, num_docs: int, num_terms: int, num_postings: int):
    """Writes ``meta.json`` (last: it marks a finished index)"""
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "num_docs": int(num_docs),
        "num_terms": int(num_terms),
        "num_postings": int(num_postings),
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def read_meta(folder) -> dict:
    """The ``meta.json`` of an index folder (documents, terms, postings)"""
    meta = json.loads((Path(folder) / "meta.json").read_text())
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"{folder}: not a {FORMAT} index, version {VERSION}")
    return meta


class SparseIndex:
    """A term-major index: ``offsets`` (int64), ``docids`` (uint32),
    ``weights`` (float32); see the module's documentation"""

    def __init__(self, offsets, docids, weights, num_docs: int, folder=None):
        self.offsets = offsets
        self.docids = docids
        self.weights = weights
        self.num_docs = int(num_docs)
        self.num_terms = offsets.shape[0] - 1
        self.num_postings = int(offsets[-1])
        self.folder = Path(folder) if folder is not None else None

    @classmethod
    def load(cls, folder, mmap: bool = False) -> "SparseIndex":
        """Loads an index folder, fully in memory or (``mmap=True``) mapped
        read-only"""
        folder = Path(folder)
        meta = read_meta(folder)
        mode = "r" if mmap else None
        offsets = np.load(folder / "offsets.npy", mmap_mode=mode)
        docids = np.load(folder / "docids.npy", mmap_mode=mode)
        weights = np.load(folder / "weights.npy", mmap_mode=mode)
        checks = (
            offsets.dtype == np.int64
            and docids.dtype == np.uint32
            and weights.dtype == np.float32
            and offsets.shape == (meta["num_terms"] + 1,)
            and docids.shape == weights.shape == (meta["num_postings"],)
            and offsets[-1] == meta["num_postings"]
        )
        if not checks:
            raise ValueError(f"{folder}: arrays inconsistent with meta.json")
        # plain read-only ndarrays (views of the mapping when mmap): one type
        # for numba's kernels whatever the loading
        arrays = [np.asarray(a) for a in (offsets, docids, weights)]
        for array in arrays:
            array.flags.writeable = False
        return cls(*arrays, meta["num_docs"], folder)

    def searcher(self, **kwargs) -> "Searcher":
        return Searcher(self, **kwargs)

    def __repr__(self):
        return (
            f"SparseIndex({self.num_docs} documents, {self.num_terms} terms,"
            f" {self.num_postings} postings)"
        )
