"""Collections given as local files: every supported format, the errors
naming file and line, and the pipeline's view of an imported collection"""

import json
import re
from pathlib import Path

import pytest
from conftest import ROOT, load, needs_scifact
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splade.checks import check
from splade.configuration import ConfigurationError
from splade.local_files import CollectionError, read_collection

DOCUMENTS = {
    "d1": ("Cats", "cats purr and sleep"),
    "d2": ("", "dogs bark at night"),
    "d3": ("Birds", "birds sing in the morning"),
}
QUERIES = {"q1": "purring cats", "q2": "barking dogs", "q3": "an unjudged query"}
QRELS = [("q1", "d1", 1), ("q2", "d2", 2), ("q2", "d3", 0)]
TEACHER = [(9.5, 1.25, "q1", "d1", "d3"), (8.0, 0.5, "q2", "d2", "d1")]


def write_tsv(folder: Path) -> dict:
    """The fixture collection as TSV files and TREC qrels"""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "docs.tsv").write_text(
        "".join(f"{i}\t{(t + ' ' + x).strip()}\n" for i, (t, x) in DOCUMENTS.items())
    )
    (folder / "queries.tsv").write_text(
        "".join(f"{q}\t{text}\n" for q, text in QUERIES.items())
    )
    (folder / "qrels.txt").write_text("".join(f"{q} 0 {d} {r}\n" for q, d, r in QRELS))
    (folder / "teacher.tsv").write_text(
        "".join("\t".join(map(str, line)) + "\n" for line in TEACHER)
    )
    return {
        "documents": folder / "docs.tsv",
        "queries": folder / "queries.tsv",
        "qrels": folder / "qrels.txt",
        "teacher": folder / "teacher.tsv",
    }


def write_beir(folder: Path) -> dict:
    """The fixture collection as BEIR files (corpus.jsonl, queries.jsonl,
    qrels/test.tsv)"""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text(
        "".join(
            json.dumps({"_id": i, "title": t, "text": x}) + "\n"
            for i, (t, x) in DOCUMENTS.items()
        )
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items())
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n"
        + "".join(f"{q}\t{d}\t{r}\n" for q, d, r in QRELS)
    )
    return {
        "documents": folder / "corpus.jsonl",
        "queries": folder / "queries.jsonl",
        "qrels": folder / "qrels" / "test.tsv",
        "teacher": None,
    }


def splits(files: dict, teacher=False) -> dict:
    return {
        "test": {
            "queries": files["queries"],
            "qrels": files["qrels"],
            "teacher": files["teacher"] if teacher else None,
        }
    }


@pytest.mark.parametrize("write", [write_tsv, write_beir], ids=["tsv", "beir"])
def test_formats_give_the_same_collection(tmp_path, write):
    """Imported documents, queries and judgements are read back through the
    datamaestro types the pipeline uses for MS MARCO"""
    import impact_index  # noqa: F401  (the document store)
    from datamaestro_ir.data.beir import BeirDocumentStore
    from datamaestro_ir.data.csv import Topics
    from datamaestro_ir.data.trec import TrecAdhocAssessments

    files = write(tmp_path / "in")
    out = tmp_path / "out"
    summary = read_collection(files["documents"], splits(files), write=out)
    assert summary.documents == 3 and summary.empty_documents == 0
    split = summary.splits["test"]
    # q3 has no relevant document: it is not a test query
    assert (split.queries, split.skipped_unjudged, split.judgements) == (2, 1, 3)

    store = BeirDocumentStore.C(id="", path=out / "docstore", count=3).instance()
    for docid, (title, text) in DOCUMENTS.items():
        assert store.document_ext(docid)["text_item"].text.strip() == (
            f"{title} {text}".strip()
        )
    topics = Topics.C(id="", path=out / "test.queries.tsv").instance()
    assert {t["id"]: t["text_item"].text for t in topics.iter()} == {
        "q1": "purring cats",
        "q2": "barking dogs",
    }
    qrels = TrecAdhocAssessments.C(id="", path=out / "test.qrels.txt").instance()
    assert sorted(
        (t.topic_id, a.doc_id, a.rel) for t in qrels.iter() for a in t.assessments
    ) == sorted(QRELS)


def test_documents_and_splits_are_written_apart(tmp_path):
    """The two import tasks write their own part of the collection"""
    files = write_tsv(tmp_path / "in")
    documents, splits_ = files["documents"], splits(files, teacher=True)
    read_collection(documents, splits_, write=tmp_path / "d", parts=("documents",))
    read_collection(documents, splits_, write=tmp_path / "s", parts=("splits",))
    assert {p.name for p in (tmp_path / "d").iterdir()} == {"docstore"}
    assert {p.name for p in (tmp_path / "s").iterdir()} == {
        "test.queries.tsv",
        "test.qrels.txt",
        "test.teacher.tsv",
    }


def test_teacher_scores_are_imported(tmp_path):
    from datamaestro_ir.data.distillation import PairwiseDistillationSamplesTSV

    files = write_tsv(tmp_path / "in")
    summary = read_collection(
        files["documents"], splits(files, teacher=True), write=tmp_path / "out"
    )
    assert summary.splits["test"].teacher == 2
    # queries of teacher pairs are all kept, judged or not
    assert summary.splits["test"].queries == 3
    samples = PairwiseDistillationSamplesTSV.C(
        id="",
        path=tmp_path / "out" / "test.teacher.tsv",
        with_docid=True,
        with_queryid=True,
    ).instance()
    parsed = [
        samples._parse_line(line)  # as the training data loader does
        for line in (tmp_path / "out" / "test.teacher.tsv").read_text().splitlines()
    ]
    read = [
        (s.documents[0].score, s.documents[1].score, s.query["id"])
        + tuple(d.document["id"] for d in s.documents)
        for s in parsed
    ]
    assert read == TEACHER


def test_empty_texts_are_skipped_with_counts(tmp_path):
    files = write_tsv(tmp_path / "in")
    with files["documents"].open("a") as fp:
        fp.write("d4\t   \n")
    with files["queries"].open("a") as fp:
        fp.write("q4\t\n")
    summary = read_collection(files["documents"], splits(files), write=tmp_path / "o")
    assert summary.empty_documents == 1 and summary.documents == 3
    assert summary.splits["test"].skipped_empty == 1
    assert summary.warnings() == [
        "1 empty documents skipped",
        "split test: 1 empty queries",
        "split test: 1 queries without relevance judgements skipped",
    ]


# (file to damage, content appended or replacing the file, expected message)
DAMAGES = [
    ("documents", "d2\tagain\n", "line 4: duplicate document id 'd2' (line 2)"),
    ("documents", "d5 no tab here\n", "line 4: expected <id><TAB><text>"),
    ("documents", b"d5\tcaf\xe9\n", "line 4: not UTF-8"),
    ("queries", "q1\tagain\n", "line 4: duplicate query id 'q1' (line 1)"),
    ("qrels", "q1 0 d9 1\n", "line 4: unknown document id 'd9'"),
    ("qrels", "q9 0 d1 1\n", "line 4: unknown query id 'q9'"),
    ("qrels", "q1 0 d2\n", "line 4: expected qid 0 docid rel (TREC)"),
    ("qrels", "q1 0 d2 yes\n", "line 4: relevance 'yes' is not an integer"),
    ("qrels", "q1 0 d1 0\n", "line 4: q1 d1 judged twice"),
    ("teacher", "1.0\t2.0\tq1\td1\td8\n", "line 3: unknown document id 'd8'"),
    ("teacher", "high\t2.0\tq1\td1\td2\n", "line 3: scores must be numbers"),
    ("teacher", "nan\t2.0\tq1\td1\td2\n", "line 3: scores must be finite"),
]


@pytest.mark.parametrize("kind,damage,message", DAMAGES)
def test_bad_lines_are_reported_with_file_and_line(tmp_path, kind, damage, message):
    files = write_tsv(tmp_path / "in")
    with files[kind].open("ab") as fp:
        fp.write(damage if isinstance(damage, bytes) else damage.encode())
    out = tmp_path / "out"
    with pytest.raises(CollectionError, match=re.escape(message)) as error:
        read_collection(files["documents"], splits(files, teacher=True), write=out)
    assert error.value.path == files[kind]
    assert str(files[kind]) in str(error.value)
    assert not out.exists(), "nothing is written from a bad collection"


@pytest.mark.parametrize(
    "kind,content,message",
    [
        ("documents", '{"_id": "d1", "text": "x"}\n{"_id": "d2"\n', "line 2: not JSON"),
        ("documents", '{"_id": "d1"}\n', "line 1: no string field 'text'"),
        ("queries", '["q1", "text"]\n', "line 1: not a JSON object"),
        ("qrels", "query-id\tcorpus-id\tscore\nq1\td1\n", "line 2: expected query-id"),
    ],
)
def test_bad_beir_lines(tmp_path, kind, content, message):
    files = write_beir(tmp_path)
    files[kind].write_text(content)
    with pytest.raises(CollectionError, match=message):
        read_collection(files["documents"], splits(files))


def test_changing_a_file_changes_the_digest(tmp_path):
    files = write_tsv(tmp_path)
    before = read_collection(files["documents"], splits(files))
    files["qrels"].write_text("q1 0 d1 1\n")
    after = read_collection(files["documents"], splits(files))
    assert after.digest != before.digest
    assert after.splits_digest != before.splits_digest
    # the documents did not change: their import is shared
    assert after.documents_digest == before.documents_digest
    with files["documents"].open("a") as fp:
        fp.write("d9\tone more\n")
    assert read_collection(files["documents"], splits(files)).documents_digest != (
        before.documents_digest
    )


# --- Fuzzing: whatever the bytes, a documented error or a collection

LINE = st.one_of(
    st.binary(max_size=40),
    st.lists(
        st.sampled_from(["d1", "d2", "q1", "q2", "0", "1", "x", " ", "é", '"', "{"]),
        max_size=6,
    ).map(lambda parts: "\t".join(parts).encode()),
    st.lists(st.sampled_from(["d1", "q1", "0", "1", "-2", "x"]), max_size=5).map(
        lambda parts: " ".join(parts).encode()
    ),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    kind=st.sampled_from(["documents", "queries", "qrels", "teacher"]),
    lines=st.lists(LINE, max_size=5),
    jsonl=st.booleans(),
)
def test_fuzzed_files_give_clear_errors_or_a_collection(tmp_path, kind, lines, jsonl):
    import shutil

    folder = tmp_path / "fuzz"
    shutil.rmtree(folder, ignore_errors=True)
    files = write_tsv(folder)
    if jsonl and kind in ("documents", "queries"):
        files[kind] = files[kind].with_suffix(".jsonl")
    files[kind].write_bytes(b"\n".join(lines))
    out = folder / "out"
    try:
        summary = read_collection(
            files["documents"], splits(files, teacher=True), write=out
        )
    except CollectionError as e:
        # the damaged file, or one that refers to it, is named
        assert e.path in files.values() and str(e).startswith(str(e.path))
        assert not out.exists()
    else:
        assert summary.documents > 0 and summary.splits["test"].queries > 0
        assert (out / "test.queries.tsv").is_file()


# --- In the configuration: errors before any task, recipes


def local_cfg(files: dict, *overrides):
    cfg = load(ROOT / "splade" / "local_zeroshot.yaml", *overrides)
    cfg.data.local.documents = str(files["documents"])
    cfg.data.local.splits["test"].queries = str(files["queries"])
    cfg.data.local.splits["test"].qrels = str(files["qrels"])
    cfg.model.base_hf_id = str(files["model"])
    return cfg


@pytest.fixture
def local_files(tmp_path, tiny_model):
    return {**write_tsv(tmp_path), "model": tiny_model}


def test_a_bad_line_stops_the_configuration_check(local_files):
    with local_files["qrels"].open("a") as fp:
        fp.write("q1 0 nowhere 1\n")
    with pytest.raises(ConfigurationError) as error:
        check(local_cfg(local_files))
    (problem,) = error.value.problems
    assert problem.startswith("data.local.splits.test.qrels: ")
    assert f"{local_files['qrels']}, line 4: unknown document id" in problem


def test_missing_files_and_splits_are_named(local_files):
    cfg = local_cfg(local_files, "data.tests.other=local:dev")
    cfg.data.local.splits["test"].qrels = "/nonexistent/qrels.txt"
    with pytest.raises(ConfigurationError) as error:
        check(cfg)
    assert set(error.value.problems) == {
        "data.local.splits.test.qrels: no file /nonexistent/qrels.txt",
        "data.tests.other: data.local.splits has no 'dev' (it has ['test'])",
    }


def test_local_ids_need_a_local_collection(local_files):
    cfg = local_cfg(local_files)
    cfg.data.local = None
    with pytest.raises(ConfigurationError, match="data.documents: local names"):
        check(cfg)


def test_unknown_keys_in_splits_are_found():
    from splade.checks import unknown_keys

    data = {"data": {"local": {"documents": "x", "splits": {"t": {"qrel": "y"}}}}}
    assert unknown_keys(data) == ["data.local.splits.t.qrel"]


def test_experiments_on_the_same_documents_share_their_import(local_files, tmp_path):
    """Other splits (e.g. zero-shot, then fine-tuning) import the splits
    again, but not the documents, and share the BM25 index"""
    from dryrun import dry_run, of_type
    from xpmir.index.bow import BOWSparseRetrieverIndexBuilder

    from splade.local_import import ImportLocalCollection, ImportLocalDocuments

    def identifiers(cfg):
        tasks = dry_run(cfg, tmp_path)
        return {
            cls.__name__: [t.__xpm__.identifier.all.hex() for t in of_type(tasks, cls)]
            for cls in (
                ImportLocalDocuments,
                ImportLocalCollection,
                BOWSparseRetrieverIndexBuilder,
            )
        }

    one = identifiers(local_cfg(local_files))
    two = identifiers(
        local_cfg(
            local_files,
            f"data.local.splits.dev.queries={local_files['queries']}",
            f"data.local.splits.dev.qrels={local_files['qrels']}",
            "data.tests.dev=local:dev",
        )
    )
    assert len(one["ImportLocalDocuments"]) == 1
    assert one["ImportLocalDocuments"] == two["ImportLocalDocuments"]
    assert (
        one["BOWSparseRetrieverIndexBuilder"] == two["BOWSparseRetrieverIndexBuilder"]
    )
    assert one["ImportLocalCollection"] != two["ImportLocalCollection"]


def test_margin_mse_needs_teacher_scores(local_files, tmp_path):
    cfg = load(
        ROOT / "splade" / "local_finetune.yaml",
        "learner.loss=margin_mse",
        "data.validation=local:test",
    )
    cfg.data.local.documents = str(local_files["documents"])
    for split in cfg.data.local.splits.values():
        split.queries = str(local_files["queries"])
        split.qrels = str(local_files["qrels"])
    with pytest.raises(ConfigurationError, match="needs teacher scores"):
        check(cfg)


@needs_scifact
def test_zero_shot_recipe_trains_nothing(tmp_path):
    from dryrun import dry_run, of_type
    from xpm_torch.learner import Learner
    from xpmir.evaluation import Evaluate

    from splade.local_import import ImportLocalCollection

    tasks = dry_run(load(ROOT / "splade" / "local_zeroshot.yaml"), tmp_path)
    assert not of_type(tasks, Learner)
    (imported,) = of_type(tasks, ImportLocalCollection)
    assert imported.documents.count == 5183
    assert len(of_type(tasks, Evaluate)) == 2  # BM25 and SPLADE


@needs_scifact
def test_fine_tuning_holds_out_its_validation_queries(tmp_path):
    from dryrun import dry_run, of_type
    from xpm_torch.learner import Learner
    from xpmir.datasets.adapters import RandomFold

    from splade.workarounds.xpmir import HardNegativesSampler

    tasks = dry_run(load(ROOT / "splade" / "local_finetune.yaml"), tmp_path)
    (learner,) = of_type(tasks, Learner)
    sampler = learner.trainer.sampler
    assert isinstance(sampler, HardNegativesSampler)
    assert sampler.retriever.topk == 100
    folds = sorted(of_type(tasks, RandomFold), key=lambda f: f.fold)
    assert [f.fold for f in folds] == [0, 1]
    assert all(f.sizes == [50, 759] and f.seed == folds[0].seed for f in folds)
    # training queries are fold 1, validation queries fold 0 (disjoint)
    train_topics = Path(sampler.dataset.topics.path)
    assert train_topics.parent.name == folds[1].__xpm__.identifier.all.hex()


def test_dataset_ids_resolve_in_datamaestro_ir_first(monkeypatch):
    """MS MARCO dev is defined by datamaestro-ir and datamaestro-text:
    datamaestro's prepare_dataset takes the first repository of the
    installation's entry points; the package takes datamaestro-ir's"""
    from datamaestro import prepare_dataset
    from datamaestro.context import Context
    from datamaestro_ir.data import Adhoc

    from splade.datasets import find

    repositories = list(Context.instance().repositories())
    text_first = sorted(repositories, key=lambda r: r.id != "text")
    monkeypatch.setattr(Context, "repositories", lambda self: iter(text_first))
    dev = "com.microsoft.msmarco.passage.dev"
    upstream = prepare_dataset(dev, download=False)
    assert not isinstance(upstream, Adhoc)  # datamaestro-text's Adhoc
    assert isinstance(prepare_dataset(find(dev), download=False), Adhoc)
