"""Inference-free query sides: a query is the bag of its tokens, weighted by
an IDF table (OpenSearch's inference-free models), and the IDF table itself

OpenSearch's ``opensearch-neural-sparse-encoding-doc-*`` models (Geng et al.,
"Towards Competitive Search Relevance For Inference-Free Learned Sparse
Retrievers", 2024, https://arxiv.org/abs/2411.04403) encode documents as
SPLADE does and queries with a tokenizer and a table look-up: the weight of
each of the query's tokens is its IDF, read from the ``idf.json`` file
(token -> weight) shipped in the model folder. sentence-transformers builds
such a model with a ``Router``: ``SparseStaticEmbedding`` (the IDF table,
``SparseStaticEmbedding.from_json``) for queries, the masked language model
and ``SpladePooling`` for documents.

- :class:`IdfQueryEncoder`: the query side (each token of the query once,
  weighted by its IDF; the tokens the tokenizer adds, [CLS], [SEP] and
  [PAD], have no weight, as sentence-transformers tokenizes queries without
  them);
- the IDF table: :class:`ModelIdf` (the ``idf.json`` of a model folder or
  hub id), :class:`IdfFile` (a file), made by :class:`ComputeIdf` (a task
  on the training documents).
"""

import json
import logging
import math
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from datamaestro_ir.data import Documents
from experimaestro import Annotated, Config, Param, Task, field, pathgenerator, tqdm
from xpm_torch.module import initialized
from xpmir.text import TokenizerOptions
from xpmir.text.encoders import InputType, TextEncoderBase, TextsRepresentationOutput
from xpmir.text.huggingface import HFTokenizerBase

__all__ = [
    "ComputeIdf",
    "IdfFile",
    "IdfQueryEncoder",
    "IdfTable",
    "ModelIdf",
    "bm25_idf",
    "read_idf",
]

logger = logging.getLogger(__name__)

#: The file of an inference-free model folder that holds its IDF table
IDF_FILE = "idf.json"


class IdfTable(Config):
    """An IDF table: token -> weight"""

    def table(self) -> Dict[str, float]:
        raise NotImplementedError()

    def vector(self, tokenizer) -> torch.Tensor:
        """The weights as a vector over the tokenizer's vocabulary (0 for
        the tokens the table does not name)"""
        return idf_vector(self.table(), tokenizer)


class IdfFile(IdfTable):
    """An ``idf.json`` file"""

    path: Param[Path]
    """The file (token -> weight, JSON)"""

    def table(self) -> Dict[str, float]:
        return read_idf(self.path)


class ModelIdf(IdfTable):
    """The ``idf.json`` of a model folder or Hugging Face hub id, as
    OpenSearch ships its inference-free models"""

    hf_id: Param[str]
    """The folder or hub id"""

    def table(self) -> Dict[str, float]:
        return read_idf(model_idf_path(self.hf_id))


def model_idf_path(hf_id: str) -> Path:
    """Where the ``idf.json`` of a folder or hub id is (downloaded for a hub
    id)"""
    folder = Path(hf_id)
    if folder.is_dir():
        path = folder / IDF_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{folder} has no {IDF_FILE} (the IDF table of an inference-free"
                " model, as OpenSearch ships it); set model.idf=documents to"
                " compute one on the documents"
            )
        return path
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(hf_id, IDF_FILE))


def read_idf(path) -> Dict[str, float]:
    """token -> weight, from an ``idf.json`` file"""
    with Path(path).open("rt", encoding="utf-8") as fp:
        return {str(token): float(weight) for token, weight in json.load(fp).items()}


def idf_vector(table: Dict[str, float], tokenizer) -> torch.Tensor:
    """The weights of a table over a Hugging Face tokenizer's vocabulary
    (tokens unknown to the tokenizer are left out)"""
    vocabulary = tokenizer.get_vocab()
    vector = torch.zeros(len(tokenizer), dtype=torch.float32)
    for token, weight in table.items():
        index = vocabulary.get(token)
        if index is not None:
            vector[index] = weight
    return vector


def bm25_idf(documents: int, frequency: np.ndarray) -> np.ndarray:
    """Lucene's BM25 IDF: log(1 + (N - df + 0.5) / (df + 0.5))"""
    frequency = np.asarray(frequency, dtype=np.float64)
    return np.log1p((documents - frequency + 0.5) / (frequency + 0.5))


class ComputeIdf(Task):
    """The IDF of every token of a tokenizer's vocabulary over a document
    collection (:func:`bm25_idf`, the number of documents holding the token
    once tokenized), written as OpenSearch's ``idf.json`` (token -> weight);
    special tokens get no weight"""

    documents: Param[Documents]
    """The documents"""

    tokenizer: Param[str]
    """The Hugging Face tokenizer (hub id or folder)"""

    maxlen: Param[Optional[int]] = field(default=None, ignore_default=True)
    """Tokens of a document counted (the first ones; None: all)"""

    batch_size: Param[int] = field(default=1024, ignore_default=True)
    """Documents tokenized at once"""

    path: Annotated[Path, pathgenerator(IDF_FILE)]
    """The table (token -> weight, JSON)"""

    def task_outputs(self, dep) -> IdfFile:
        return dep(IdfFile.C(path=self.path))

    def execute(self):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self.tokenizer)
        texts = (r["text_item"].text for r in self.documents.iter_documents())
        table = document_idf(
            tqdm(texts, desc="IDF"), tokenizer, self.maxlen, self.batch_size
        )
        self.path.write_text(json.dumps(table))


def document_idf(
    texts, tokenizer, maxlen: Optional[int] = None, batch_size: int = 1024
) -> Dict[str, float]:
    """token -> :func:`bm25_idf` over the texts (tokenized with the Hugging
    Face ``tokenizer``, the first ``maxlen`` tokens), for every token of the
    vocabulary; special tokens get 0"""
    frequency = np.zeros(len(tokenizer), dtype=np.int64)
    count = 0
    batch: List[str] = []

    def flush():
        encoded = tokenizer(
            batch,
            add_special_tokens=False,
            truncation=maxlen is not None,
            max_length=maxlen,
        )["input_ids"]
        for ids in encoded:
            frequency[np.unique(np.asarray(ids, dtype=np.int64))] += 1
        batch.clear()

    for text in texts:
        batch.append(text)
        count += 1
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    weights = bm25_idf(count, frequency)
    weights[sorted(set(tokenizer.all_special_ids))] = 0
    vocabulary = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    table = {token: float(weights[index]) for token, index in vocabulary}
    logger.info(
        "IDF of %d tokens over %d documents (max %.3f)",
        len(table),
        count,
        max(table.values()) if table else math.nan,
    )
    return table


class IdfQueryEncoder(TextEncoderBase[InputType, TextsRepresentationOutput]):
    """The query side of an inference-free model: each token of the query
    once, weighted by its IDF (no parameter is learned)

    The same vectors as sentence-transformers' ``SparseStaticEmbedding`` on
    the same table (``tests/unit/test_inference_free.py``)."""

    tokenizer: Param[HFTokenizerBase[InputType]]
    """The tokenizer (shared with the document encoder)"""

    idf: Param[IdfTable]
    """The IDF table"""

    maxlen: Param[Optional[int]] = field(default=None, ignore_default=True)
    """Maximum number of tokens of a query"""

    def __initialize__(self):
        super().__initialize__()
        self.tokenizer.initialize()
        hf_tokenizer = self.tokenizer.tokenizer.tokenizer
        self._table = self.idf.table()
        weights = idf_vector(self._table, hf_tokenizer)
        # The tokens the tokenizer adds around a text, and the padding
        added = [
            hf_tokenizer.pad_token_id,
            hf_tokenizer.cls_token_id,
            hf_tokenizer.sep_token_id,
            hf_tokenizer.bos_token_id,
            hf_tokenizer.eos_token_id,
        ]
        added = sorted({i for i in added if i is not None})
        self.register_buffer("_weights", weights, persistent=False)
        self.register_buffer(
            "_added", torch.tensor(added, dtype=torch.long), persistent=False
        )

    @property
    def dimension(self):
        return self._weights.shape[0]

    def static(self):
        return True

    @initialized
    def forward(self, texts: List[InputType]) -> TextsRepresentationOutput:
        tokenized = self.tokenizer.tokenize(
            texts, options=TokenizerOptions(self.maxlen)
        )
        device = self._weights.device
        present = torch.zeros(len(texts), self.dimension, device=device)
        ids = tokenized.ids.to(device)
        mask = tokenized.mask.to(device).to(present.dtype)
        present.scatter_(1, ids, mask)
        present[:, self._added] = 0
        return TextsRepresentationOutput(present * self._weights, tokenized)

    def save_model(self, path: Path):
        """Writes the table as ``idf.json`` (OpenSearch's layout)"""
        path.mkdir(parents=True, exist_ok=True)
        (path / IDF_FILE).write_text(json.dumps(self._table))

    def load_model(self, path: Path):
        pass
