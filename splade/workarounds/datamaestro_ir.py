"""Work-arounds for datamaestro-ir 0.5.0

Tests of the upstream behaviour: ``tests/unit/test_workarounds.py``.
"""

from typing import List

from datamaestro_ir.data import CompressedDocumentStore
from xpmir.rankers import ScoredDocument


def documents_int(documents, docids) -> List[dict]:
    """The records of documents given by their internal ids, fetched at once

    datamaestro-ir 0.5.0's ``CompressedDocumentStore.document_int``
    (datamaestro_ir/data/__init__.py:181) fetches one document per call from
    impact-index's document store (about 20 µs a call: 20 ms to give the
    records of a top-1000, 2 s for 100 queries), and the class has no batch
    version for internal ids (``documents_ext`` takes external ids); its
    store's ``get_by_number`` takes a list (1.4 µs a document). Other
    stores: ``document_int``, one at a time.
    """
    ids = [int(docid) for docid in docids]
    if isinstance(documents, CompressedDocumentStore):
        found = documents._store.get_by_number(ids)
        return [
            documents.converter(docid, d.keys, d.content)
            for docid, d in zip(ids, found, strict=True)
        ]
    return [documents.document_int(docid) for docid in ids]


def scored(documents, docids, scores) -> List[ScoredDocument]:
    """xpmir's scored documents of internal document ids"""
    records = documents_int(documents, docids)
    return [
        ScoredDocument(record, float(score))
        for record, score in zip(records, scores, strict=True)
    ]
