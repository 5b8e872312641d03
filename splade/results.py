"""The results table of an experiment"""

import logging
from typing import List

import pandas as pd
from xpmir.evaluation import EvaluationsCollection

logger = logging.getLogger(__name__)


class ResultsTable(EvaluationsCollection):
    """Test collections whose results are one flat table: a row per
    (dataset, model) with the tags of the model (e.g. the values of a
    sweep) and one column per measure

    xpmir's table has a two-level header (tag / metric), awkward to read
    back (``pd.read_csv(path)`` is enough for this one).
    """

    def __init__(self, measures: List[str], **collection):
        super().__init__(**collection)
        self.measures = measures

    def to_dataframe(self) -> pd.DataFrame:
        rows = []
        for key, evaluations in self.collection.items():
            for tags, result in evaluations.per_tags.items():
                try:
                    measures = result.get_results()
                except FileNotFoundError:
                    logger.error("No results for %s on %s (task failed)", tags, key)
                    continue
                row = {"dataset": key}
                row.update((k, v) for k, v in sorted(tags.items()) if k != "dataset")
                row.update((k, float(v)) for k, v in measures.items())
                rows.append(row)
        df = pd.DataFrame(rows)
        first = [c for c in ["dataset", "model"] if c in df.columns]
        tags = sorted(set(df.columns) - set(first) - set(self.measures))
        measures = [m for m in self.measures if m in df.columns]
        return df[first + tags + measures]
