"""Miniature versions of real datasets, staged in datamaestro's own data folder

``prepare_dataset("<real id>")`` then finds them and downloads nothing.

Where datamaestro (1.16) keeps a dataset
-----------------------------------------

``$DATAMAESTRO_DIR`` (default ``~/datamaestro``; read once, when
``datamaestro.context`` is imported, into ``Context.MAINDIR``) holds
``data/<repository id>/<dataset id, dots as slashes>/``: the dataset's
``datapath`` (``DatasetWrapper.datapath``; the repository ids are ``ir`` for
datamaestro_ir, ``text`` for datamaestro_text, ``irds`` and ``splade``). Each
resource of the dataset has its ``path`` in it:

- ``FileDownloader("name.ext", url)``: ``<datapath>/name.ext``, stored
  decompressed when the URL ends with ``.gz``;
- ``TarDownloader`` / ``ZipDownloader("name", url)``: the extracted archive
  (its single top folder unwrapped), in ``<datapath>/<archive name without
  .tar.gz or .zip>/`` when the dataset has several resources, in
  ``<datapath>/`` itself when it is the only one;
- other folder resources (``docstore_builder``, ``FilesCopy``):
  ``<datapath>/<attribute name>/``; ``judged_qids`` files:
  ``<datapath>/judged_qids*.txt``;
- ``HFDownloader`` (Hugging Face datasets): no file.

Whether a resource is there is decided by
``AbstractDataset._download_locked`` (datamaestro/definitions.py): by its
state in ``<datapath>/.state.json`` (``{"version": 1, "resources": {NAME:
{"state": "complete"}}}``, written by datamaestro after each resource) and,
for a resource with files, by its ``path`` existing (``files_present``). A
resource with no state but whose files exist is *adopted* as complete
(old downloads had no state file). A transient resource (the downloaded
archives) is skipped once everything made from it is complete, and deleted
then. Checksums (``HashCheck``) are only computed on a downloaded file, never
on files already present.

So staging writes, at the resource's ``path``, what the downloader would
have left there (e.g. the content of ``collectionandqueries.tar.gz``, or of
a BEIR zip), and writes no state: the first ``prepare_dataset`` adopts these
files and builds the derived resources itself, locally, with datamaestro's
own code (the document stores, the copied query files, the judged query
ids). The only exception is the Hugging Face resource, which has no file:
its state is written as complete. The paths are asked to datamaestro
(:func:`staged_path`), relative to its data folder, so that staging works
whatever ``DATAMAESTRO_DIR`` the calling process has.

Identifiers defined twice
-------------------------

Several MS MARCO ids (``...passage.dev``, ``.dev.small``, ``.dev.queries``,
``.dev.qrels``, ``.train``, ``.train.queries``, ``.train.qrels``, the
``.withrun`` / ``.run`` ones) exist in both datamaestro_ir and
datamaestro_text. ``prepare_dataset`` uses ``AbstractDataset.find``
(datamaestro/definitions.py), which returns the match of the *first*
repository in ``Context.repositories()``, i.e. in the order of the
``datamaestro.repositories`` entry points as ``importlib.metadata`` lists
them: the order in which ``os.listdir`` returns the ``*.dist-info`` folders
of site-packages, which is not sorted (on ext4 it is a hash order). In this
environment, datamaestro_ir (``ir``) comes first and wins. As that order is
not guaranteed, :func:`stage_msmarco` stages both repositories' versions of
these ids (the datamaestro_text ones read a plain ``collection.tsv``).
"""

import gzip
import json
import os
import pickle
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

MSMARCO = "com.microsoft.msmarco.passage"
TEACHER = "com.github.sebastian-hofstaetter.neural-ranking-kd.msmarco_ensemble_teacher"
#: The same teacher file, in datamaestro_ir's class-based definitions
TEACHER_V2 = "com.github.hofstaetter.distillation.msmarco.ensemble.teacher"
HARD_NEGATIVES = (
    "co.huggingface.datasets.sentence-transformers.msmarco-hard-negatives.ensemble"
)
HF_REPOSITORY = "sentence-transformers/msmarco-hard-negatives"
#: The file of the Hugging Face dataset repository
HARD_NEGATIVES_FILE = "msmarco-hard-negatives.jsonl.gz"
#: The file that datamaestro_ir's definition asks for (``data_files``)
HARD_NEGATIVES_DM_FILE = "msmarco-hard-negatives-msmarco.jsonl.gz"
CE_SCORES_FILE = "cross-encoder-ms-marco-MiniLM-L-6-v2-scores.pkl.gz"

#: Ids that are defined in both datamaestro_ir and datamaestro_text
DUPLICATED = [
    f"{MSMARCO}.train",
    f"{MSMARCO}.train.queries",
    f"{MSMARCO}.train.qrels",
    f"{MSMARCO}.dev",
    f"{MSMARCO}.dev.queries",
    f"{MSMARCO}.dev.qrels",
    f"{MSMARCO}.dev.small",
]

#: Files of collectionandqueries.tar.gz
ARCHIVE_FILES = [
    "collection.tsv",
    "queries.train.tsv",
    "queries.dev.tsv",
    "queries.eval.tsv",
    "queries.dev.small.tsv",
    "queries.eval.small.tsv",
    "qrels.train.tsv",
    "qrels.dev.small.tsv",
]

# (repository, dataset id, resource name, {file in the resource or "" for the
# resource itself: key in the generated files})
MSMARCO_LAYOUT = [
    ("ir", f"{MSMARCO}.documents", "documents", {f: f for f in ARCHIVE_FILES}),
    ("ir", f"{MSMARCO}.train.queries", "queries", {"queries.train.tsv": "q.train"}),
    ("ir", f"{MSMARCO}.train.qrels", "QRELS", {"": "qrels.train.tsv"}),
    ("ir", f"{MSMARCO}.train.triples.id", "TRIPLES", {"": "triples"}),
    ("ir", f"{MSMARCO}.dev.queries", "queries", {"queries.dev.tsv": "q.dev"}),
    ("ir", f"{MSMARCO}.dev.qrels", "QRELS", {"": "qrels.dev"}),
    ("ir", f"{MSMARCO}.trec2019.queries", "QUERIES", {"": "trec2019.queries"}),
    ("ir", f"{MSMARCO}.trec2019.qrels", "QRELS", {"": "trec2019.qrels"}),
    ("ir", f"{MSMARCO}.trec2020.queries", "QUERIES", {"": "trec2020.queries"}),
    ("ir", f"{MSMARCO}.trec2020.qrels", "QRELS", {"": "trec2020.qrels"}),
    (
        "ir",
        TEACHER,
        "bert_cat_ensemble_msmarcopassage_train_scores_ids",
        {"": "teacher"},
    ),
    ("ir", TEACHER_V2, "SCORES", {"": "teacher"}),
    ("text", f"{MSMARCO}.collection.etc", "data", {f: f for f in ARCHIVE_FILES}),
    ("text", f"{MSMARCO}.train.queries", "queries", {"queries.train.tsv": "q.train"}),
    ("text", f"{MSMARCO}.train.qrels", "QRELS", {"": "qrels.train.tsv"}),
    ("text", f"{MSMARCO}.dev.queries", "queries", {"queries.dev.tsv": "q.dev"}),
    ("text", f"{MSMARCO}.dev.qrels", "QRELS", {"": "qrels.dev"}),
]

#: Ids that prepare offline once :func:`stage_msmarco` has run (resolved by
#: ``prepare_dataset``, whichever repository wins)
MSMARCO_IDS = [
    f"{MSMARCO}.documents",
    f"{MSMARCO}.train",
    f"{MSMARCO}.train.queries",
    f"{MSMARCO}.train.qrels",
    f"{MSMARCO}.train.triples.id",
    f"{MSMARCO}.dev",
    f"{MSMARCO}.dev.queries",
    f"{MSMARCO}.dev.qrels",
    f"{MSMARCO}.dev.small",
    f"{MSMARCO}.dev.judged",
    f"{MSMARCO}.eval.queries.small",
    f"{MSMARCO}.trec2019",
    f"{MSMARCO}.trec2019.queries",
    f"{MSMARCO}.trec2019.qrels",
    f"{MSMARCO}.trec2019.judged",
    f"{MSMARCO}.trec2020",
    f"{MSMARCO}.trec2020.queries",
    f"{MSMARCO}.trec2020.qrels",
    f"{MSMARCO}.trec2020.judged",
    TEACHER,
    TEACHER_V2,
    HARD_NEGATIVES,
]

#: Ids of datamaestro_text that prepare offline (``<id>@text`` for
#: :func:`prepare_offline`)
MSMARCO_TEXT_IDS = DUPLICATED + [
    f"{MSMARCO}.collection",
    f"{MSMARCO}.collection.etc",
    f"{MSMARCO}.dev.small.queries",
    f"{MSMARCO}.dev.small.qrels",
]


# --- Where datamaestro keeps things


def dataset_wrapper(dataset_id: str, repository: str = "ir"):
    """The dataset ``dataset_id`` of one datamaestro repository (``ir``,
    ``text``...), whatever repository ``prepare_dataset`` would pick"""
    from datamaestro.context import Context

    for repo in Context.instance().repositories():
        if repo.id == repository:
            dataset = repo.search(dataset_id)
            if dataset is None:
                raise KeyError(f"No dataset {dataset_id} in repository {repository}")
            return dataset
    raise KeyError(f"No datamaestro repository {repository}")


def staged_path(
    datadir: Path,
    dataset_id: str,
    resource: Optional[str] = None,
    repository: str = "ir",
) -> Path:
    """Where datamaestro keeps ``resource`` of ``dataset_id`` (the dataset's
    folder if ``resource`` is None) when ``DATAMAESTRO_DIR`` is ``datadir``

    Asked to datamaestro (in this process, whatever its ``DATAMAESTRO_DIR``)
    relative to its data folder: ``data/<repository>/<id as folders>/...``.
    """
    from datamaestro.context import Context

    dataset = dataset_wrapper(dataset_id, repository)
    path = dataset.resources[resource].path if resource else dataset.datapath
    return Path(datadir) / "data" / path.relative_to(Context.instance().datapath)


def mark_complete(datadir: Path, dataset_id: str, resource: str, repository="ir"):
    """Records ``resource`` of ``dataset_id`` as complete (``.state.json``),
    as datamaestro does after a download"""
    from datamaestro.download import ResourceState, ResourceStateFile

    folder = staged_path(datadir, dataset_id, repository=repository)
    ResourceStateFile(folder).write(resource, ResourceState.COMPLETE)
    return folder / ".state.json"


def _check_not_prepared(datadir: Path, ids: Iterable[str]):
    """Staging again where datamaestro has already prepared a dataset would
    leave what it derived from the old files (document stores, judged query
    ids): stage into a new folder instead"""
    for key in ids:
        dataset_id, _, repository = key.partition("@")
        folder = staged_path(datadir, dataset_id, repository=repository or "ir")
        if (folder / ".state.json").exists():
            raise RuntimeError(f"{key} was already prepared in {datadir}")


def _write(path: Path, lines: Iterable[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wt", encoding="utf-8") as fp:
        fp.writelines(lines)
    return path


# --- MS MARCO passages


def _tsv(rows: Iterable[Sequence]) -> List[str]:
    return ["\t".join(map(str, row)) + "\n" for row in rows]


def _msmarco_qrels(qrels: Mapping[str, Mapping[str, int]]) -> List[str]:
    """MS MARCO qrels: ``qid<TAB>0<TAB>pid<TAB>rel``, grouped by query"""
    return [
        f"{qid}\t0\t{pid}\t{rel}\n"
        for qid, judged in qrels.items()
        for pid, rel in judged.items()
    ]


def _trec_qrels(qrels: Mapping[str, Mapping[str, int]]) -> List[str]:
    """TREC DL qrels (``2019qrels-pass.txt``): ``qid Q0 pid rel``"""
    return [
        f"{qid} Q0 {pid} {rel}\n"
        for qid, judged in qrels.items()
        for pid, rel in judged.items()
    ]


def stage_msmarco(
    datadir: Path,
    *,
    documents: int = 2000,
    seed: int = 0,
    spec=None,
) -> dict:
    """Stages a miniature MS MARCO passage collection in the datamaestro
    folder ``datadir`` (the future ``DATAMAESTRO_DIR``)

    Texts, queries, relevance and teacher scores come from the package's
    debug collection (:func:`splade.debug_data.generate`, with ``documents``
    documents and seed ``seed``, or ``spec``), so that retrieval is
    learnable; its ids become integers as in MS MARCO: passage ``i`` (pid
    ``str(i)``) is the i-th document, in collection order. Query splits:

    - train (``queries.train.tsv``, ``qrels.train.tsv``, the teacher file and
      the id triples, both made of the debug teacher pairs): the training
      queries;
    - dev: the validation queries (one in ten unjudged, as in MS MARCO) and
      the dev.small queries; dev.small: 40% of the test queries;
    - trec2019, trec2020: 30% of the test queries each, one in six unjudged,
      with graded qrels (the relevant passages get 1 to 3, one of them 3,
      and five passages of other topics are judged 0); eval.small: the
      unjudged TREC queries.

    Ids staged: :data:`MSMARCO_IDS` (as ``prepare_dataset`` resolves them) and
    :data:`MSMARCO_TEXT_IDS` in datamaestro_text. The sentence-transformers
    hard negatives (:data:`HARD_NEGATIVES`) get their state written as
    complete; their files (``msmarco-hard-negatives.jsonl.gz``, also under
    the name datamaestro_ir asks for, and the cross-encoder scores pickle, a
    gzip-compressed dict qid (int) -> {pid (int): score}) are written in
    ``<datadir>/hf/sentence-transformers/msmarco-hard-negatives/``, the
    layout of datamaestro's ``DATAMAESTRO_HF_DATASETS_CACHE`` mirrors. That
    dataset prepares, but cannot be read offline: its configuration names the
    Hub repository (``local_path`` stays None even when a mirror serves the
    download: ``HFDownloader.download`` sets it on the resource after
    ``AbstractDataset.prepare`` has built the configuration), reading it
    needs the ``datasets`` library (not installed here), and its ``iter``
    fails (datamaestro_ir 0.5.0, data/huggingface.py:33 calls the
    keyword-only ``PairwiseSample`` with positional arguments).

    Returns a dict: ``datadir``; ``spec``; ``documents`` (the passage texts,
    indexed by pid); ``queries`` (split -> {qid: text}, splits ``train``,
    ``dev``, ``dev.small``, ``eval.small``, ``trec2019``, ``trec2020``);
    ``qrels`` (split -> {qid: {pid: rel}}); ``teacher`` (list of (pos_score,
    neg_score, qid, pos_pid, neg_pid)); ``triples`` (list of (qid, pos_pid,
    neg_pid)); ``hard_negatives`` (qid -> {"pos": [pid], "neg": {system:
    [pid]}}, ints); ``ce_scores`` (the pickled dict); ``files`` (dataset id,
    or ``<id>@text`` -> the staged paths); ``hf_mirror`` (the mirror root);
    ``hard_negatives_file``, ``ce_scores_file``; ``ids`` and ``text_ids``.
    Raises RuntimeError where datamaestro has already prepared one of these
    datasets (what it derived from the files would be stale): stage in a new
    folder.
    """
    from splade.debug_data import DebugCollectionSpec, generate

    datadir = Path(datadir)
    _check_not_prepared(datadir, MSMARCO_IDS + [f"{i}@text" for i in MSMARCO_TEXT_IDS])
    spec = spec or DebugCollectionSpec(seed=seed, documents=documents)
    collection = generate(spec)
    rng = np.random.RandomState(seed)

    pid = {docid: str(ix) for ix, (docid, _) in enumerate(collection.documents)}
    texts = [text for _, text in collection.documents]
    offsets = {"train": 100_000, "validation": 200_000, "test": 300_000}
    qid = {
        old: str(offsets[split] + n)
        for split, queries in collection.queries.items()
        for n, (old, _) in enumerate(queries)
    }

    def queries_of(split):
        return {qid[old]: text for old, text in collection.queries[split]}

    relevant = defaultdict(dict)
    for queries in collection.qrels.values():
        for old, docid, rel in queries:
            relevant[qid[old]][pid[docid]] = rel

    train = queries_of("train")
    validation = queries_of("validation")
    test = list(queries_of("test").items())
    n_small = max(1, len(test) * 2 // 5)
    half = (len(test) - n_small) // 2
    dev_small = dict(test[:n_small])
    trec = {
        "trec2019": dict(test[n_small : n_small + half]),
        "trec2020": dict(test[n_small + half :]),
    }

    queries = {"train": train, "dev": {**validation, **dev_small}}
    queries["dev.small"] = dev_small
    qrels = {"train": {q: relevant[q] for q in train}}
    unjudged = {q for n, q in enumerate(validation) if n % 10 == 9}
    qrels["dev"] = {q: relevant[q] for q in queries["dev"] if q not in unjudged}
    qrels["dev.small"] = {q: relevant[q] for q in dev_small}
    eval_small = {}
    for name, topics in trec.items():
        queries[name] = topics
        qrels[name] = {}
        for n, q in enumerate(topics):
            if n % 6 == 5:
                eval_small[q] = topics[q]
                continue
            grades = {p: int(rng.choice([1, 2, 3])) for p in relevant[q]}
            grades[min(grades)] = 3  # at least one highly relevant passage
            others = [p for p in map(str, rng.permutation(len(texts))[:20])]
            for p in [p for p in others if p not in relevant[q]][:5]:
                grades[p] = 0
            qrels[name][q] = grades
    queries["eval.small"] = eval_small

    teacher = [
        (pos_score, neg_score, qid[q], pid[pos], pid[neg])
        for pos_score, neg_score, q, pos, neg in collection.teacher
    ]
    triples = [(q, pos, neg) for _, _, q, pos, neg in teacher]

    generated = {
        "collection.tsv": _tsv(enumerate(texts)),
        "queries.train.tsv": _tsv(train.items()),
        "queries.dev.tsv": _tsv(queries["dev"].items()),
        "queries.eval.tsv": _tsv(eval_small.items()),
        "queries.dev.small.tsv": _tsv(dev_small.items()),
        "queries.eval.small.tsv": _tsv(eval_small.items()),
        "qrels.train.tsv": _msmarco_qrels(qrels["train"]),
        "qrels.dev.small.tsv": _msmarco_qrels(qrels["dev.small"]),
        "qrels.dev": _msmarco_qrels(qrels["dev"]),
        "q.train": _tsv(train.items()),
        "q.dev": _tsv(queries["dev"].items()),
        "triples": _tsv(triples),
        "teacher": [
            f"{ps:.4f}\t{ns:.4f}\t{q}\t{p}\t{n}\n" for ps, ns, q, p, n in teacher
        ],
    }
    for name in trec:
        generated[f"{name}.queries"] = _tsv(queries[name].items())
        generated[f"{name}.qrels"] = _trec_qrels(qrels[name])

    files = defaultdict(list)
    for repository, dataset_id, resource, content in MSMARCO_LAYOUT:
        path = staged_path(datadir, dataset_id, resource, repository)
        key = dataset_id if repository == "ir" else f"{dataset_id}@{repository}"
        for name, source in content.items():
            files[key].append(_write(path / name if name else path, generated[source]))

    # Hugging Face hard negatives: files in a mirror, resource marked complete
    hard_negatives, ce_scores = _hard_negatives(teacher, qrels["train"], rng, texts)
    mirror = datadir / "hf"
    folder = mirror / HF_REPOSITORY
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(
        json.dumps({"qid": q, **record}) + "\n" for q, record in hard_negatives.items()
    ).encode("utf-8")
    for name in (HARD_NEGATIVES_FILE, HARD_NEGATIVES_DM_FILE):
        # mtime=0: the same bytes on every run
        (folder / name).write_bytes(gzip.compress(lines, mtime=0))
    (folder / CE_SCORES_FILE).write_bytes(
        gzip.compress(pickle.dumps(ce_scores), mtime=0)
    )
    files[HARD_NEGATIVES].append(mark_complete(datadir, HARD_NEGATIVES, "dataset"))

    return {
        "datadir": datadir,
        "spec": spec,
        "documents": texts,
        "queries": queries,
        "qrels": qrels,
        "teacher": teacher,
        "triples": triples,
        "hard_negatives": hard_negatives,
        "ce_scores": ce_scores,
        "files": dict(files),
        "hf_mirror": mirror,
        "hard_negatives_file": folder / HARD_NEGATIVES_FILE,
        "ce_scores_file": folder / CE_SCORES_FILE,
        "ids": list(MSMARCO_IDS),
        "text_ids": list(MSMARCO_TEXT_IDS),
    }


def _hard_negatives(teacher, qrels, rng, texts):
    """Hard negatives per training query (the teacher's negatives, as if
    mined by BM25, and random passages) and cross-encoder scores (the teacher
    scores where known)"""
    scores = defaultdict(dict)
    negatives = defaultdict(list)
    for pos_score, neg_score, q, pos, neg in teacher:
        scores[int(q)][int(pos)] = round(float(pos_score), 4)
        scores[int(q)][int(neg)] = round(float(neg_score), 4)
        if int(neg) not in negatives[q]:
            negatives[q].append(int(neg))
    records = {}
    for q, judged in qrels.items():
        positives = sorted(int(p) for p, rel in judged.items() if rel > 0)
        random = [
            int(p)
            for p in rng.permutation(len(texts))[:10]
            if str(p) not in judged and int(p) not in negatives[q]
        ][:5]
        for p in positives:
            scores[int(q)].setdefault(p, round(float(rng.normal(7, 0.5)), 4))
        for p in random:
            scores[int(q)].setdefault(p, round(float(rng.normal(-3, 1)), 4))
        records[int(q)] = {
            "pos": positives,
            "neg": {
                "bm25": negatives[q],
                "msmarco-distilbert-base-tas-b": random,
            },
        }
    return records, {q: dict(s) for q, s in scores.items()}


# --- BEIR


def beir_dataset(name: str) -> str:
    """The datamaestro id of the dataset that downloads the BEIR zip
    ``<name>.zip`` (e.g. ``scifact`` -> ``org.beir.scifact.collection``,
    ``arguana`` -> ``org.beir.arguana``); ids (``org.beir...``) are returned
    as they are"""
    if name.startswith("org.beir."):
        return name
    from datamaestro.context import Context
    from datamaestro.download.archive import ZipDownloader

    repository = next(r for r in Context.instance().repositories() if r.id == "ir")
    found = []
    for dataset in repository:
        if not dataset.id.startswith("org.beir."):
            continue
        for resource in dataset.resources.values():
            url = getattr(resource, "url", "")
            if isinstance(resource, ZipDownloader) and url.endswith(f"/{name}.zip"):
                found.append(dataset.id)
    if len(found) != 1:
        raise KeyError(f"BEIR dataset {name}: found {found or 'no dataset'}")
    return found[0]


def _splits(dataset) -> List[str]:
    """Splits whose qrels datamaestro copies from the zip (``FilesCopy``)"""
    from datamaestro.download import FilesCopy

    splits = []
    for resource in dataset.resources.values():
        if not isinstance(resource, FilesCopy):
            continue
        for source in resource._files.values():
            if match := re.fullmatch(r"qrels/(.+)\.tsv", source):
                splits.append(match.group(1))
    return splits or ["test"]


def stage_beir(
    datadir: Path,
    name: str,
    corpus: Iterable[Tuple[str, str, str]],
    queries: Union[Mapping[str, str], Iterable[Tuple[str, str]]],
    qrels: Mapping[str, Iterable[Tuple[str, str, int]]],
) -> dict:
    """Stages a BEIR dataset, as if its zip had been downloaded and unzipped

    ``name`` is the BEIR name (``scifact``, ``nfcorpus``, ``arguana``...: the
    zip is ``<name>.zip``) or the datamaestro id of the dataset owning the zip
    (the ``.collection`` dataset of collections with several splits);
    ``corpus`` yields (docid, title, text); ``queries`` maps qid -> text;
    ``qrels`` maps a split (``test``, ``train``, ``dev``) -> (qid, docid,
    score) triples. Splits that datamaestro expects but that are not given
    get a qrels file with only its header. Raises RuntimeError where
    datamaestro has already prepared the dataset (stage in a new folder).

    Writes the zip's files (``corpus.jsonl`` with ``_id``/``title``/``text``,
    ``queries.jsonl`` with ``_id``/``text``, ``qrels/<split>.tsv`` with the
    header ``query-id<TAB>corpus-id<TAB>score``) in the zip resource's folder,
    ``data/ir/org/beir/<dataset>/<zip name>/``. On the first preparation,
    datamaestro builds ``store/`` (the document store), ``files/`` (the
    queries and qrels) and ``judged_qids_<split>.txt`` from them, then
    deletes that folder (the zip is a transient resource).

    Returns a dict: ``dataset`` (the id owning the zip), ``ids`` (the ids
    that prepare offline: that one and, for a collection, one per split),
    ``folder``, ``splits``, and the counts of ``documents``, ``queries`` and
    ``qrels`` (per split).
    """
    dataset_id = beir_dataset(name)
    dataset = dataset_wrapper(dataset_id)
    folder = staged_path(datadir, dataset_id, "data")
    splits = _splits(dataset)
    unknown = set(qrels) - set(splits)
    if unknown:
        raise ValueError(f"{dataset_id} has splits {splits}, not {sorted(unknown)}")
    ids = [dataset_id]
    if dataset_id.endswith(".collection"):
        ids += [f"{dataset_id[: -len('.collection')]}.{split}" for split in splits]
    _check_not_prepared(datadir, ids)

    documents = _write(
        folder / "corpus.jsonl",
        (
            json.dumps({"_id": docid, "title": title, "text": text}) + "\n"
            for docid, title, text in corpus
        ),
    )
    if isinstance(queries, Mapping):
        queries = queries.items()
    topics = _write(
        folder / "queries.jsonl",
        (json.dumps({"_id": qid, "text": text}) + "\n" for qid, text in queries),
    )
    counts = {}
    for split in splits:
        rows = list(qrels.get(split, []))
        counts[split] = len(rows)
        _write(
            folder / "qrels" / f"{split}.tsv",
            ["query-id\tcorpus-id\tscore\n"] + _tsv(rows),
        )

    return {
        "dataset": dataset_id,
        "ids": ids,
        "folder": folder,
        "splits": splits,
        "documents": _count_lines(documents),
        "queries": _count_lines(topics),
        "qrels": counts,
    }


def _count_lines(path: Path) -> int:
    with path.open("rb") as fp:
        return sum(1 for _ in fp)


def _read_tsv(path: Path) -> Dict[str, str]:
    with path.open("rt", encoding="utf-8") as fp:
        return dict(line.rstrip("\n").split("\t", 1) for line in fp if line.strip())


def _read_trec_qrels(path: Path) -> List[Tuple[str, str, int]]:
    with path.open("rt", encoding="utf-8") as fp:
        return [
            (qid, docid, int(rel))
            for qid, _, docid, rel in (line.split() for line in fp if line.strip())
        ]


def stage_beir_from_tsv(datadir: Path, beir_name: str, folder: Path) -> dict:
    """Stages the BEIR dataset ``beir_name`` (see :func:`stage_beir`) from a
    collection in the format of ``shared/data`` (``docs.tsv``: docid TAB
    text, with ``titles.tsv``: docid TAB title when there are titles, which
    then begin the texts; ``queries.<split>.tsv`` and ``qrels.<split>.txt``
    (TREC qrels) for each split, or ``queries.tsv`` and ``qrels.txt`` for a
    single ``test`` split)"""
    folder = Path(folder)
    texts = _read_tsv(folder / "docs.tsv")
    titles = (
        _read_tsv(folder / "titles.tsv") if (folder / "titles.tsv").exists() else {}
    )

    def document(docid: str, text: str):
        title = titles.get(docid, "")
        if title and text.startswith(title):
            return docid, title, text[len(title) :].lstrip()
        return docid, "", text

    splits = [
        path.name[len("qrels.") : -len(".txt")]
        for path in sorted(folder.glob("qrels.*.txt"))
    ]
    splits = [s for s in splits if (folder / f"queries.{s}.tsv").exists()]
    if splits:
        qrels = {s: _read_trec_qrels(folder / f"qrels.{s}.txt") for s in splits}
        queries = {}
        for split in splits:
            queries.update(_read_tsv(folder / f"queries.{split}.tsv"))
    else:
        qrels = {"test": _read_trec_qrels(folder / "qrels.txt")}
        queries = _read_tsv(folder / "queries.tsv")

    corpus = (document(docid, text) for docid, text in texts.items())
    return stage_beir(datadir, beir_name, corpus, queries, qrels)


# --- Preparing in a separate process


def prepare_offline(
    datadir: Path, requests: Sequence[dict], env: Optional[dict] = None
) -> dict:
    """Prepares datasets in a new Python process whose ``DATAMAESTRO_DIR``
    is ``datadir``, and returns what it read from them

    A separate process, since datamaestro reads ``DATAMAESTRO_DIR`` once and
    keeps one context, its repositories and every prepared configuration
    (with its paths) for the life of the process. ``env`` is the process's
    environment (by default, this one's).

    Each request is a dict: ``id`` (a dataset id, ``<id>@<repository>`` to
    take it from a given repository, e.g. ``@text``), and optionally
    ``lookup`` (document ids whose text to return), ``all_documents`` (return
    every document's text), ``samples`` (the number of training samples to
    return, 5 by default) and ``expect_error`` (an error is returned as
    ``error`` instead of stopping everything). See :func:`_summary` for what
    comes back, per id (the key of the request), with ``repository`` (the
    datamaestro repository the dataset came from), ``datapath`` (its
    folder), ``is_prepared`` and ``downloads``, the download functions it
    called (each of them is replaced by one that refuses to run). The key
    ``downloads`` lists them all, and ``network_guard`` says whether
    tests/support/network_guard.py was installed in the process.
    """
    env = dict(os.environ if env is None else env)
    env["DATAMAESTRO_DIR"] = str(datadir)
    request_file = Path(datadir) / "requests.json"
    result_file = Path(datadir) / "results.json"
    request_file.write_text(json.dumps(list(requests)))
    process = subprocess.run(
        [sys.executable, __file__, str(request_file), str(result_file)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if process.returncode != 0:
        raise RuntimeError(
            f"Preparing the datasets failed ({process.returncode}):\n"
            f"{process.stdout[-5000:]}\n{process.stderr[-10000:]}"
        )
    return json.loads(result_file.read_text())


_DOWNLOADS: List[str] = []


def _refuse_downloads():
    """Replaces every datamaestro download function by one that records the
    call and fails"""
    import datamaestro.data.huggingface as hf_data
    import datamaestro.download.huggingface as hf
    import datamaestro.utils
    from datamaestro.context import Context
    from datamaestro.download.archive import ArchiveDownloader
    from datamaestro.download.single import ConcatDownloader, FileDownloader
    from datamaestro_ir.download.docstore import streaming_docstore_builder

    def refuse(name):
        def refused(*args, **kwargs):
            _DOWNLOADS.append(f"{name}{args[1:2]}")
            raise RuntimeError(f"Download attempted during tests: {name}")

        return refused

    patches = [
        (Context, "downloadURL"),
        (datamaestro.utils, "downloadURL"),
        (FileDownloader, "_download"),
        (ConcatDownloader, "_download"),
        (ArchiveDownloader, "_download"),
        (hf.HFDownloader, "download"),
        (hf.HFSnapshotDownloader, "_download"),
        (hf, "hf_download_and_prepare"),
        (hf_data, "hf_download_and_prepare"),
        (streaming_docstore_builder, "_open_stream"),
    ]
    for owner, name in patches:
        setattr(owner, name, refuse(f"{getattr(owner, '__name__', owner)}.{name}"))


def _text(item) -> dict:
    record = {"text": item.text}
    for field in ("title", "body"):
        if hasattr(item, field):
            record[field] = getattr(item, field)
    return record


def _documents(store, request: dict) -> dict:
    summary = {"type": type(store).__name__}
    try:
        summary["documentcount"] = store.documentcount
        texts = {d["id"]: _text(d["text_item"]) for d in store.iter()}
    except NotImplementedError:
        summary["path"] = str(store.path)
        return summary
    summary["iterated"] = len(texts)
    summary["first"] = list(texts)[:3]
    if request.get("all_documents"):
        summary["all"] = texts
    summary["lookup"] = {
        docid: _text(store.document_ext(docid)["text_item"])
        for docid in request.get("lookup", [])
    }
    return summary


def _topic(record) -> Tuple[str, str]:
    if isinstance(record, dict):
        return record["id"], record["text_item"].text
    # datamaestro_text records (datamaestro.record.Record)
    from datamaestro_text.data.ir.base import IDItem, TextItem

    return record[IDItem].id, record[TextItem].text


def _topics(topics) -> dict:
    return dict(_topic(t) for t in topics.iter())


def _qrels(assessments) -> dict:
    return {
        topic.topic_id: {a.doc_id: a.rel for a in topic.assessments}
        for topic in assessments.iter()
    }


def _summary(config, request: dict) -> dict:
    """What a prepared dataset holds: ``type``; for documents ``documents``
    (``documentcount``, ``iterated``, ``first`` ids, ``lookup``: id -> text);
    ``topics`` (id -> text); ``qrels`` (qid -> {docid: rel}); for training
    data ``count`` and ``samples``"""
    # By class name: datamaestro_ir and datamaestro_text have their own types
    kinds = {cls.__name__ for cls in type(config).__mro__}
    k = request.get("samples", 5)
    summary = {"type": type(config).__name__}
    if "Adhoc" in kinds:
        summary["documents"] = _documents(config.documents, request)
        summary["topics"] = _topics(config.topics)
        summary["qrels"] = _qrels(config.assessments)
    elif "Documents" in kinds:
        summary["documents"] = _documents(config, request)
    elif "Topics" in kinds:
        summary["topics"] = _topics(config)
    elif "AdhocAssessments" in kinds:
        summary["qrels"] = _qrels(config)
    elif "PairwiseDistillationSamplesTSV" in kinds:
        # Read as xpmir does (xpmir.letor.distillation.samplers)
        with config.path.open("rt") as fp:
            samples = [config._parse_line(line) for line in fp]
        summary["count"] = len(samples)
        summary["samples"] = [
            [s.query["id"]]
            + [x for d in s.documents for x in (d.document["id"], d.score)]
            for s in samples[:k]
        ]
    elif "TrainingTripletsLines" in kinds:
        triples = list(config.iter())
        summary["count"] = len(triples)
        summary["samples"] = [[q["id"], p["id"], n["id"]] for q, p, n in triples[:k]]
    elif "HuggingFacePairwiseSampleDataset" in kinds:
        summary.update(
            repo_id=config.repo_id,
            data_files=config.data_files,
            split=config.split,
            local_path=config.local_path and str(config.local_path),
        )
    else:
        summary["path"] = str(getattr(config, "path", ""))
    return summary


def stage_minilm_scores(datadir: Path, scores: Mapping) -> Path:
    """Stages the package's ``splade.msmarco.train.minilm-scores`` (the
    cross-encoder scores of sentence-transformers' msmarco-hard-negatives):
    the pickle of ``scores`` (qid -> {pid: score}), decompressed, where its
    downloader leaves it"""
    path = staged_path(
        datadir, "splade.msmarco.train.minilm-scores", "SCORES", repository="splade"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fp:
        pickle.dump(dict(scores), fp)
    return path


def _main(request_file: str, result_file: str):
    """Prepares the requested datasets (in this process: see
    :func:`prepare_offline`)"""
    import socket

    from datamaestro import prepare_dataset
    from datamaestro.definitions import AbstractDataset

    _refuse_downloads()
    results = {}
    for request in json.loads(Path(request_file).read_text()):
        dataset_id, _, repository = request["id"].partition("@")
        before = len(_DOWNLOADS)
        try:
            if repository:
                wrapper = dataset_wrapper(dataset_id, repository)
                config = wrapper.prepare(download=True)
            else:
                wrapper = AbstractDataset.find(dataset_id)
                config = prepare_dataset(dataset_id)
            summary = _summary(config, request)
            summary["is_prepared"] = wrapper.is_prepared()
        except Exception as exc:
            if not request.get("expect_error"):
                raise
            summary = {"error": f"{exc!r} (from {exc.__cause__!r})"}
        summary["repository"] = wrapper.repository.id
        summary["datapath"] = str(wrapper.datapath)
        summary["downloads"] = _DOWNLOADS[before:]
        results[request["id"]] = summary
    results["downloads"] = _DOWNLOADS
    # Whether tests/support/network_guard.py is installed (as sitecustomize)
    results["network_guard"] = socket.socket.connect.__name__ == "guarded_connect"
    Path(result_file).write_text(json.dumps(results))


if __name__ == "__main__":
    _main(*sys.argv[1:])
