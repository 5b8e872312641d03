"""The results of an experiment: one table, and where the outputs are"""

import json
import logging
import re
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pandas as pd
from experimaestro import tags as tags_of
from xpmir.evaluation import EvaluationResult, EvaluationsCollection

from splade import engines
from splade.efficiency import EvaluateWithEfficiency

logger = logging.getLogger(__name__)


def tagged(config, tags: Dict[str, object]):
    """Tags a configuration (tags name the rows of the results table)"""
    for key, value in tags.items():
        config.tag(key, value)
    return config


#: Efficiency columns (splade.efficiency.Efficiency), with their rounding
EFFICIENCY = {"flops": 2, "latency_ms": 3, "latency_query_ms": 3, "index_mb": 1}


class ResultsFrame(pd.DataFrame):
    """The results table; printed without its ``run`` column (long paths,
    listed by :meth:`ResultsTable.print_summary`), saved with it"""

    @property
    def _constructor(self):
        return ResultsFrame

    def __repr__(self) -> str:
        return repr(pd.DataFrame(self).drop(columns=["run"], errors="ignore"))


class ResultsTable(EvaluationsCollection):
    """Test collections whose results are one flat table: a row per
    (dataset, model) with the tags of the model (e.g. the values of a
    sweep), one column per measure, the average number of non-zero terms
    per document of the collection's index (``nonzeros_d``) for sparse
    models, and the path of the run file (``run``, TREC format); plus, for
    each average (e.g. ``BEIR-13``), a row per model with the mean of each
    measure over its test collections

    xpmir's table has a two-level header (tag / metric), awkward to read
    back (``pd.read_csv(path)`` is enough for this one).
    """

    def __init__(
        self,
        measures: List[str],
        averages: Dict[str, List[str]],
        **collection,
    ):
        super().__init__(**collection)
        self.measures = measures
        self.averages = averages
        #: (model tags, checkpoint or None)
        self.models: List[Tuple[Dict[str, object], object]] = []
        #: (model tags as a tuple, dataset key) -> sparse index
        self.indices: Dict[Tuple, object] = {}
        #: (model tags as a tuple, dataset key) -> efficiency measures (path)
        self.efficiency: Dict[Tuple, object] = {}
        self.runs = []
        #: Other outputs of the models (name, what and where), for the summary
        self.outputs: List[Tuple[str, str]] = []

    def evaluate(
        self,
        tags: Dict[str, object],
        retriever_of: Callable,
        launcher_of: Callable,
        *,
        index_of: Optional[Callable] = None,
        checkpoint=None,
        efficiency_queries: int = 0,
        **kwargs,
    ):
        """Evaluates a model on every test collection

        :param tags: the model's tags (rows of the table)
        :param retriever_of: ``(documents, key) -> retriever`` of the model
            for the documents of the test collection ``key``
        :param launcher_of: ``key -> launcher`` of the evaluation task
        :param index_of: ``(documents, key) -> sparse index`` (for the
            non-zeros column and the summary)
        :param checkpoint: the model's best checkpoint (for the summary)
        :param efficiency_queries: when > 0, the evaluation also measures the
            efficiency of the retriever (:class:`EvaluateWithEfficiency`,
            these many queries timed), for the columns ``flops``,
            ``latency_ms``, ``latency_query_ms`` and ``index_mb``
        :param kwargs: given to xpmir's ``evaluate_retriever`` (init tasks,
            fabric configuration)
        """
        self.models.append((tags, checkpoint))
        for key, evaluations in self.collection.items():
            documents = evaluations.dataset.documents
            retriever = tagged(retriever_of(documents, key), tags)
            launcher = launcher_of(key)
            if efficiency_queries > 0:
                result = self._evaluate_with_efficiency(
                    key, evaluations, retriever, launcher, efficiency_queries, **kwargs
                )
                self.efficiency[(_key(tags), key)] = result.task.efficiency
            else:
                result = evaluations.evaluate_retriever(
                    key, retriever, launcher, with_run=True, **kwargs
                )
            self.runs.append(result)
            if index_of is not None:
                self.indices[(_key(tags), key)] = index_of(documents, key)

    @staticmethod
    def _evaluate_with_efficiency(
        key, evaluations, retriever, launcher, queries, init_tasks=(), **kwargs
    ) -> EvaluationResult:
        """As xpmir's ``Evaluations.evaluate_retriever`` (with the run), with
        :class:`EvaluateWithEfficiency` as the task"""
        task = EvaluateWithEfficiency.C(
            retriever=retriever,
            measures=evaluations.measures,
            dataset=evaluations.dataset,
            topic_wrapper=evaluations.topic_wrapper,
            with_run=True,
            efficiency_queries=queries,
            **{k: v for k, v in kwargs.items() if v is not None},
        ).tag("dataset", key)
        evaluation, run = task.submit(launcher=launcher, init_tasks=list(init_tasks))
        evaluations.add(evaluation)
        if retriever_tags := tags_of(evaluation):
            evaluations.per_tags[retriever_tags] = evaluation
        return EvaluationResult(key, evaluation, run, task)

    def _nonzeros(self, tags, key) -> Optional[float]:
        index = self.indices.get((_key(tags), key))
        if index is None:
            return None
        try:
            return engines.average_nonzeros(index)
        except Exception:
            logger.exception("Cannot read the index of %s on %s", tags, key)
            return None

    def _efficiency(self, tags, key) -> Dict[str, float]:
        path = self.efficiency.get((_key(tags), key))
        if path is None or not Path(path).is_file():
            return {}
        measures = json.loads(Path(path).read_text())
        return {
            name: round(measures[name], digits)
            for name, digits in EFFICIENCY.items()
            if measures.get(name) is not None
        }

    def to_dataframe(self) -> pd.DataFrame:
        # evaluation -> its run file (runs are kept with with_run=True)
        run_files = {
            id(r.result): str(r.run.path) for r in self.runs if r.run is not None
        }
        rows = []
        for key, evaluations in self.collection.items():
            for tags, result in evaluations.per_tags.items():
                try:
                    measures = result.get_results()
                except FileNotFoundError:
                    logger.error("No results for %s on %s (task failed)", tags, key)
                    continue
                model_tags = {k: v for k, v in tags.items() if k != "dataset"}
                row = {"dataset": key, **dict(sorted(model_tags.items()))}
                # binary measures at another relevance level keep their name
                row.update(
                    (re.sub(r"\(rel=\d+\)", "", k), float(v))
                    for k, v in measures.items()
                )
                if (nonzeros := self._nonzeros(model_tags, key)) is not None:
                    row["nonzeros_d"] = round(nonzeros, 1)
                row.update(self._efficiency(model_tags, key))
                if id(result) in run_files:
                    row["run"] = run_files[id(result)]
                rows.append(row)
        df = pd.DataFrame(rows)
        df = pd.concat([df, self._average_rows(df)], ignore_index=True)
        first = [c for c in ["dataset", "model"] if c in df.columns]
        last = self.measures + ["nonzeros_d", *EFFICIENCY, "run"]
        last = [m for m in last if m in df.columns]
        tags = sorted(set(df.columns) - set(first) - set(last))
        return ResultsFrame(df[first + tags + last])

    def _average_rows(self, df: pd.DataFrame) -> pd.DataFrame:
        """For each average and model, the mean of each measure over the
        average's test collections; when the model has results on some of
        them only, the row says how many (``BEIR-13 (2 of 13)``)"""
        if df.empty:
            return df
        measures = [m for m in self.measures if m in df.columns]
        other = {"dataset", "nonzeros_d", "run", *EFFICIENCY}
        tags = [c for c in df.columns if c not in other and c not in measures]
        rows = []
        for name, keys in self.averages.items():
            subset = df[df["dataset"].isin(keys)]
            for values, group in subset.groupby(tags, dropna=False, sort=False):
                found = len(set(group["dataset"]))
                label = (
                    name
                    if found == len(set(keys))
                    else f"{name} ({found} of {len(set(keys))})"
                )
                values = values if isinstance(values, tuple) else (values,)
                row = {"dataset": label, **dict(zip(tags, values, strict=True))}
                row.update(group[measures].mean().to_dict())
                rows.append(row)
        return pd.DataFrame(rows)

    def print_summary(self):
        """Prints where the outputs of the experiment are"""
        lines = ["", "Outputs:"]
        for tags, checkpoint in self.models:
            name = ", ".join(f"{k}={v}" for k, v in tags.items())
            if checkpoint is not None:
                lines.append(
                    f"- {name}: best checkpoint (Hugging Face folder) "
                    f"{checkpoint.encoder_path}"
                )
            shared: Dict[str, List[str]] = {}  # index -> the datasets it serves
            for (model, key), index in self.indices.items():
                if model == _key(tags):
                    shared.setdefault(str(index.index_path), []).append(key)
            for path, keys in shared.items():
                lines.append(f"- {name}: sparse index {path} ({', '.join(keys)})")
        lines += [f"- {name}: {what}" for name, what in self.outputs]
        for result in self.runs:
            if result.run is not None:
                name = ", ".join(
                    f"{k}={v}" for k, v in result.task.__xpm__.tags().items()
                )
                lines.append(f"- {name}: run (TREC format) {result.run.path}")
        print("\n".join(lines))  # noqa: T201


def _key(tags: Dict[str, object]) -> Tuple:
    return tuple(sorted(tags.items()))
