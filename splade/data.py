"""Data used by the experiment, resolved from the configuration

Every data source is a datamaestro dataset identifier, so that MS MARCO and
the embedded debug collection (``splade.debug.*``, see
:mod:`splade.datasets`) go through the same code.
"""

from pathlib import Path
from typing import Dict, List

import ir_measures
from datamaestro import prepare_dataset
from datamaestro_ir.data import Adhoc, DocumentStore
from xpmir.datasets.adapters import MemoryTopicStore, RandomFold
from xpmir.evaluation import Evaluations
from xpmir.letor.distillation.samplers import DistillationPairwiseSampler
from xpmir.letor.processors import StoreHydrator
from xpmir.letor.samplers.adapters import SamplerAdapter
from xpmir.measures import Measure

from splade.configuration import Data
from splade.results import ResultsTable


def dataset(dataset_id: str):
    """Returns a datamaestro dataset (prepared lazily: files are downloaded
    or generated just before the first task that needs them)"""
    return prepare_dataset(dataset_id)


def measure(name: str) -> Measure:
    """Converts an ir_measures name (e.g. ``nDCG@10``) to an xpmir measure"""
    parsed = ir_measures.parse_measure(name)
    identifier, _, cutoff = name.partition("@")
    assert parsed.NAME == identifier, f"Measure {name}: only NAME@k is supported"
    return Measure.C(identifier=identifier, cutoff=int(cutoff) if cutoff else None)


def test_collections(tests: Dict[str, str], measures: List[str]) -> ResultsTable:
    """The test collections, with the measures computed on each"""
    parsed = [measure(name) for name in measures]
    return ResultsTable(
        **{key: Evaluations(dataset(ds_id), parsed) for key, ds_id in tests.items()}
    )


def validation_queries(data: Data, seed: int, launcher=None) -> Adhoc:
    """Validation queries: all of them, or a random sample of
    ``data.validation_size`` queries (never from ``data.validation_exclude``)"""
    validation = dataset(data.validation)
    if data.validation_size <= 0:
        return validation
    exclude = dataset(data.validation_exclude).topics if data.validation_exclude else None
    return RandomFold.C(
        dataset=validation,
        seed=seed,
        fold=0,
        sizes=[data.validation_size],
        exclude=exclude,
    ).submit(launcher=launcher)


def distillation_sampler(data: Data, documents: DocumentStore) -> SamplerAdapter:
    """Teacher-scored (query, positive, negative) samples, with the query
    and document texts looked up in their stores"""
    return SamplerAdapter.C(
        sampler=DistillationPairwiseSampler.C(samples=dataset(data.train)),
        processors=[
            StoreHydrator.C(
                documentstore=documents,
                querystore=MemoryTopicStore.C(topics=dataset(data.train_queries)),
            )
        ],
    )


def hf_model(base_hf_id: str) -> str:
    """Resolves ``base_hf_id`` into what Hugging Face ``from_pretrained``
    takes: an absolute folder path for a local folder or for a model made
    by this package (``splade.*`` datamaestro ids), a hub id otherwise"""
    local = Path(base_hf_id).expanduser()
    if local.is_dir():
        return str(local.resolve())
    if base_hf_id.startswith("splade."):
        return str(prepare_dataset(base_hf_id, download=True).path)
    return base_hf_id
