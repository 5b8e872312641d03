"""What a SPLADE model costs at retrieval time: FLOPS, latency, index size

The Efficient SPLADE paper (Lassance and Clinchant, SIGIR 2022,
https://arxiv.org/abs/2207.03834) reports effectiveness against latency; the
SPLADE papers (Formal et al., SPLADE v2, https://arxiv.org/abs/2109.10086)
report FLOPS, the expected number of floating-point operations of a
query-document dot product, sum_j p_q(j) p_d(j) with p_q(j) (p_d(j)) the
fraction of queries (documents) where term j is not zero. The evaluation
task of each SPLADE model (:class:`EvaluateWithEfficiency`) measures them on
its test collection, so that every experiment's results table says what each
model costs as well as what it scores.
"""

import json
import logging
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np
from experimaestro import Annotated, Param, field, pathgenerator, taskglobals
from xpmir.evaluation import Evaluate

from splade.engines import document_frequencies, latency_clock, search_function

logger = logging.getLogger(__name__)


def folder_size(path: Path) -> int:
    """Bytes of the files under ``path``"""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class EvaluateWithEfficiency(Evaluate):
    """xpmir's evaluation of a retriever on a test collection, followed, in
    the same process (the model and index are loaded once), by the
    retriever's efficiency on the collection's queries: FLOPS, latency per
    query and index size (see :func:`measure`)"""

    efficiency_queries: Param[int] = field(default=1000, ignore_default=True)
    """Number of queries timed (the first ones)"""

    efficiency: Annotated[Path, pathgenerator("efficiency.json")]
    """The efficiency measures (JSON)"""

    def execute(self):
        super().execute()
        if taskglobals.Env.instance().slave:
            return
        topics = list(self.dataset.topics.iter())
        measures = measure(self.retriever, topics, self.efficiency_queries)
        logger.info("Efficiency: %s", measures)
        self.efficiency.write_text(json.dumps(measures, indent=2))


def measure(retriever, topics, queries: int) -> Dict[str, Optional[float]]:
    """FLOPS, latencies and index size of an initialized retriever

    Latencies are in milliseconds, one query at a time, on one thread (torch
    and numba): ``latency_ms``, the engine's search of the encoded query for
    its top ``retriever.topk`` document ids (without xpmir's fetching of
    their text), and ``latency_query_ms``, with the encoding of the query.
    They are CPU times of the thread (``time.thread_time``), so that other
    processes on the machine do not count; a query encoded on a GPU counts
    its wall-clock time, and so do both latencies of an engine that searches
    outside the calling thread (Milvus, :func:`splade.engines.latency_clock`).
    FLOPS is computed over all the queries (``topics``) and the indexed
    documents; ``index_mb`` is the size of the index's files (None when they
    are on a server).
    """
    import torch

    torch.set_num_threads(1)
    try:
        import numba

        numba.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    encoder, index = retriever.encoder, retriever.index
    on_gpu = next(encoder.parameters(), torch.zeros(0)).device.type == "cuda"
    encoder.eval()
    search = search_function(index, **retriever.get_retrieval_options())
    search_clock = latency_clock(index)
    wall = on_gpu or search_clock is time.perf_counter

    def clock():
        if on_gpu:
            torch.cuda.synchronize()
        return time.perf_counter() if wall else time.thread_time()

    with torch.no_grad():
        # Warm-up (lazy initialisations, compilation)
        for topic in topics[:3]:
            search(_query(encoder, topic), retriever.topk)
        retrieval, total = [], []
        for topic in topics[:queries]:
            start = clock()
            query = _query(encoder, topic)
            cpu = search_clock()
            search(query, retriever.topk)
            retrieval.append(search_clock() - cpu)
            total.append(clock() - start)

        path = getattr(index, "index_path", None)
        return {
            "latency_ms": 1000 * float(np.mean(retrieval)) if retrieval else None,
            "latency_query_ms": 1000 * float(np.mean(total)) if total else None,
            "timed_queries": len(retrieval),
            "index_mb": folder_size(path) / 2**20 if path else None,
            "flops": flops(encoder, index, topics),
        }


def _query(encoder, topic) -> Dict[int, float]:
    vector = encoder([topic]).value[0].cpu().numpy()
    (terms,) = vector.nonzero()
    return {int(t): float(vector[t]) for t in terms}


def flops(encoder, index, topics) -> Optional[float]:
    """sum_j p_q(j) p_d(j) over the vocabulary (None when the index does
    not keep document frequencies)"""
    documents = document_frequencies(index)
    if documents is None:
        return None
    queries = np.zeros(len(documents), np.float64)
    for start in range(0, len(topics), 256):
        vectors = encoder(topics[start : start + 256]).value.cpu().numpy()
        present = (vectors[:, : len(documents)] > 0).sum(axis=0)
        queries[: present.shape[0]] += present
    return float(np.dot(queries / max(len(topics), 1), documents))
