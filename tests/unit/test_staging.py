"""Miniature real datasets staged in datamaestro's data folder
(tests/support/staging.py): ``prepare_dataset("<real id>")`` finds them, downloads
nothing, and they read back as staged

The datasets are prepared in a separate Python process
(:func:`staging.prepare_offline`) whose ``DATAMAESTRO_DIR`` is a new folder:
datamaestro reads ``DATAMAESTRO_DIR`` once (``Context.MAINDIR``, when
``datamaestro.context`` is imported; conftest.py sets it for this process
before), and keeps one ``Context`` (``prepare_dataset(id, context=path)``
creates a second one and fails on ``assert not Context.INSTANCE``), one
instance of each repository holding that context, and every configuration it
prepared, with its absolute paths (``DatasetWrapper.config``). Pointing this
process at another folder would mean patching all three. The other process
has tests/support/network_guard.py installed (as ``sitecustomize``, see
``conftest.user_environment``) and every datamaestro download function
replaced by one that records the call and fails.
"""

import gzip
import json
import math
import pickle
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ROOT, SHARED, load, user_environment
from staging import (
    DUPLICATED,
    HARD_NEGATIVES,
    HARD_NEGATIVES_DM_FILE,
    HF_REPOSITORY,
    MSMARCO,
    TEACHER,
    TEACHER_V2,
    prepare_offline,
    stage_beir,
    stage_beir_from_tsv,
    stage_msmarco,
    staged_path,
)

DOCUMENTS = 2000
#: Passages whose text is checked
LOOKUP = ["0", "1", "1234", str(DOCUMENTS - 1)]
#: A dataset that is not staged (its download must be attempted, and refused)
NOT_STAGED = f"{MSMARCO}.trec.dl.hard.qrels"

ARGUANA = {
    "corpus": [
        ("a1", "Cats", "cats purr and sleep"),
        ("a2", "", "dogs bark at night"),
        ("a3", "Birds", "birds sing in the morning"),
    ],
    "queries": {"q1": "purring cats", "q2": "barking dogs", "q3": "unjudged"},
    "qrels": {"test": [("q1", "a1", 1), ("q2", "a2", 2), ("q2", "a3", 0)]},
}


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    datadir = tmp_path_factory.mktemp("datamaestro")
    home = tmp_path_factory.mktemp("home")
    msmarco = stage_msmarco(datadir, documents=DOCUMENTS)
    beir = {"arguana": stage_beir(datadir, "arguana", **ARGUANA)}
    lookups = {"arguana": ["a1", "a2"]}
    if (SHARED / "data" / "scifact").is_dir():
        beir["scifact"] = stage_beir_from_tsv(
            datadir, "scifact", SHARED / "data" / "scifact"
        )
        lookups["scifact"] = ["4983"]
    if (SHARED / "data" / "cranfield").is_dir():
        # Cranfield's abstracts as BEIR's SCIDOCS (single test split)
        beir["scidocs"] = stage_beir_from_tsv(
            datadir, "scidocs", SHARED / "data" / "cranfield"
        )
        lookups["scidocs"] = ["1", "471"]

    requests = [{"id": i, "lookup": LOOKUP} for i in msmarco["ids"]]
    requests[0]["all_documents"] = True  # the documents, for BM25
    requests += [{"id": f"{i}@text"} for i in msmarco["text_ids"]]
    requests += [
        {"id": i, "lookup": lookups[name]}
        for name, info in beir.items()
        for i in info["ids"]
    ]
    requests.append({"id": NOT_STAGED, "expect_error": True})
    results = prepare_offline(datadir, requests, env=user_environment(home))
    return SimpleNamespace(
        datadir=datadir,
        msmarco=msmarco,
        beir=beir,
        results=results,
        network_log=home / "network.log",
    )


# --- Nothing is downloaded


def test_nothing_is_downloaded(staged):
    results = staged.results
    assert results["network_guard"], "the network guard is installed"
    assert not staged.network_log.exists(), staged.network_log.read_text()
    for dataset_id, summary in results.items():
        if isinstance(summary, dict) and dataset_id != NOT_STAGED:
            assert summary["downloads"] == [], dataset_id
            assert summary["is_prepared"], dataset_id


def test_a_dataset_that_is_not_staged_is_refused(staged):
    """The control: the download functions are really replaced"""
    summary = staged.results[NOT_STAGED]
    assert "Download attempted" in summary["error"]
    assert summary["downloads"][0].startswith("FileDownloader._download")
    assert staged.results["downloads"] == summary["downloads"]


def test_datasets_live_in_the_new_data_folder(staged):
    data = staged.datadir / "data"
    for dataset_id, summary in staged.results.items():
        if isinstance(summary, dict):
            name, _, repository = dataset_id.partition("@")
            expected = data / (repository or "ir") / Path(*name.split("."))
            assert summary["datapath"] == str(expected)


def test_layout(staged):
    """Where the staged files are, and what datamaestro made of them"""
    data = staged.datadir / "data"
    documents = data / "ir/com/microsoft/msmarco/passage/documents"
    assert staged_path(staged.datadir, f"{MSMARCO}.documents", "documents") == (
        documents / "collectionandqueries"
    )
    assert staged_path(staged.datadir, f"{MSMARCO}.train.qrels", "QRELS") == (
        data / "ir/com/microsoft/msmarco/passage/train/qrels/qrels.tsv"
    )
    assert staged_path(
        staged.datadir, f"{MSMARCO}.train.queries", "queries", repository="text"
    ) == (data / "text/com/microsoft/msmarco/passage/train/queries")
    # The document store and the copied files were built; the archive (a
    # transient resource) deleted
    assert (documents / "store").is_dir()
    assert sorted(p.name for p in (documents / "files").iterdir()) == [
        "qrels.dev.small.tsv",
        "queries.dev.small.tsv",
        "queries.eval.small.tsv",
    ]
    assert not (documents / "collectionandqueries").exists()
    state = json.loads((documents / ".state.json").read_text())["resources"]
    assert {k: v["state"] for k, v in state.items()} == {
        "documents": "none",
        "store": "complete",
        "files": "complete",
    }
    for path in staged.msmarco["files"][f"{MSMARCO}.trec2019.qrels"]:
        assert path.is_file()
    beir = data / "ir/org/beir/arguana"
    assert staged.beir["arguana"]["folder"] == beir / "arguana"
    assert not (beir / "arguana").exists()
    assert {p.name for p in beir.iterdir()} >= {"store", "files", ".state.json"}


def test_staging_again_after_preparation_is_refused(staged):
    """datamaestro would keep what it built from the old files"""
    with pytest.raises(RuntimeError, match="already prepared"):
        stage_msmarco(staged.datadir, documents=100)
    with pytest.raises(RuntimeError, match="already prepared"):
        stage_beir(staged.datadir, "arguana", **ARGUANA)


def test_duplicated_ids_resolve_to_the_first_repository(staged):
    """prepare_dataset takes the first repository (entry point order) that
    defines an id; both versions are staged"""
    from datamaestro.context import iter_entry_points

    order = [e.name for e in iter_entry_points("datamaestro.repositories")]
    first = min(("ir", "text"), key=order.index)
    for dataset_id in DUPLICATED:
        assert staged.results[dataset_id]["repository"] == first
        text = staged.results[f"{dataset_id}@text"]
        assert text["repository"] == "text"
        for key in ("topics", "qrels"):
            if key in text:
                assert text[key] == staged.results[dataset_id][key], dataset_id


# --- MS MARCO


def test_msmarco_documents(staged):
    texts = staged.msmarco["documents"]
    assert len(texts) == DOCUMENTS
    for dataset_id in (f"{MSMARCO}.documents", f"{MSMARCO}.dev.small"):
        documents = staged.results[dataset_id]["documents"]
        assert documents["type"].startswith("MsMarcoPassagesStore")
        assert documents["iterated"] == DOCUMENTS
        assert documents["first"] == ["0", "1", "2"]
        for pid in LOOKUP:
            assert documents["lookup"][pid]["text"] == texts[int(pid)]
        # datamaestro_ir gives the size of the real collection
        assert documents["documentcount"] == 8_841_823
    collection = staged.results[f"{MSMARCO}.collection@text"]["documents"]
    first = Path(collection["path"]).read_text().splitlines()[0]
    assert first == f"0\t{texts[0]}"


@pytest.mark.parametrize(
    "name,split,queries,judged",
    [
        ("train", "train", 300, 300),
        ("dev", "dev", 90, 85),
        ("dev.small", "dev.small", 40, 40),
        ("dev.judged", "dev", 85, 85),
        ("trec2019", "trec2019", 30, 25),
        ("trec2019.judged", "trec2019", 25, 25),
        ("trec2020", "trec2020", 30, 25),
        ("trec2020.judged", "trec2020", 25, 25),
    ],
)
def test_msmarco_topics_and_qrels(staged, name, split, queries, judged):
    summary = staged.results[f"{MSMARCO}.{name}"]
    assert summary["type"].startswith("Adhoc")
    expected_queries = staged.msmarco["queries"][split]
    expected_qrels = staged.msmarco["qrels"][split]
    assert len(summary["topics"]) == queries
    assert len(summary["qrels"]) == len(expected_qrels) == judged
    assert summary["qrels"] == expected_qrels
    for qid, text in summary["topics"].items():
        assert text == expected_queries[qid]
    if name.endswith(".judged"):
        assert set(summary["topics"]) == set(expected_qrels)
    qid = sorted(expected_qrels)[0]
    assert summary["qrels"][qid] == expected_qrels[qid]


def test_msmarco_query_files(staged):
    results, msmarco = staged.results, staged.msmarco
    assert results[f"{MSMARCO}.train.queries"]["topics"] == msmarco["queries"]["train"]
    assert results[f"{MSMARCO}.train.qrels"]["qrels"] == msmarco["qrels"]["train"]
    eval_small = results[f"{MSMARCO}.eval.queries.small"]["topics"]
    assert eval_small == msmarco["queries"]["eval.small"] and eval_small
    dev_small = set(msmarco["queries"]["dev.small"])
    assert dev_small < set(msmarco["queries"]["dev"])
    assert not dev_small & set(msmarco["queries"]["train"])


def test_trec_dl_qrels_are_graded(staged):
    for year in ("trec2019", "trec2020"):
        qrels = staged.results[f"{MSMARCO}.{year}.qrels"]["qrels"]
        grades = Counter(rel for judged in qrels.values() for rel in judged.values())
        assert set(grades) == {0, 1, 2, 3}
        for judged in qrels.values():
            assert max(judged.values()) == 3 and min(judged.values()) == 0


@pytest.mark.parametrize("dataset_id", [TEACHER, TEACHER_V2])
def test_teacher(staged, dataset_id):
    summary = staged.results[dataset_id]
    teacher = staged.msmarco["teacher"]
    assert summary["count"] == len(teacher) == 300 * 8
    for sample, line in zip(summary["samples"], teacher, strict=False):
        qid, pos, pos_score, neg, neg_score = sample
        assert (qid, pos, neg) == line[2:]
        assert pos_score == pytest.approx(line[0], abs=1e-4)
        assert neg_score == pytest.approx(line[1], abs=1e-4)
    train = staged.msmarco["qrels"]["train"]
    for _, _, qid, pos, neg in teacher:
        assert train[qid].get(pos) == 1 and neg not in train[qid]


def test_triples(staged):
    summary = staged.results[f"{MSMARCO}.train.triples.id"]
    triples = staged.msmarco["triples"]
    assert summary["count"] == len(triples)
    assert [tuple(t) for t in summary["samples"]] == triples[:5]
    train = staged.msmarco["queries"]["train"]
    assert all(q in train and 0 <= int(p) < DOCUMENTS for q, p, _ in triples)


def test_hard_negatives(staged):
    summary = staged.results[HARD_NEGATIVES]
    assert summary["repo_id"] == HF_REPOSITORY
    assert (summary["data_files"], summary["split"]) == (
        HARD_NEGATIVES_DM_FILE,
        "train",
    )
    # Read from the Hugging Face hub, not from the staged files
    assert summary["local_path"] is None
    msmarco = staged.msmarco
    with gzip.open(msmarco["hard_negatives_file"], "rt") as fp:
        records = [json.loads(line) for line in fp]
    assert len(records) == len(msmarco["queries"]["train"])
    scores = pickle.loads(gzip.decompress(msmarco["ce_scores_file"].read_bytes()))
    assert scores == msmarco["ce_scores"]
    for record in records:
        qid, judged = record["qid"], msmarco["qrels"]["train"][str(record["qid"])]
        assert record["pos"] == sorted(int(p) for p in judged)
        assert set(record["neg"]) == {"bm25", "msmarco-distilbert-base-tas-b"}
        for pid in record["pos"] + [p for n in record["neg"].values() for p in n]:
            assert isinstance(scores[qid][pid], float)
            assert (pid in record["pos"]) == (str(pid) in judged)


@pytest.mark.xfail(raises=TypeError, strict=True, reason="datamaestro_ir bug")
def test_hard_negatives_samples():
    """datamaestro_ir 0.5.0, data/huggingface.py:33, calls
    ``PairwiseSample(qid, pos, neg)`` positionally, on an attrs class that is
    keyword-only (``@define(kw_only=True)``, data/__init__.py:459)"""
    from datamaestro_ir.data.huggingface import HuggingFacePairwiseSampleDataset

    dataset = HuggingFacePairwiseSampleDataset.C(id="x", repo_id=HF_REPOSITORY)
    dataset.__dict__["data"] = [{"qid": 1, "pos": [2], "neg": {"bm25": [3]}}]
    next(dataset.iter())


def test_bm25_on_dev_small(staged):
    """Retrieval is possible but imperfect: vocabulary mismatch"""
    texts = staged.results[f"{MSMARCO}.documents"]["documents"]["all"]
    docs = {pid: Counter(doc["text"].split()) for pid, doc in texts.items()}
    df = Counter(term for tf in docs.values() for term in tf)
    avg = sum(sum(tf.values()) for tf in docs.values()) / len(docs)
    k1, b, n = 0.9, 0.4, len(docs)

    def bm25(query, tf):
        length = sum(tf.values())
        return sum(
            math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
            * tf[t]
            * (k1 + 1)
            / (tf[t] + k1 * (1 - b + b * length / avg))
            for t in query.split()
            if t in tf
        )

    summary = staged.results[f"{MSMARCO}.dev.small"]
    rr = []
    for qid, query in summary["topics"].items():
        ranking = sorted(docs, key=lambda pid: -bm25(query, docs[pid]))[:10]
        relevant = [
            r for r, pid in enumerate(ranking) if summary["qrels"][qid].get(pid)
        ]
        rr.append(1 / (relevant[0] + 1) if relevant else 0)
    mrr = sum(rr) / len(rr)
    print(f"BM25 MRR@10 on dev.small: {mrr:.3f}")
    assert 0.1 < mrr < 0.9, mrr


def test_recipes_use_staged_ids(staged):
    staged_ids = set(staged.msmarco["ids"])
    for recipe in ["normal.yaml", "normal_DistilMSE.yaml", "normal_doc.yaml"]:
        data = load(ROOT / "splade" / recipe).data
        ids = {
            data.documents,
            data.train,
            data.train_queries,
            data.validation,
            data.validation_exclude,
            *data.tests.values(),
        }
        assert ids <= staged_ids, (recipe, ids - staged_ids)


# --- BEIR


def test_beir_synthetic(staged):
    summary = staged.results["org.beir.arguana"]
    assert summary["documents"]["iterated"] == 3
    assert summary["documents"]["lookup"]["a1"] == {
        "text": "Cats cats purr and sleep",
        "title": "Cats",
        "body": "cats purr and sleep",
    }
    assert summary["documents"]["lookup"]["a2"]["body"] == "dogs bark at night"
    assert summary["topics"] == ARGUANA["queries"]
    assert summary["qrels"] == {"q1": {"a1": 1}, "q2": {"a2": 2, "a3": 0}}


def test_beir_scifact(staged):
    if "scifact" not in staged.beir:
        pytest.skip("shared/data/scifact is absent")
    info = staged.beir["scifact"]
    assert info["ids"] == [
        "org.beir.scifact.collection",
        "org.beir.scifact.train",
        "org.beir.scifact.test",
    ]
    collection = staged.results["org.beir.scifact.collection"]["documents"]
    assert collection["type"].startswith("BeirDocumentStore")
    assert collection["iterated"] == collection["documentcount"] == 5183
    doc = collection["lookup"]["4983"]
    assert doc["title"].startswith("Microstructural development of human newborn")
    assert doc["body"].startswith("Alterations of the architecture")
    for split, queries, qrels in (("train", 809, 919), ("test", 300, 339)):
        summary = staged.results[f"org.beir.scifact.{split}"]
        assert len(summary["topics"]) == len(summary["qrels"]) == queries
        assert sum(len(q) for q in summary["qrels"].values()) == qrels
    test = staged.results["org.beir.scifact.test"]
    assert test["qrels"]["1"] == {"31715818": 1}
    assert (
        test["topics"]["1"] == "0-dimensional biomaterials show inductive properties."
    )


def test_beir_from_cranfield(staged):
    if "scidocs" not in staged.beir:
        pytest.skip("shared/data/cranfield is absent")
    summary = staged.results["org.beir.scidocs"]
    assert summary["documents"]["iterated"] == 1400
    assert summary["documents"]["lookup"]["471"]["body"] == ""  # empty document
    assert summary["documents"]["lookup"]["1"]["body"].startswith("experimental")
    assert len(summary["topics"]) == 225
    grades = {r for judged in summary["qrels"].values() for r in judged.values()}
    assert sum(len(q) for q in summary["qrels"].values()) == 1837
    assert len(grades) > 2
