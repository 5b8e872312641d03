"""Configuration of the SPLADE experiments

Every YAML file in this folder is read into :class:`SPLADEConfiguration`: the
docstring under each field is its documentation. Values can be changed in a
YAML file or on the command line (``-c learner.optimization.lr=1e-5``).
"""

from typing import Dict, List, Optional

from attrs import Factory
from experimaestro.experiments import ConfigurationBase, configuration
from xpm_torch.experiments.configuration import TransformerOptimization

from splade.engines import Engine


@configuration
class LocalSplit:
    """Queries of a local collection, with their relevance judgements and
    teacher scores (formats: :mod:`splade.local`)"""

    queries: str
    """Queries file: ``id<TAB>text`` (TSV) or BEIR ``queries.jsonl``"""

    qrels: Optional[str] = None
    """Relevance judgements: TREC (``qid 0 docid rel``) or BEIR (``*.tsv``
    with a header); when given, only judged queries are kept"""

    teacher: Optional[str] = None
    """Teacher scores, as in Hofstätter et al. (``pos_score<TAB>neg_score<TAB>
    qid<TAB>pos_docid<TAB>neg_docid``), for MarginMSE training"""


@configuration
class LocalCollection:
    """A collection given as files; relative paths are relative to the
    folder where ``experimaestro run-experiment`` is run"""

    documents: str
    """Documents file: ``id<TAB>text`` (TSV) or BEIR ``corpus.jsonl``"""

    splits: Dict[str, LocalSplit] = Factory(dict)
    """Query sets, by name (e.g. ``train``, ``test``); they are referred to
    as ``local:<name>`` in the other ``data`` fields"""


@configuration
class Data:
    """Where the documents, training samples and evaluation queries come from

    Each value is a datamaestro dataset identifier (``datamaestro search``
    lists them; the embedded debug collection has ``splade.debug.*`` ids),
    or, for a collection given as files in ``local``: ``local`` (its
    documents) or ``local:<split>`` (one of its splits).
    """

    local: Optional[LocalCollection] = None
    """A collection given as local files (see ``splade/local_*.yaml``)"""

    documents: str = "com.microsoft.msmarco.passage.documents"
    """Document collection (indexed, and used to get the text of training
    documents)"""

    train: str = (
        "com.github.sebastian-hofstaetter.neural-ranking-kd.msmarco_ensemble_teacher"
    )
    """Training data: teacher-scored pairs (pos_score, neg_score, qid,
    pos_docid, neg_docid), as in Hofstätter et al. (2020), for
    ``learner.loss=margin_mse``; triplets, or queries with relevance
    judgements (negatives are then sampled from the BM25 top
    ``bm25.negatives_topk``), for ``softmax_ce``. With a local split,
    ``margin_mse`` uses its teacher scores"""

    train_queries: str = "com.microsoft.msmarco.passage.train.queries"
    """Text of the training queries"""

    validation: str = "com.microsoft.msmarco.passage.dev"
    """Queries and relevance judgements used to select the best checkpoint"""

    validation_size: int = 500
    """Number of validation queries sampled from `validation` (0: all). When
    `validation` is the local split used for training, the sampled queries
    are held out of training"""

    validation_exclude: Optional[str] = "com.microsoft.msmarco.passage.dev.small"
    """Queries of this dataset are never sampled for validation (so that
    validation and test queries differ)"""

    tests: Dict[str, str] = Factory(
        lambda: {
            "msmarco_dev": "com.microsoft.msmarco.passage.dev.small",
            "trec2019": "com.microsoft.msmarco.passage.trec2019",
            "trec2020": "com.microsoft.msmarco.passage.trec2020",
        }
    )
    """Test collections: name -> datamaestro id of an ad-hoc dataset"""

    test_sizes: Dict[str, int] = Factory(dict)
    """Evaluate on a random sample of queries: test collection name -> number
    of queries (collections not named here are used whole)"""


@configuration
class BM25:
    """The BM25 baseline (impact-index bag-of-words index: no Java needed)"""

    k1: float = 0.9
    """BM25 k1 (Anserini's MS MARCO default)"""

    b: float = 0.4
    """BM25 b (Anserini's MS MARCO default)"""

    validation_topk: int = 50
    """The validation collection is made of the BM25 top-k documents of the
    validation queries (plus their relevant documents)"""

    negatives_topk: int = 100
    """Training on queries with relevance judgements (``softmax_ce`` on a
    local split): hard negatives are sampled from the BM25 top-k documents"""

    requirements: str = "cpu(cores=4) & duration=12h"
    """Launcher requirements for indexing and retrieval"""


@configuration
class Model:
    """The SPLADE model"""

    base_hf_id: str = "distilbert-base-uncased"
    """Masked language model to start from: a Hugging Face hub id, a local
    folder holding a Hugging Face model, or ``splade.debug.bert`` (the small
    model this package makes)"""

    architecture: str = "max"
    """``max``: SPLADE-max (query and document encoders); ``doc``: SPLADE-doc
    (document encoder only, queries are bags of tokens)"""

    lambda_q: float = 0.5
    """FLOPS regularization weight for queries"""

    lambda_d: float = 0.4
    """FLOPS regularization weight for documents"""

    lambda_warmup_steps: int = 50_000
    """The FLOPS weights grow quadratically from 0 to their value during
    these many steps"""

    query_maxlen: int = 256
    """Maximum number of tokens of a query (256 in the papers' code, like
    documents; queries are padded to the longest of their batch only)"""

    document_maxlen: int = 256
    """Maximum number of tokens of a document"""


@configuration
class Learner:
    """How the model is trained and validated"""

    optimization: TransformerOptimization = Factory(TransformerOptimization)
    """Optimizer, learning rate schedule, batch size, epochs and steps"""

    loss: str = "margin_mse"
    """``margin_mse``: MarginMSE distillation from teacher scores
    (DistilSPLADE-max; `data.train` holds teacher-scored pairs);
    ``softmax_ce``: softmax cross-entropy with in-batch negatives (SPLADE v2;
    `data.train` holds query/positive/negative triplets)"""

    validation_interval: int = 1
    """Number of epochs between two validations"""

    early_stop: int = 0
    """Stop after these many epochs without improvement (0: never stop
    early; must be a multiple of validation_interval)"""

    num_workers: int = 2
    """Data loader worker processes (0: load in the training process)"""

    requirements: str = "duration=4 days & cuda(mem=24G)"
    """Launcher requirements for training"""


@configuration
class Indexation:
    """Sparse index of the document collection"""

    batch_size: int = 512
    """Number of documents encoded at once"""

    max_docs: int = 0
    """Index only the first documents (0: all of them), for BM25 and SPLADE
    alike; test queries are then restricted to those with a relevant
    document among the indexed ones, and judgements to indexed documents"""

    requirements: str = "duration=2 days & cuda(mem=16G)"
    """Launcher requirements for encoding and indexing"""


@configuration
class Retrieval:
    """Retrieval with the sparse index, and evaluation"""

    topk: int = 1000
    """Number of retrieved documents per query"""

    batch_size: int = 256
    """Number of queries encoded at once"""

    engine: Engine = Factory(Engine)
    """Retrieval engine of the SPLADE index: ``maxscore`` (exact, default),
    ``wand`` (exact), ``bmp`` or ``seismic`` (approximate), with their
    parameters (see splade/engines.py; BENCHMARKS.md for their speed and
    recall@10)"""

    measures: List[str] = Factory(lambda: ["RR@10", "nDCG@10", "R@1000", "AP"])
    """Evaluation measures (ir_measures syntax)"""

    evaluate_untrained: bool = False
    """Also index and evaluate the model before training (a sanity check:
    training should improve it)"""

    requirements: str = "duration=1 days & cuda(mem=8G)"
    """Launcher requirements for query encoding and retrieval"""


@configuration
class SPLADEConfiguration(ConfigurationBase):
    """SPLADE experiment: train, index, retrieve and evaluate"""

    mode: str = "train"
    """``train``: train SPLADE from ``model.base_hf_id`` (a masked language
    model, or a SPLADE checkpoint to fine-tune), then index and evaluate the
    best checkpoint; ``zero-shot``: index and evaluate ``model.base_hf_id``
    as it is (a trained SPLADE model), without training"""

    data: Data = Factory(Data)
    """Training, validation and test data"""

    bm25: BM25 = Factory(BM25)
    """BM25 baseline (also used to build the validation collection)"""

    model: Model = Factory(Model)
    """SPLADE model"""

    learner: Learner = Factory(Learner)
    """Training"""

    indexation: Indexation = Factory(Indexation)
    """Indexing"""

    retrieval: Retrieval = Factory(Retrieval)
    """Retrieval and evaluation"""

    precision: str = "auto"
    """Numerical precision of training and encoding: ``auto`` uses mixed
    precision (``16-mixed``) on GPU and ``32-true`` on CPU; any Lightning
    Fabric precision string is accepted"""

    seed: int = 0
    """Random seed"""
