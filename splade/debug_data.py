"""The embedded debug collection: small, deterministic, with vocabulary mismatch

The collection is generated from a seed, so that it is the same on every
machine, and it is designed so that lexical matching (BM25) is clearly
imperfect while a model that learns query expansion can do much better:

- There are ``concepts`` latent concepts. Each concept owns a few
  *document words* (the words its documents are written with) and a few
  *query words* (synonyms that users type). A concept's query words never
  appear in its own documents; they appear in the documents of another
  concept, its *decoy*. This is the vocabulary mismatch: a query typed with
  synonyms lexically matches the wrong (decoy) documents.
- A *topic* is an ordered pair of distinct concepts. Every document belongs to
  one topic and mixes the document words of its two concepts with generic
  filler words, plus (with some probability) the query words of the
  concepts it is a decoy for.
- A query is written for one topic: for each of its two concepts, it uses a
  query word (synonym), or, with probability ``keep_document_word``, one of
  the concept's document words. The relevant documents of a query are the
  documents of its topic (relevance 1).
- Training, validation and test queries are about disjoint sets of topics,
  but they share the concepts and the same synonym/decoy mapping: what is
  learned on training queries (synonym -> document words) transfers to test
  queries.
- Training lines follow the format of Hofstätter et al.'s teacher files
  (``pos_score<TAB>neg_score<TAB>qid<TAB>pos_docid<TAB>neg_docid``). The
  teacher is an oracle that scores a document by the concepts it shares
  with the query's topic, plus Gaussian noise; negatives mix decoy documents
  (the hard negatives BM25 would return) and documents that share one
  concept with the topic.

Everything here is plain Python; :mod:`splade.repository` exposes the generated
files through datamaestro / datamaestro_ir data objects.
"""

import json
from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

#: Generic words used to fill documents (they carry no topical information)
FILLER_WORDS = """
    analysis approach area aspect based case change common condition control
    current data design detail development effect element evidence example
    factor feature field figure form function general group history impact
    increase information issue level limit local main major material measure
    method model nature network number observation order part pattern period
    point position practice problem process product program property quality
    range rate reason record region report research result role sample scale
    section series set source stage standard state structure study system term
    test theory type unit use value view work
""".split()

#: Words that users add to queries and that carry no topical information
QUERY_FILLERS = ["what", "about", "find", "information", "on", "how", "the"]

_ONSETS = list("bdfgklmnprstvz")
_VOWELS = list("aeiou")


@dataclass(frozen=True)
class DebugCollectionSpec:
    """Parameters of the generated debug collection"""

    seed: int = 20251125
    """Random seed (the collection is a pure function of these parameters)"""

    concepts: int = 40
    """Number of latent concepts"""

    document_words: int = 3
    """Number of document words per concept"""

    query_words: int = 2
    """Number of query words (synonyms absent from the concept's documents)"""

    documents: int = 2000
    """Number of documents"""

    train_queries: int = 300
    """Number of training queries (one per training topic)"""

    validation_queries: int = 50
    """Number of validation queries"""

    test_queries: int = 100
    """Number of test queries"""

    query_terms: int = 2
    """Number of words a query uses for each of its two concepts"""

    keep_document_word: float = 0.5
    """Probability that a query word is a document word rather than a synonym"""

    decoy_rate: float = 0.8
    """Probability that a decoy document contains each synonym it is a decoy for"""

    pairs_per_query: int = 8
    """Number of teacher-scored (positive, negative) pairs per training query"""

    version: int = 1
    """Bumped whenever the generation procedure changes"""


@dataclass
class DebugCollection:
    """The generated collection (all identifiers are strings)"""

    documents: List[Tuple[str, str]]
    """(docid, text)"""

    queries: Dict[str, List[Tuple[str, str]]]
    """split name ("train", "validation", "test") -> [(qid, text)]"""

    qrels: Dict[str, List[Tuple[str, str, int]]]
    """split name -> [(qid, docid, relevance)]"""

    teacher: List[Tuple[float, float, str, str, str]]
    """Training lines (pos_score, neg_score, qid, pos_docid, neg_docid)"""

    document_words: List[List[str]] = dataclass_field(default_factory=list)
    """For each concept, the words its documents are written with"""

    query_words: List[List[str]] = dataclass_field(default_factory=list)
    """For each concept, its synonyms (query words)"""

    def write(self, folder: Path, spec: DebugCollectionSpec):
        """Writes the collection as TSV / TREC files in ``folder``"""
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "documents.tsv").open("wt") as fp:
            for docid, text in self.documents:
                fp.write(f"{docid}\t{text}\n")
        for split, queries in self.queries.items():
            with (folder / f"queries.{split}.tsv").open("wt") as fp:
                for qid, text in queries:
                    fp.write(f"{qid}\t{text}\n")
        for split, qrels in self.qrels.items():
            with (folder / f"qrels.{split}.txt").open("wt") as fp:
                for qid, docid, rel in qrels:
                    fp.write(f"{qid} 0 {docid} {rel}\n")
        with (folder / "train.teacher.tsv").open("wt") as fp:
            for pos_score, neg_score, qid, pos, neg in self.teacher:
                fp.write(f"{pos_score:.4f}\t{neg_score:.4f}\t{qid}\t{pos}\t{neg}\n")
        (folder / "spec.json").write_text(json.dumps(asdict(spec), indent=2))


def _pseudo_words(rng: np.random.RandomState, count: int) -> List[str]:
    """Distinct pronounceable pseudo-words (CV syllables, 2 or 3 of them)

    Words are distinct even after removing their last letter, so that no
    stemmer can merge two of them.
    """
    words, keys = [], set()
    while len(words) < count:
        syllables = rng.randint(2, 4)
        word = "".join(
            rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)
        )
        if word[:-1] in keys or word in FILLER_WORDS:
            continue
        keys.add(word[:-1])
        words.append(word)
    return words


def generate(spec: DebugCollectionSpec = DebugCollectionSpec()) -> DebugCollection:
    """Generates the debug collection (deterministic given ``spec``)"""
    rng = np.random.RandomState(spec.seed)
    n_words = spec.concepts * (spec.document_words + spec.query_words)
    words = _pseudo_words(rng, n_words)
    doc_words = [
        words[c * spec.document_words : (c + 1) * spec.document_words]
        for c in range(spec.concepts)
    ]
    offset = spec.concepts * spec.document_words
    query_words = [
        words[offset + c * spec.query_words : offset + (c + 1) * spec.query_words]
        for c in range(spec.concepts)
    ]

    # Decoys: a random derangement (no concept is its own decoy)
    while True:
        decoy = rng.permutation(spec.concepts)
        if not np.any(decoy == np.arange(spec.concepts)):
            break
    # decoyed_by[d] = concepts whose synonyms appear in documents of d
    decoyed_by = [[] for _ in range(spec.concepts)]
    for c, d in enumerate(decoy):
        decoyed_by[d].append(c)

    # Topics: distinct ordered pairs of concepts, split by queries
    n_topics = spec.train_queries + spec.validation_queries + spec.test_queries
    all_pairs = [
        (a, b) for a in range(spec.concepts) for b in range(spec.concepts) if a != b
    ]
    assert n_topics <= len(all_pairs), "Not enough concept pairs for the topics"
    chosen = rng.choice(len(all_pairs), n_topics, replace=False)
    topics = [all_pairs[ix] for ix in chosen]

    # Documents: round-robin over topics
    filler_p = 1.0 / np.arange(1, len(FILLER_WORDS) + 1)
    filler_p /= filler_p.sum()
    documents, doc_topic = [], []
    for ix in range(spec.documents):
        t = ix % n_topics
        c1, c2 = topics[t]
        tokens = []
        tokens += list(rng.choice(doc_words[c1], rng.randint(2, 5)))
        tokens += list(rng.choice(doc_words[c2], rng.randint(2, 4)))
        for c in (c1, c2):
            for other in decoyed_by[c]:
                for w in query_words[other]:
                    if rng.rand() < spec.decoy_rate:
                        tokens.append(w)
        tokens += list(rng.choice(FILLER_WORDS, rng.randint(4, 9), p=filler_p))
        rng.shuffle(tokens)
        documents.append((f"d{ix:04d}", " ".join(tokens)))
        doc_topic.append(t)

    docs_of_topic = [[] for _ in range(n_topics)]
    for ix, t in enumerate(doc_topic):
        docs_of_topic[t].append(ix)
    docs_with_concept = [[] for _ in range(spec.concepts)]
    for ix, t in enumerate(doc_topic):
        for c in topics[t]:
            docs_with_concept[c].append(ix)

    def query_text(t: int) -> str:
        tokens = []
        for c in topics[t]:
            for _ in range(spec.query_terms):
                if rng.rand() < spec.keep_document_word:
                    tokens.append(rng.choice(doc_words[c]))
                else:
                    tokens.append(rng.choice(query_words[c]))
        if rng.rand() < 0.5:
            tokens.insert(0, rng.choice(QUERY_FILLERS))
        return " ".join(tokens)

    splits = {
        "train": range(0, spec.train_queries),
        "validation": range(
            spec.train_queries, spec.train_queries + spec.validation_queries
        ),
        "test": range(spec.train_queries + spec.validation_queries, n_topics),
    }
    prefixes = {"train": "tr", "validation": "va", "test": "te"}
    queries, qrels = {}, {}
    for split, topic_ids in splits.items():
        queries[split], qrels[split] = [], []
        for n, t in enumerate(topic_ids):
            qid = f"{prefixes[split]}{n:03d}"
            queries[split].append((qid, query_text(t)))
            for d in docs_of_topic[t]:
                qrels[split].append((qid, documents[d][0], 1))

    # Teacher-scored pairs for training queries
    def teacher_score(t: int, d: int) -> float:
        c1, c2 = topics[t]
        shared = topics[doc_topic[d]]
        score = 4.0 * (c1 in shared) + 3.0 * (c2 in shared)
        return score + float(rng.normal(0, 0.5))

    teacher = []
    for (qid, _), t in zip(queries["train"], splits["train"], strict=True):
        c1, c2 = topics[t]
        decoys = docs_with_concept[decoy[c1]] + docs_with_concept[decoy[c2]]
        partial = [
            d
            for d in docs_with_concept[c1] + docs_with_concept[c2]
            if doc_topic[d] != t
        ]
        for k in range(spec.pairs_per_query):
            pos = rng.choice(docs_of_topic[t])
            pool = (decoys, partial, range(spec.documents))[k % 3]
            neg = rng.choice(pool)
            while doc_topic[neg] == t:
                neg = rng.randint(spec.documents)
            teacher.append(
                (
                    teacher_score(t, pos),
                    teacher_score(t, neg),
                    qid,
                    documents[pos][0],
                    documents[neg][0],
                )
            )

    # Shuffled, as samplers read the file sequentially
    order = rng.permutation(len(teacher))
    teacher = [teacher[ix] for ix in order]

    return DebugCollection(documents, queries, qrels, teacher, doc_words, query_words)
