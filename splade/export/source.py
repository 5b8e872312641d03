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
- :func:`~splade.engines.exhaustive.document_blocks` gives the index
  document by document (a document-major format, such as JSON lines, needs
  the term-major index transposed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from splade.engines.exhaustive import document_blocks

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
