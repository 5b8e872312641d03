"""Work-arounds for bugs of the libraries we build on

Each one is as small as possible, names the upstream behaviour it works
around, and has a test in ``tests/test_workarounds.py`` that shows the bug.
"""

from pathlib import Path
from typing import List, Optional

import torch
from experimaestro import Param, field
from xpm_torch.module import initialized
from xpmir.letor.samplers import PairwiseModelBasedSampler
from xpmir.rankers import ScoredDocument
from xpmir.rankers.full import FullRetrieverRescorer as _FullRetrieverRescorer
from xpmir.text import TokenizerOptions
from xpmir.text.encoders import InputType, TextEncoderBase, TextsRepresentationOutput
from xpmir.text.huggingface import HFTokenizerBase


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
                [
                    ScoredDocument(document, score)
                    for score in scores[:, doc_ix].tolist()
                ]
            )
        pbar.update(scores.numel())


class BinaryQueryEncoder(TextEncoderBase[InputType, TextsRepresentationOutput]):
    """SPLADE-doc's query encoder: the binary bag of the query's tokens

    xpmir 1.5.0's ``OneHotHuggingFaceEncoder`` (used by ``spladeV2_doc``)
    still takes strings and returns a bare tensor, while the scorers and the
    ``SparseRetriever`` of the same release give records and expect a
    ``TextsRepresentationOutput``: SPLADE-doc can be neither trained nor
    evaluated with it. This encoder uses the document encoder's tokenizer.
    """

    tokenizer: Param[HFTokenizerBase[InputType]]
    """The tokenizer (shared with the document encoder)"""

    maxlen: Param[Optional[int]] = field(default=None, ignore_default=True)
    """Maximum number of tokens of a query"""

    def __initialize__(self):
        super().__initialize__()
        self.tokenizer.initialize()
        hf_tokenizer = self.tokenizer.tokenizer.tokenizer
        self._special = sorted(set(hf_tokenizer.all_special_ids))
        self._dimension = len(hf_tokenizer)
        # No parameter is learned, but the module must know its device
        self.register_buffer("_device", torch.zeros(0), persistent=False)

    @property
    def dimension(self):
        return self._dimension

    def static(self):
        return True

    @initialized
    def forward(self, texts: List[InputType]) -> TextsRepresentationOutput:
        tokenized = self.tokenizer.tokenize(
            texts, options=TokenizerOptions(self.maxlen)
        )
        value = torch.zeros(len(texts), self.dimension, device=self._device.device)
        ids = tokenized.ids.to(value.device)
        value.scatter_(1, ids, 1.0)
        value[:, self._special] = 0
        return TextsRepresentationOutput(value, tokenized)

    def save_model(self, path: Path):
        path.mkdir(parents=True, exist_ok=True)

    def load_model(self, path: Path):
        pass


class HardNegativesSampler(PairwiseModelBasedSampler):
    """Pairs of (relevant, BM25-retrieved non-relevant) documents of judged
    queries, as xpmir's ``PairwiseModelBasedSampler``

    In xpmir 1.5.0, ``PairwiseModelBasedSampler.sample`` returns
    ``ScoredDocument`` objects as the positive and negative documents, where
    trainers expect document records (``{"id": ..., "text_item": ...}``):
    training fails with "'ScoredDocument' object is not subscriptable" when
    the documents are tokenized. This one gives the records.
    (tests/test_workarounds.py)
    """

    def sample(self, samples):
        return PairwiseModelBasedSampler.sample(self, samples).document
