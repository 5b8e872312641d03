"""Work-arounds for bugs of the libraries we build on

Each one is as small as possible, names the upstream behaviour it works
around, and has a test in ``tests/test_workarounds.py`` that shows the bug.
"""

from xpmir.rankers import ScoredDocument
from xpmir.rankers.full import FullRetrieverRescorer as _FullRetrieverRescorer


class FullRetrieverRescorer(_FullRetrieverRescorer):
    """Scores every document of a (small) collection with a dual model

    xpmir 1.5.0's ``FullRetrieverRescorer.score`` calls
    ``scorer.score_product(queries, documents, None)``, while
    ``xpmir.neural.dual.Dense.score_product`` takes two arguments: every
    validation with a SPLADE model fails with a ``TypeError``. This version
    scores all the queries against the batch of documents in one product.
    """

    def score(self, documents, queries, scored_documents, pbar):
        encoded = self.scorer.encode_documents(documents)
        scores = self.scorer.score_product(queries.to(encoded.value.device), encoded)
        scores = scores.detach().cpu()
        for doc_ix, document in enumerate(documents):
            scored_documents.append(
                [ScoredDocument(document, score) for score in scores[:, doc_ix].tolist()]
            )
        pbar.update(scores.numel())
