"""Files of a local collection: documents, queries, relevance judgements
and teacher scores (``data.local`` in YAML), read, checked and written in the
pipeline's formats

Supported formats (chosen by the file name):

- documents: ``id<TAB>text`` (TSV), or BEIR ``corpus.jsonl`` (``*.jsonl``:
  ``_id``, ``title``, ``text``);
- queries: ``id<TAB>text`` (TSV), or BEIR ``queries.jsonl`` (``_id``,
  ``text``);
- relevance judgements: TREC qrels (``qid 0 docid rel``, blank-separated),
  or BEIR qrels (``*.tsv`` with the header ``query-id<TAB>corpus-id<TAB>score``);
- teacher scores: Hofstätter et al.'s TSV (``pos_score<TAB>neg_score<TAB>qid
  <TAB>pos_docid<TAB>neg_docid``).

Files are read once when the experiment is built (:func:`read_collection`,
called by :mod:`splade.local_import`): a malformed line, a duplicate id, a
judgement or teacher line naming an unknown document or query, or bytes that
are not UTF-8 stop the run *before* any task starts, with the file and line;
empty documents and queries are skipped with a warning giving their count.
The import tasks then write the collection in the formats of the MS MARCO
datasets (an impact-index document store, TSV topics, TREC qrels), so the rest
of the pipeline does not know where the data came from.

Plain Python: nothing here knows experimaestro.
"""

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple


class CollectionError(ValueError):
    """A problem in a collection file, at a given line (1-based)"""

    def __init__(self, path: Path, line: Optional[int], message: str):
        where = f"{path}, line {line}" if line else str(path)
        super().__init__(f"{where}: {message}")
        self.path, self.line = path, line


# --- Readers: each yields (line number, record), and raises CollectionError


def _lines(path: Path) -> Iterator[Tuple[int, str]]:
    """Numbered lines of a UTF-8 text file, without their end of line"""
    try:
        fp = path.open("rb")
    except OSError as e:
        raise CollectionError(path, None, f"cannot be read ({e.strerror})") from e
    with fp:
        for number, raw in enumerate(fp, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise CollectionError(
                    path, number, f"not UTF-8 ({e.reason} at byte {e.start})"
                ) from e
            if "\0" in line:
                raise CollectionError(path, number, "contains a NUL character")
            yield number, line.rstrip("\r\n")


def _jsonl(path: Path, keys: List[str]) -> Iterator[Tuple[int, List[str]]]:
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise CollectionError(path, number, f"not JSON ({e.msg})") from e
        if not isinstance(record, dict):
            raise CollectionError(path, number, "not a JSON object")
        values = []
        for key in keys:
            value = record.get(key, "" if key == "title" else None)
            if isinstance(value, (int, float)) and key == "_id":
                value = str(value)
            if not isinstance(value, str):
                raise CollectionError(path, number, f"no string field {key!r}")
            values.append(value)
        yield number, values


def _tsv_pairs(path: Path, what: str) -> Iterator[Tuple[int, str, str]]:
    for number, line in _lines(path):
        if not line.strip():
            continue
        if "\t" not in line:
            raise CollectionError(path, number, f"expected <id><TAB><{what}>")
        identifier, text = line.split("\t", 1)
        yield number, identifier.strip(), text


def read_documents(path: Path) -> Iterator[Tuple[int, str, str, str]]:
    """(line, id, title, text) of a TSV or BEIR JSONL documents file"""
    if path.suffix == ".jsonl":
        for number, (docid, title, text) in _jsonl(path, ["_id", "title", "text"]):
            yield number, docid.strip(), title, text
    else:
        for number, docid, text in _tsv_pairs(path, "text"):
            yield number, docid, "", text


def read_queries(path: Path) -> Iterator[Tuple[int, str, str]]:
    """(line, id, text) of a TSV or BEIR JSONL queries file"""
    if path.suffix == ".jsonl":
        for number, (qid, text) in _jsonl(path, ["_id", "text"]):
            yield number, qid.strip(), text
    else:
        yield from _tsv_pairs(path, "text")


BEIR_QRELS_HEADER = ["query-id", "corpus-id", "score"]


def read_qrels(path: Path) -> Iterator[Tuple[int, str, str, int]]:
    """(line, query id, document id, relevance) of TREC or BEIR qrels"""
    for number, line in _lines(path):
        if not line.strip():
            continue
        fields = line.split("\t") if path.suffix == ".tsv" else line.split()
        fields = [f.strip() for f in fields]
        if path.suffix == ".tsv":
            if number == 1 and fields == BEIR_QRELS_HEADER:
                continue
            if len(fields) != 3:
                raise CollectionError(
                    path, number, "expected query-id<TAB>corpus-id<TAB>score (BEIR)"
                )
            qid, docid, rel = fields
        else:
            if len(fields) != 4:
                raise CollectionError(path, number, "expected qid 0 docid rel (TREC)")
            qid, _, docid, rel = fields
        try:
            relevance = int(rel)
        except ValueError as e:
            raise CollectionError(
                path, number, f"relevance {rel!r} is not an integer"
            ) from e
        yield number, qid, docid, relevance


def read_teacher(path: Path) -> Iterator[Tuple[int, float, float, str, str, str]]:
    """(line, positive score, negative score, query id, positive document id,
    negative document id) of a teacher scores file"""
    for number, line in _lines(path):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != 5:
            raise CollectionError(
                path, number, "expected pos_score, neg_score, qid, pos_id, neg_id"
            )
        try:
            scores = float(fields[0]), float(fields[1])
        except ValueError as e:
            raise CollectionError(path, number, "scores must be numbers") from e
        if any(s != s or s in (float("inf"), float("-inf")) for s in scores):
            raise CollectionError(path, number, "scores must be finite")
        yield (number, *scores, *fields[2:])


# --- Inspection: everything checked before the experiment starts


@dataclass
class SplitSummary:
    """What was found in the files of a split"""

    queries: int = 0
    """Queries kept (non-empty; judged ones only when there are qrels)"""
    skipped_empty: int = 0
    skipped_unjudged: int = 0
    judgements: int = 0
    teacher: int = 0


@dataclass
class CollectionSummary:
    documents: int = 0
    """Number of documents (empty ones excluded)"""
    empty_documents: int = 0
    splits: Dict[str, SplitSummary] = field(default_factory=dict)
    documents_digest: str = ""
    """Digest of the documents file's content"""
    splits_digest: str = ""
    """Digest of the content of the splits' files"""

    @property
    def digest(self) -> str:
        """Identifies the whole collection"""
        return f"{self.documents_digest}-{self.splits_digest}"

    def warnings(self, documents: bool = True) -> List[str]:
        """What was skipped; ``documents=False``: in the splits only"""
        warnings = []
        if documents and self.empty_documents:
            warnings.append(f"{self.empty_documents} empty documents skipped")
        for name, split in self.splits.items():
            if split.skipped_empty:
                warnings.append(f"split {name}: {split.skipped_empty} empty queries")
            if split.skipped_unjudged:
                warnings.append(
                    f"split {name}: {split.skipped_unjudged} queries without"
                    " relevance judgements skipped"
                )
        return warnings


def _document_ids(path: Path, summary: CollectionSummary) -> Set[str]:
    ids: Dict[str, int] = {}
    for number, docid, title, text in read_documents(path):
        if not docid:
            raise CollectionError(path, number, "empty document id")
        if docid in ids:
            raise CollectionError(
                path, number, f"duplicate document id {docid!r} (line {ids[docid]})"
            )
        ids[docid] = number
        if title.strip() or text.strip():
            summary.documents += 1
        else:
            summary.empty_documents += 1
    if summary.documents == 0:
        raise CollectionError(path, None, "no documents")
    return set(ids)


def _queries(path: Path) -> Dict[str, str]:
    queries: Dict[str, Tuple[int, str]] = {}
    for number, qid, text in read_queries(path):
        if not qid:
            raise CollectionError(path, number, "empty query id")
        if qid in queries:
            raise CollectionError(
                path, number, f"duplicate query id {qid!r} (line {queries[qid][0]})"
            )
        queries[qid] = (number, text)
    return {qid: text for qid, (_, text) in queries.items()}


def _qrels(path: Path, queries: Dict[str, str], documents: Set[str]):
    """Relevance judgements, checked against queries and documents"""
    qrels: Dict[str, Dict[str, int]] = {}
    for number, qid, docid, rel in read_qrels(path):
        if qid not in queries:
            raise CollectionError(path, number, f"unknown query id {qid!r}")
        if docid not in documents:
            raise CollectionError(path, number, f"unknown document id {docid!r}")
        previous = qrels.setdefault(qid, {}).get(docid)
        if previous is not None and previous != rel:
            raise CollectionError(
                path, number, f"{qid} {docid} judged twice ({previous} and {rel})"
            )
        qrels[qid][docid] = rel
    return qrels


def _kept_queries(queries: Dict[str, str], qrels, split: SplitSummary):
    kept = {}
    for qid, text in queries.items():
        if not text.strip():
            split.skipped_empty += 1
        elif qrels is not None and not any(r > 0 for r in qrels.get(qid, {}).values()):
            split.skipped_unjudged += 1
        else:
            kept[qid] = text
    split.queries = len(kept)
    return kept


def _digest(paths: List[Path]) -> str:
    sha = hashlib.sha256()
    for path in paths:
        sha.update(str(path).encode("utf-8") + b"\0")
        with path.open("rb") as fp:
            while chunk := fp.read(1 << 20):
                sha.update(chunk)
    return sha.hexdigest()


def _split_files(splits: Dict[str, Dict[str, Optional[Path]]]):
    return [
        path
        for split in splits.values()
        for path in (split["queries"], split["qrels"], split["teacher"])
        if path is not None
    ]


def read_collection(
    documents: Path,
    splits: Dict[str, Dict[str, Optional[Path]]],
    write: Optional[Path] = None,
    parts: Tuple[str, ...] = ("documents", "splits"),
) -> CollectionSummary:
    """Reads and checks a collection; writes it in ``write`` when given

    :param splits: split name -> {"queries": path, "qrels": path or None,
        "teacher": path or None}
    :param parts: what to write, ``documents`` (the document store) and/or
        ``splits`` (topics, qrels and teacher scores)
    """
    summary = CollectionSummary()
    docids = _document_ids(documents, summary)
    outputs = {}
    for name, paths in splits.items():
        split = summary.splits[name] = SplitSummary()
        queries = _queries(paths["queries"])
        qrels = _qrels(paths["qrels"], queries, docids) if paths["qrels"] else None
        split.judgements = sum(len(q) for q in qrels.values()) if qrels else 0
        # Queries of teacher pairs are kept even when not judged
        kept = _kept_queries(queries, None if paths["teacher"] else qrels, split)
        if split.queries == 0:
            raise CollectionError(
                paths["queries"], None, f"no usable query in split {name}"
            )
        if paths["teacher"]:
            path = paths["teacher"]
            for number, *_, qid, pos, neg in read_teacher(path):
                if qid not in queries:
                    raise CollectionError(path, number, f"unknown query id {qid!r}")
                for docid in (pos, neg):
                    if docid not in docids:
                        raise CollectionError(
                            path, number, f"unknown document id {docid!r}"
                        )
                split.teacher += 1
        outputs[name] = (kept, qrels)
    summary.documents_digest = _digest([documents])
    summary.splits_digest = _digest(_split_files(splits))
    if write is not None:
        write.mkdir(parents=True, exist_ok=True)
        if "documents" in parts:
            _write_documents(documents, write)
        if "splits" in parts:
            _write_splits(splits, outputs, write)
    return summary


def _write_documents(documents: Path, folder: Path):
    import impact_index

    store = impact_index.DocumentStoreBuilder(str(folder / "docstore"))
    for _, docid, title, text in read_documents(documents):
        if title.strip() or text.strip():
            store.add({"id": docid}, f"{title}\0{text}".encode("utf-8"))
    store.build()


def _write_splits(splits, outputs, folder: Path):
    for name, (queries, qrels) in outputs.items():
        with (folder / f"{name}.queries.tsv").open("wt", encoding="utf-8") as fp:
            for qid, text in queries.items():
                text = " ".join(text.split())
                fp.write(f"{qid}\t{text}\n")
        if qrels is not None:
            with (folder / f"{name}.qrels.txt").open("wt", encoding="utf-8") as fp:
                for qid, judged in qrels.items():
                    for docid, rel in judged.items():
                        fp.write(f"{qid} 0 {docid} {rel}\n")
        if splits[name]["teacher"]:
            with (folder / f"{name}.teacher.tsv").open("wt", encoding="utf-8") as fp:
                for _, pos_score, neg_score, qid, pos, neg in read_teacher(
                    splits[name]["teacher"]
                ):
                    fp.write(f"{pos_score}\t{neg_score}\t{qid}\t{pos}\t{neg}\n")
