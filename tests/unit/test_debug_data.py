"""The embedded debug collection: deterministic, consistent, with
vocabulary mismatch"""

import hashlib
from collections import Counter

from splade.debug_data import QUERY_FILLERS, DebugCollectionSpec, generate


def digest(folder):
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
    }


def test_generation_is_deterministic(tmp_path):
    spec = DebugCollectionSpec()
    generate(spec).write(tmp_path / "a", spec)
    generate(spec).write(tmp_path / "b", spec)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")


def test_another_seed_gives_another_collection():
    a = generate(DebugCollectionSpec())
    b = generate(DebugCollectionSpec(seed=1))
    assert a.documents != b.documents


def test_sizes(collection):
    spec = DebugCollectionSpec()
    assert len(collection.documents) == spec.documents == 2000
    assert {k: len(v) for k, v in collection.queries.items()} == {
        "train": 300,
        "validation": 50,
        "test": 100,
    }
    assert len(collection.teacher) == 300 * spec.pairs_per_query


def test_identifiers_are_consistent(collection):
    docids = [docid for docid, _ in collection.documents]
    assert len(set(docids)) == len(docids)
    docids = set(docids)
    qids = {split: {qid for qid, _ in q} for split, q in collection.queries.items()}
    assert not (qids["train"] & qids["validation"] or qids["train"] & qids["test"])
    for split, qrels in collection.qrels.items():
        assert {qid for qid, _, _ in qrels} == qids[split], "every query is judged"
        for _, docid, rel in qrels:
            assert docid in docids and rel == 1
    for _, _, qid, pos, neg in collection.teacher:
        assert qid in qids["train"] and pos in docids and neg in docids
        assert pos != neg


def test_texts_are_not_empty(collection):
    for _, text in collection.documents:
        assert len(text.split()) >= 5
    for queries in collection.queries.values():
        for _, text in queries:
            assert len(text.split()) >= 2


def test_teacher_prefers_positives(collection):
    """The teacher scores the positive above the negative most of the time"""
    wins = sum(pos > neg for pos, neg, *_ in collection.teacher)
    assert wins / len(collection.teacher) > 0.95


def test_vocabulary_mismatch(collection):
    """Many test queries share no word with any of their relevant documents,
    but the same query words are used in training queries"""
    texts = dict(collection.documents)
    relevant = {}
    for qid, docid, _ in collection.qrels["test"]:
        relevant.setdefault(qid, set()).update(texts[docid].split())

    train_words = Counter(
        w for _, text in collection.queries["train"] for w in text.split()
    )
    mismatched = 0
    for qid, text in collection.queries["test"]:
        missing = [w for w in text.split() if w not in relevant[qid]]
        mismatched += len(missing) >= 2
        for word in missing:
            assert train_words[word] > 0 or word in QUERY_FILLERS
    assert mismatched >= 30
