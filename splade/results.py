"""The results of an experiment: one table, and where the outputs are"""

import logging
from pathlib import Path
from typing import Dict, List, Optional

import pandas as pd
from xpmir.evaluation import EvaluationsCollection

logger = logging.getLogger(__name__)


def tagged(config, tags: Dict[str, object]):
    """Tags a configuration (tags name the rows of the results table)"""
    for key, value in tags.items():
        config.tag(key, value)
    return config


def average_nonzeros(index_path: Path) -> float:
    """Average number of non-zero terms per document of an impact index"""
    import impact_index

    index = impact_index.Index.load(str(index_path), False)
    postings = sum(
        index.postings(term).length() for term in range(index.num_postings())
    )
    documents = max(
        (index.postings(term).max_doc_id() for term in range(index.num_postings())),
        default=-1,
    )
    return postings / (documents + 1) if documents >= 0 else 0.0


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
    per document (``nonzeros_d``) for sparse models, and the path of the
    run file (``run``, TREC format)

    xpmir's table has a two-level header (tag / metric), awkward to read
    back (``pd.read_csv(path)`` is enough for this one).
    """

    def __init__(self, measures: List[str], **collection):
        super().__init__(**collection)
        self.measures = measures
        self.models = []
        self.runs = []

    def add_model(self, tags: Dict[str, object], checkpoint, index):
        """Registers a model: its tags, best checkpoint loader (or None) and
        sparse index, for the summary and the non-zeros column"""
        self.models.append((tags, checkpoint, index))

    def evaluate_retriever(self, retriever, *args, **kwargs):
        results = super().evaluate_retriever(retriever, *args, **kwargs)
        self.runs.extend(results)
        return results

    def _nonzeros(self, tags) -> Optional[float]:
        for model_tags, _, index in self.models:
            if model_tags == tags:
                try:
                    return average_nonzeros(Path(index.index_path))
                except Exception:
                    logger.exception("Cannot read the index of %s", tags)
        return None

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
                row.update((k, float(v)) for k, v in measures.items())
                if (nonzeros := self._nonzeros(model_tags)) is not None:
                    row["nonzeros_d"] = round(nonzeros, 1)
                if id(result) in run_files:
                    row["run"] = run_files[id(result)]
                rows.append(row)
        df = pd.DataFrame(rows)
        first = [c for c in ["dataset", "model"] if c in df.columns]
        last = [m for m in self.measures + ["nonzeros_d", "run"] if m in df.columns]
        tags = sorted(set(df.columns) - set(first) - set(last))
        return ResultsFrame(df[first + tags + last])

    def print_summary(self):
        """Prints where the outputs of the experiment are"""
        lines = ["", "Outputs:"]
        for tags, checkpoint, index in self.models:
            name = ", ".join(f"{k}={v}" for k, v in tags.items())
            if checkpoint is not None:
                lines.append(
                    f"- {name}: best checkpoint (Hugging Face folder) "
                    f"{checkpoint.encoder_path}"
                )
            lines.append(f"- {name}: sparse index {index.index_path}")
        for result in self.runs:
            if result.run is not None:
                name = ", ".join(
                    f"{k}={v}" for k, v in result.task.__xpm__.tags().items()
                )
                lines.append(f"- {name}: run (TREC format) {result.run.path}")
        print("\n".join(lines))  # noqa: T201
