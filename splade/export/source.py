"""What an export reads: the postings of a SPLADE index, the external ids of
its documents, the names of its terms, and encoded queries

- :class:`Collection`: an index (:class:`~splade.engines.exhaustive.SparseIndex`,
  term-major, memory-mapped), its documents' external ids (and, optionally,
  their text), the name of each term, and query vectors by query set;
- :func:`quantize`: the integer weights of the formats that store integers
  (``round(scale * w)``, halves to even, as Python's ``round``);
- :func:`term_names`: the vocabulary's tokens as the formats need them
  (non-empty, no white space; the characters a format forbids replaced by
  the term id);
- :func:`document_blocks`: the index document by document, in blocks of
  documents, in bounded memory (the index is term-major; a document-major
  format, such as JSON lines, needs it transposed).
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "Collection",
    "QueryVector",
    "document_blocks",
    "quantize",
    "term_names",
]

#: Characters that no term name may contain (the formats separate terms by
#: white space: Anserini's pre-tokenized documents and queries, PISA's
#: lexicon lines)
WHITESPACE = " \t\n\r\f\v\u00a0\u2028\u2029"


@dataclass
class QueryVector:
    """An encoded query: its id, and its non-zero terms and weights"""

    id: str
    terms: np.ndarray
    weights: np.ndarray


@dataclass
class Collection:
    """An index and what names its documents, terms and queries

    :param index: the postings (term-major)
    :param docids: external id of each document (internal id -> id); None:
        the internal ids, as strings
    :param tokens: the vocabulary (term id -> token; None for an id the
        tokenizer does not know); None: the terms are named by their ids
    :param queries: query set name -> encoded queries
    :param texts: ``(first, last) -> texts`` of the documents
        ``first..last - 1`` (optional: only for the formats that can carry
        the text)
    """

    index: object
    docids: Optional[Sequence[str]] = None
    tokens: Optional[Sequence[Optional[str]]] = None
    queries: Dict[str, List[QueryVector]] = field(default_factory=dict)
    texts: Optional[Callable[[int, int], List[str]]] = None

    @property
    def num_docs(self) -> int:
        return int(self.index.num_docs)

    def docid(self, number: int) -> str:
        return str(number) if self.docids is None else str(self.docids[number])


def quantize(weights, scale: float) -> np.ndarray:
    """``round(scale * w)`` as int64 (halves to even, as Python's ``round``),
    computed in float64"""
    return np.rint(np.asarray(weights, np.float64) * float(scale)).astype(np.int64)


def term_names(
    tokens: Optional[Sequence[Optional[str]]],
    num_terms: int,
    forbidden: str = "",
) -> List[str]:
    """The name of each term id: its token, or ``[<id>]`` when there is no
    token, when it is empty or has white space or a ``forbidden`` character
    (e.g. the dot, which Elasticsearch refuses in feature names); the ids
    alone (``"0"``, ``"1"``...) when ``tokens`` is None

    Raises a ValueError when two terms get the same name.
    """
    if tokens is None:
        return [str(term) for term in range(num_terms)]
    bad = re.compile("[" + re.escape(WHITESPACE + forbidden) + "]")
    names = []
    for term in range(num_terms):
        token = tokens[term] if term < len(tokens) else None
        if not token or bad.search(token):
            token = f"[{term}]"
        names.append(token)
    if len(set(names)) != len(names):
        seen, duplicated = set(), []
        for name in names:
            if name in seen:
                duplicated.append(name)
            seen.add(name)
        raise ValueError(
            f"two terms have the same name ({duplicated[:5]}): name the terms"
            " by their ids (terms: ids)"
        )
    return names


def _blocks_in_memory(index, docs_per_block: int):
    import scipy.sparse as sp

    offsets = np.asarray(index.offsets)
    matrix = sp.csc_matrix(
        (np.asarray(index.weights), np.asarray(index.docids), offsets),
        shape=(index.num_docs, index.num_terms),
    ).tocsr()
    matrix.sort_indices()
    for first in range(0, index.num_docs, docs_per_block):
        yield first, matrix[first : first + docs_per_block]


def _blocks_on_disk(index, num_blocks: int, docs_per_block: int, chunk: int, scratch):
    """Postings distributed into one file per block of documents (one pass
    over the term-major postings), then each block sorted in memory"""
    import scipy.sparse as sp

    folder = Path(tempfile.mkdtemp(prefix="splade-export-", dir=scratch))
    try:
        files = [
            [(folder / f"{b}.{kind}").open("wb") for kind in ("t", "d", "w")]
            for b in range(num_blocks)
        ]
        offsets = np.asarray(index.offsets)
        for start in range(0, index.num_postings, chunk):
            stop = min(start + chunk, index.num_postings)
            positions = np.arange(start, stop, dtype=np.int64)
            terms = (np.searchsorted(offsets, positions, side="right") - 1).astype(
                np.uint32
            )
            docids = np.asarray(index.docids[start:stop])
            weights = np.asarray(index.weights[start:stop])
            blocks = docids // docs_per_block
            order = np.argsort(blocks, kind="stable")
            bounds = np.searchsorted(blocks[order], np.arange(num_blocks + 1))
            for b in range(num_blocks):
                part = order[bounds[b] : bounds[b + 1]]
                if part.size:
                    for fp, values in zip(
                        files[b],
                        (terms[part], docids[part], weights[part]),
                        strict=True,
                    ):
                        values.tofile(fp)
        for handles in files:
            for fp in handles:
                fp.close()
        for b in range(num_blocks):
            first = b * docs_per_block
            size = min(docs_per_block, index.num_docs - first)
            if size <= 0:
                break
            terms = np.fromfile(folder / f"{b}.t", np.uint32)
            docids = np.fromfile(folder / f"{b}.d", np.uint32) - first
            weights = np.fromfile(folder / f"{b}.w", np.float32)
            for kind in ("t", "d", "w"):
                (folder / f"{b}.{kind}").unlink()
            block = sp.csr_matrix(
                (weights, (docids, terms)), shape=(size, index.num_terms)
            )
            block.sort_indices()
            yield first, block
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def document_blocks(
    index,
    docs_per_block: int = 100_000,
    memory_budget: int = 1 << 30,
    scratch=None,
) -> Iterator[Tuple[int, object]]:
    """The index document by document: ``(first document, CSR matrix of the
    documents first..first + n - 1)`` (terms sorted within a document)

    The index is transposed in memory when its postings (about 24 bytes
    each while transposing) fit in ``memory_budget``; otherwise they are
    first distributed into one temporary file per block of documents (in
    ``scratch``, default the system's temporary folder), each block then
    transposed on its own.
    """
    if index.num_postings * 24 <= memory_budget:
        yield from _blocks_in_memory(index, docs_per_block)
        return
    per_block = max(1, memory_budget // 24)
    num_blocks = max(1, math.ceil(index.num_postings / per_block))
    # (a whole number of the caller's blocks per block on disk)
    size = math.ceil(math.ceil(index.num_docs / num_blocks) / docs_per_block)
    size *= docs_per_block
    num_blocks = math.ceil(index.num_docs / size)
    for first, block in _blocks_on_disk(
        index, num_blocks, size, max(1, per_block // 2), scratch
    ):
        for start in range(0, block.shape[0], docs_per_block):
            yield first + start, block[start : start + docs_per_block]
