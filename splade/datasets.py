"""The datasets of an experiment, resolved from the ``data`` section

Every data source is a datamaestro dataset identifier, so that MS MARCO and
the embedded debug collection (``splade.debug.*``, see
:mod:`splade.repository`) go through the same code; a collection given as
files (``data.local``, see :mod:`splade.local_import`) is imported by tasks
into the same data types, and named ``local`` (its documents) or
``local:<split>``.
"""

from typing import List, Optional

from datamaestro import prepare_dataset
from datamaestro_ir.data import Adhoc
from xpmir.datasets.adapters import RandomFold

from splade.configuration import ConfigurationError, Data, Mode
from splade.local_import import LocalFiles

#: Name of the local collection's documents; ``local:<split>`` names a split
LOCAL = "local"

#: Repositories searched first for a dataset id, in this order: this
#: package's, then datamaestro-ir's (whose data types xpmir takes); the others
#: after them
REPOSITORIES = ("splade", "ir")


def find(dataset_id: str):
    """The datamaestro dataset of an id (its wrapper), searched in
    :data:`REPOSITORIES` first

    Some ids are defined by several repositories (MS MARCO's ``dev``,
    ``dev.small``, ``train.queries``... by datamaestro-ir and by
    datamaestro-text, whose data types xpmir does not take), and datamaestro
    1.16's ``prepare_dataset`` takes the first repository that has the id,
    in the order of their entry points, which depends on the installation.
    """
    from datamaestro.context import Context

    repositories = sorted(
        Context.instance().repositories(),
        key=lambda r: (
            REPOSITORIES.index(r.id) if r.id in REPOSITORIES else len(REPOSITORIES)
        ),
    )
    for repository in repositories:
        if (found := repository.search(dataset_id)) is not None:
            return found
    raise KeyError(dataset_id)


def local_split(dataset_id: str) -> Optional[str]:
    """For an id of the local collection, the split it names (``""`` for
    the documents); None for a datamaestro id"""
    if dataset_id == LOCAL:
        return ""
    if dataset_id.startswith(f"{LOCAL}:"):
        return dataset_id.split(":", 1)[1]
    return None


def datamaestro_problem(dataset_id: str) -> Optional[str]:
    """Why ``dataset_id`` is not a datamaestro dataset (None if it is);
    nothing is downloaded"""
    try:
        find(dataset_id)
        return None
    except KeyError:
        return (
            f"no datamaestro dataset {dataset_id!r} (`datamaestro search <words>`"
            " lists the datasets)"
        )


class Datasets:
    """Resolves the dataset ids of ``data`` (built once per experiment)"""

    def __init__(self, data: Data):
        self.data = data
        self.local = LocalFiles(data.local) if data.local is not None else None
        self._folds = None

    def problems(self, mode: Mode) -> List[str]:
        """The ids of the data section that name nothing, and the problems of
        the local collection's files"""
        data = self.data
        only = set(data.tests_only) or set(data.tests)
        ids = {
            f"data.tests.{key}": value
            for key, value in data.tests.items()
            if key in only
        }
        ids["data.documents"] = data.documents
        if mode == Mode.TRAIN:
            ids.update(
                {
                    "data.train": data.train,
                    "data.train_queries": data.train_queries,
                    "data.train_qrels": data.train_qrels,
                    "data.validation": data.validation,
                    "data.validation_exclude": data.validation_exclude,
                }
            )
        problems = self.local.problems() if self.local is not None else []
        for key, dataset_id in ids.items():
            if dataset_id is None:
                continue
            split = local_split(dataset_id)
            if split is None:
                if problem := datamaestro_problem(dataset_id):
                    problems.append(f"{key}: {problem}")
            elif self.local is None:
                problems.append(f"{key}: {dataset_id} names data.local, not set")
            elif split and split not in self.local.splits:
                problems.append(f"{key}: {self._no_split(split)}")
        if mode == Mode.TRAIN and not problems and self.held_out():
            count = self.local.summary().splits[local_split(data.train)].queries
            if count <= data.validation_size:
                problems.append(
                    f"data.validation_size: {data.validation_size} validation queries"
                    f" held out of {data.train} leave none of its {count} for training"
                )
        return problems

    def _no_split(self, split: str) -> str:
        return (
            f"data.local.splits has no {split!r} (it has {sorted(self.local.splits)})"
        )

    def get(self, dataset_id: str):
        """A datamaestro dataset (prepared lazily: files are downloaded or
        generated just before the first task that needs them), or a part of
        the local collection (its import tasks are then submitted)"""
        split = local_split(dataset_id)
        if split is None:
            return prepare_dataset(find(dataset_id))
        if self.local is None:
            raise ConfigurationError(f"{dataset_id}: data.local is not set")
        imported = self.local.imported()
        if not split:
            return imported.documents
        if split not in imported.splits:
            raise ConfigurationError(f"{dataset_id}: {self._no_split(split)}")
        return imported.splits[split]

    def teacher(self, dataset_id: str):
        """The teacher scores of a local split (None if it has none)"""
        return self.local.imported().teacher.get(local_split(dataset_id))

    def held_out(self) -> bool:
        """Whether validation queries are held out of the training split"""
        data = self.data
        return bool(
            data.validation == data.train
            and local_split(data.validation)
            and data.validation_size > 0
        )

    def validation_queries(self, seed: int, launcher=None) -> Adhoc:
        """Validation queries: all of them, or a random sample of
        ``data.validation_size`` queries (never from
        ``data.validation_exclude``; held out of training when they come
        from the training split)"""
        data = self.data
        if self.held_out():
            return self._local_folds(seed)[0].submit(launcher=launcher)
        validation = self.get(data.validation)
        if data.validation_size <= 0:
            return validation
        exclude = (
            self.get(data.validation_exclude).topics
            if data.validation_exclude
            else None
        )
        return RandomFold.C(
            dataset=validation,
            seed=seed,
            fold=0,
            sizes=[data.validation_size],
            exclude=exclude,
        ).submit(launcher=launcher)

    def training_queries(self, seed: int, launcher=None) -> Adhoc:
        """Queries with relevance judgements for training (``data.train``),
        without the held-out validation queries"""
        if self.held_out():
            return self._local_folds(seed)[1].submit(launcher=launcher)
        return self.get(self.data.train)

    def _local_folds(self, seed: int):
        """Validation queries and training queries of a local split (made
        once)"""
        if self._folds is None:
            data = self.data
            count = self.local.summary().splits[local_split(data.train)].queries
            self._folds = RandomFold.folds(
                seed=seed,
                sizes=[data.validation_size, count - data.validation_size],
                dataset=self.get(data.train),
                submit=False,
            )
        return self._folds
