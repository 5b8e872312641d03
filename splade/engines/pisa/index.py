"""PISA (https://github.com/pisa-engine/pisa) through ``pyterrier-pisa``: the
reference dynamic pruning engine, as an optional engine (``pip install -e
".[pisa]"``)

PISA scores integers, so that the index stores *quantized* weights:

- a document weight ``w`` is stored as ``int(scale * w)`` (truncated;
  postings whose stored impact is 0 are dropped, as PISA stores
  frequencies >= 1);
- a query weight ``q`` counts ``int(query_scale * q)`` times (pyterrier-pisa
  repeats a pre-tokenised query term ``floor(weight)`` times, and PISA's
  weighted queries multiply a term's score by its count; terms whose count
  is 0 are dropped).

The score of a document is then ``sum int(query_scale * q) * int(scale * w)``
over the common terms, accumulated in float32 (exact while it is below
2^24), and the engine returns the exact top-k of that score (block-max
MaxScore and block-max WAND are exact algorithms), ties broken by the
smaller document id. :meth:`PisaSearcher.search` divides the scores by
``scale * query_scale`` so that they approximate the float dot product. With
the default scales (100, as pyterrier-pisa's ``toks_scale``) and SPLADE
weights (mostly between 0 and 3), each weight is off by less than 0.01:
recall@10 against the float ranking 0.99 to 1 (BENCHMARKS.md).

Files of an index folder: PISA's compressed index
(``quantized.q0.bmw.<block size>.block_simdbp``), its block-max data
(``quantized.q0.bmw.<block size>``), the lexicons (``fwd.termlex``: term
ids written as decimal strings; ``fwd.doclex``: document numbers ``0`` to
``n - 1``), ``inv.sizes`` and ``pisa.json`` (scale, number of documents and
postings). No Java is involved: pyterrier-pisa calls PISA's C++ library.
"""

import json
import shutil
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

__all__ = ["ALGORITHMS", "ENCODING", "PisaSearcher", "write_index"]

#: Index encoding (PISA's default in pyterrier-pisa)
ENCODING = "block_simdbp"
ALGORITHMS = ("block_max_maxscore", "block_max_wand", "maxscore", "wand")


def _pisathon():
    try:
        from pyterrier_pisa import _pisathon
    except ImportError as error:  # pragma: no cover
        raise ImportError(
            'The PISA engine needs pyterrier-pisa: pip install -e ".[pisa]"'
        ) from error
    return _pisathon


def write_index(
    index, folder, scale: float = 100.0, block_size: int = 64
) -> Dict[str, float]:
    """Writes the PISA index of a term-major index
    (:class:`splade.engines.exhaustive.SparseIndex`, possibly memory-mapped)

    The binary collection (``inv.docs``, ``inv.freqs``) is written term by
    term with numpy (pyterrier-pisa's own indexer inverts documents in
    Python), then PISA compresses it and computes its block-max data; the
    binary collection is then removed. Returns ``pisa.json``'s content.
    """
    pisathon = _pisathon()
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    offsets = np.asarray(index.offsets)
    num_docs = int(index.num_docs)
    terms, sizes, postings = [], np.zeros(num_docs, np.float64), 0
    with (
        (folder / "inv.docs").open("wb") as fdocs,
        (folder / "inv.freqs").open("wb") as ffreqs,
    ):
        np.array([1, num_docs], np.uint32).tofile(fdocs)
        # PISA's lexicon is sorted (binary search on the strings)
        for term in sorted(np.flatnonzero(np.diff(offsets) > 0).tolist(), key=str):
            start, end = offsets[term], offsets[term + 1]
            impacts = (np.asarray(index.weights[start:end]) * np.float32(scale)).astype(
                np.uint32
            )
            kept = impacts > 0
            if not kept.any():
                continue
            docids = np.asarray(index.docids[start:end])[kept]
            impacts = impacts[kept]
            header = np.array([len(docids)], np.uint32)
            header.tofile(fdocs)
            docids.astype(np.uint32).tofile(fdocs)
            header.tofile(ffreqs)
            impacts.tofile(ffreqs)
            sizes[docids] += impacts  # (a document once per term)
            terms.append(str(term))
            postings += len(docids)
    np.concatenate([[num_docs], sizes]).astype(np.uint32).tofile(folder / "inv.sizes")
    (folder / "fwd.terms").write_text("".join(f"{t}\n" for t in terms))
    (folder / "fwd.documents").write_text("".join(f"{d}\n" for d in range(num_docs)))
    pisathon.build_binlex(str(folder / "fwd.terms"), str(folder / "fwd.termlex"))
    pisathon.build_binlex(str(folder / "fwd.documents"), str(folder / "fwd.doclex"))
    # pyterrier-pisa's metadata (its PisaIndex can open the folder too)
    (folder / "pt_meta.json").write_text(
        json.dumps({"type": "sparse_index", "format": "pisa", "stemmer": "none"})
    )
    # Compression and block-max data: made when a context is first prepared
    pisathon.prepare_index(
        pisathon.RetrievalContext(),
        str(folder),
        ENCODING,
        "quantized",
        "",
        block_size=block_size,
        quantize=0,
        stop_fname="",
    )
    for name in ("inv.docs", "inv.freqs", "fwd.terms", "fwd.documents"):
        (folder / name).unlink()
    meta = {
        "scale": float(scale),
        "block_size": int(block_size),
        "num_docs": num_docs,
        "num_terms": len(terms),
        "num_postings": postings,
    }
    (folder / "pisa.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


class PisaSearcher:
    """Searches a folder written by :func:`write_index`, one query at a time
    on one thread"""

    def __init__(self, folder):
        self.pisathon = _pisathon()
        self.folder = Path(folder)
        self.meta = json.loads((self.folder / "pisa.json").read_text())
        self.context = self.pisathon.RetrievalContext()
        self.pisathon.prepare_index(
            self.context,
            str(self.folder),
            ENCODING,
            "quantized",
            "",
            block_size=self.meta["block_size"],
            quantize=0,
            stop_fname="",
        )
        self._buffers = {}

    def _buffer(self, k: int):
        if k not in self._buffers:
            self._buffers[k] = (
                np.empty(k, np.int32),
                np.empty(k, dtype=object),
                np.empty(k, np.int32),
                np.empty(k, np.float32),
            )
        return self._buffers[k]

    def search(
        self,
        query: Dict[int, float],
        k: int,
        algorithm: str = "block_max_maxscore",
        query_scale: float = 100.0,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Document ids (int64) and scores (float32, the quantized score
        divided by ``scale * query_scale``) of the top-k"""
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown PISA algorithm {algorithm!r}")
        toks = {}
        for term, weight in query.items():
            count = int(query_scale * weight)
            if count > 0:
                toks[str(term)] = float(count)
        if not toks or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        qidx, docnos, ranks, scores = self._buffer(k)
        size = self.pisathon.retrieve(
            self.context,
            algorithm,
            [(0, toks)],
            k=k,
            threads=1,
            query_weighted=1,
            pretokenised=True,
            result_qidxs=qidx,
            result_docnos=docnos,
            result_ranks=ranks,
            result_scores=scores,
        )
        docids = np.fromiter(map(int, docnos[:size]), np.int64, size)
        return docids, scores[:size] / np.float32(self.meta["scale"] * query_scale)
