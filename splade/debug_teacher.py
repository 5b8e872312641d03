"""A teacher for the debug collection: an oracle that knows its concepts

The debug collection (:mod:`splade.debug_data`) is written with the words of
latent concepts: documents with their concepts' *document words*, queries
with document words or *synonyms*. This scorer, an xpmir ``Scorer``, reads
that mapping from the generator: a query's concepts are those of its words
(document words and synonyms), a document's those of its document words
only (the synonyms it contains are decoys), and the score of a document is
the number of the query's concepts it has, plus, to order documents of the
same concepts, the fraction of its words that belong to them. It plays, at
debug scale, the cross-encoder of SPLADE++ (scoring the hard negatives mined
by a first-stage SPLADE model: :mod:`splade.mining`).
"""

import hashlib
from typing import Dict, Iterable, List, Set

import numpy as np
from experimaestro import Param, field
from xpmir.rankers import ScoredDocument, Scorer

from splade.debug_data import DebugCollectionSpec, generate

#: ``mining.teacher`` value that names this teacher
DEBUG_TEACHER = "splade.debug.teacher"

#: ``mining.teacher`` value that names the oracle with noise
NOISY_DEBUG_TEACHER = "splade.debug.teacher.noisy"

#: Standard deviation of the noise of :data:`NOISY_DEBUG_TEACHER`
NOISE = 0.5


class DebugTeacher(Scorer):
    """The debug collection's oracle teacher (with ``noise``, a noisier
    copy: a Gaussian noise of that standard deviation is added to each
    score, the same for a (query, document) pair whenever it is scored, so
    that an ensemble of the two can be tested)"""

    noise: Param[float] = field(default=0.0, ignore_default=True)
    """Standard deviation of the noise added to each score"""

    def __initialize__(self):
        super().__initialize__()
        collection = generate(DebugCollectionSpec())
        self.document_concepts: Dict[str, int] = {}
        self.query_concepts: Dict[str, int] = {}
        for concept, words in enumerate(collection.document_words):
            for word in words:
                self.document_concepts[word] = concept
                self.query_concepts[word] = concept
        for concept, words in enumerate(collection.query_words):
            for word in words:
                self.query_concepts[word] = concept

    def _concepts(self, text: str, mapping: Dict[str, int]) -> Set[int]:
        return {mapping[word] for word in text.split() if word in mapping}

    def score(self, query: str, document: str) -> float:
        wanted = self._concepts(query, self.query_concepts)
        words = document.split()
        concepts = [self.document_concepts.get(word) for word in words]
        shared = wanted & {c for c in concepts if c is not None}
        fraction = sum(c in shared for c in concepts) / max(len(words), 1)
        score = len(shared) + fraction
        if self.noise:
            digest = hashlib.sha256(f"{query}\t{document}".encode()).digest()
            random = np.random.RandomState(int.from_bytes(digest[:4], "little"))
            score += self.noise * float(random.standard_normal())
        return score

    def compute(
        self, topic, documents: Iterable[ScoredDocument]
    ) -> List[ScoredDocument]:
        query = topic["text_item"].text
        return [
            ScoredDocument(
                sd.document, self.score(query, sd.document["text_item"].text)
            )
            for sd in documents
        ]
