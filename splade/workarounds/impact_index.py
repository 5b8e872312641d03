"""Work-arounds for impact-index 1.7.1 (the sparse indices of xpmir)

Tests of the upstream behaviour: ``tests/unit/test_engines.py``.

The ``bmp`` engine no longer uses these classes: impact-index's BMP
conversion lets scores overflow BMP's 16-bit counter, and its searcher
shares the faults of the ``bmp`` package's (``tests/unit/test_bmp.py``); see
:mod:`splade.engines.bmp.index` and :class:`splade.engines.bmp.SafeBMPConverter`.
They are kept so that experiments that used them can be read again.
"""

from typing import Dict, List

from xpmir.index.sparse import BMPSparseRetrieverIndex, Sparse2BMPConverter
from xpmir.rankers import ScoredDocument

from splade.workarounds.datamaestro_ir import scored


class BMPIndex(BMPSparseRetrieverIndex):
    """xpmir's BMP index, asking the searcher for k + 1 documents:
    impact-index 1.7.1's ``BmpSearcher.search`` returns k - 1 documents for a
    few % of queries, whatever the number of matching documents
    (``tests/unit/test_engines.py::test_bmp_short_result_lists``)"""

    # The identifier of the class when it was in splade/engines.py
    __xpmid__ = "splade.engines.bmpindex"

    def retrieve(
        self, query: Dict[int, float], top_k: int, alpha=None, beta=None
    ) -> List[ScoredDocument]:
        docids, scores = self.searcher.search(
            {str(ix): float(value) for ix, value in query.items()},
            k=top_k + 1,
            alpha=alpha,
            beta=beta,
        )
        return scored(self.documents, docids[:top_k], scores[:top_k])


class BMPConverter(Sparse2BMPConverter):
    """xpmir's BMP conversion, whose index is a :class:`BMPIndex`"""

    __xpmid__ = "splade.engines.bmpconverter"

    def task_outputs(self, dep):
        return dep(
            BMPIndex.C(index_path=self.bmp_index_path, documents=self.index.documents)
        )
