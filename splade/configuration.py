"""Configuration of the SPLADE experiments

Every YAML file in this folder is read into :class:`SPLADEConfiguration`: the
docstring under each field is its documentation. Values can be changed in a
YAML file or on the command line (``-c learner.optimization.lr=1e-5``).

This module is the bottom of the package's parts: it imports only
:mod:`splade.engines` (a floor below it, self-contained), whose registry
gives the engine names and the settings section of each engine. The choices
(``mode``, ``model.architecture``, ``learner.loss``,
``retrieval.engine.name``) are declared once, as enumerations whose members
carry their documentation; ranges are declared beside their field
(``Annotated[float, Ge(0)]``). Both are checked when the YAML files are read,
before anything runs, and a bad value is reported with its key. Checks that
need more than one field, or the world (files, datasets, models), are made by
the part of the package that uses the section (see :mod:`splade.checks`).
"""

import inspect
from enum import Enum
from typing import Annotated, Dict, List, Literal, Optional

import attr
from annotated_types import Ge, Gt, Interval, MinLen
from attrs import Factory
from experimaestro.experiments import ConfigurationBase, configuration
from pydantic import BeforeValidator
from xpm_torch.experiments.configuration import TransformerOptimization
from xpm_torch.optim import ParameterOptimizer, RegexParameterFilter

from splade.engines import ENGINES
from splade.engines import sections as engine_sections


class ConfigurationError(ValueError):
    """Bad configuration values, each given as ``"key: what is wrong"``"""

    def __init__(self, *problems: str):
        super().__init__("\n".join(problems))
        self.problems = problems


class Choice(str, Enum):
    """A value among a few, written as a string in YAML"""

    def __str__(self) -> str:
        return self.value


class Mode(Choice):
    """What the experiment does with the model"""

    TRAIN = "train"
    """Train SPLADE from ``model.base_hf_id`` (a masked language model, or a
    SPLADE checkpoint to fine-tune), then index and evaluate the best
    checkpoint"""

    ZERO_SHOT = "zero-shot"
    """Index and evaluate ``model.base_hf_id`` as it is (a trained SPLADE
    model), without training"""


class Architecture(Choice):
    """The SPLADE variant (SPLADE v2, Formal et al. 2021,
    https://arxiv.org/abs/2109.10086)"""

    MAX = "max"
    """SPLADE-max: queries and documents are encoded, max pooling over tokens
    of log(1 + ReLU(MLM logits))"""

    DOC = "doc"
    """SPLADE-doc: documents only; a query is the binary bag of its tokens
    (no query encoder at retrieval time)"""

    IDF = "idf"
    """Inference-free SPLADE with an IDF query side (OpenSearch's
    ``opensearch-neural-sparse-encoding-doc-*`` models; Geng et al. 2024,
    https://arxiv.org/abs/2411.04403): documents are encoded as SPLADE-max,
    a query is the bag of its tokens, each weighted by its IDF (``model.idf``
    says where the table comes from). A query costs a tokenizer and a table
    look-up"""

    LEXICAL = "lexical"
    """SPLADE-v3-Lexical (Lassance et al. 2024,
    https://arxiv.org/abs/2403.06789): queries are encoded as SPLADE-max,
    then only the weights of the query's own tokens are kept (no query
    expansion; naver/splade's ``lexical_type: query``)"""


class IdfSource(Choice):
    """Where the IDF table of the ``idf`` architecture comes from"""

    AUTO = "auto"
    """``model`` in zero-shot mode (a published inference-free model),
    ``documents`` when training"""

    MODEL = "model"
    """The ``idf.json`` file of ``model.base_hf_id`` (a folder or a hub id),
    as OpenSearch ships its inference-free models: token -> weight"""

    DOCUMENTS = "documents"
    """Computed by a task of its own on ``data.documents``, with the model's
    tokenizer: Lucene's BM25 IDF, log(1 + (N - df + 0.5) / (df + 0.5)), of
    each token (N documents, df of them hold the token)"""


class Activation(Choice):
    """How a SPLADE document encoder turns the maximum of the masked
    language model logits into a weight (sentence-transformers'
    ``SpladePooling.activation_function``)"""

    RELU = "relu"
    """log(1 + ReLU(x)): SPLADE"""

    LOG1P_RELU = "log1p_relu"
    """log(1 + log(1 + ReLU(x))): OpenSearch's
    ``opensearch-neural-sparse-encoding-doc-v3-*`` models (Shen et al. 2025,
    https://arxiv.org/abs/2504.14839)"""


class DocumentFlops(Choice):
    """Over which documents the FLOPS of documents is computed"""

    BATCH = "batch"
    """All the documents of the batch as one set (positives and negatives
    together): naver/splade's ``splade/hf/trainers.py`` (SPLADE-v3)"""

    PAIRS_MEAN = "pairs_mean"
    """The mean of the FLOPS of the positives and the FLOPS of the negatives
    (each computed on its own): naver/splade's
    ``splade/tasks/transformer_trainer.py`` (SPLADE v2, DistilSPLADE-max,
    SPLADE++, Efficient SPLADE). Only for losses on (query, positive,
    negative) triples (``margin_mse``, ``kl_div``, ``softmax_ce`` without
    mining)"""


class Loss(Choice):
    """The training objective"""

    MARGIN_MSE = "margin_mse"
    """MarginMSE distillation (Hofstätter et al. 2020) of teacher scores on
    (query, positive, negative) pairs: DistilSPLADE-max (Formal et al., SIGIR
    2022); ``data.train`` holds teacher-scored pairs"""

    SOFTMAX_CE = "softmax_ce"
    """Softmax cross-entropy over the positive, the query's negative and the
    other documents of the batch (in-batch negatives): SPLADE v2;
    ``data.train`` holds triplets, or judged queries whose negatives are
    sampled from the BM25 top ``bm25.negatives_topk``"""

    CONTRASTIVE_KL = "contrastive_kl"
    """Lion-SP's contrastive loss plus distillation (Zeng et al., SIGIR
    2025, arXiv 2502.15526; ``nce_kldiv`` in HansiZeng/scaling-retriever):
    the mean of the softmax cross-entropy of each query's positive among all
    the documents of the batch (in-batch negatives) and of the KL divergence
    between the teacher's and the student's distributions over the query's
    (positive, negative) pair; ``data.train`` holds teacher-scored pairs
    or scored queries"""

    KL_DIV = "kl_div"
    """KL divergence between the teacher's and the student's distributions
    over each query's (positive, negative) pair: Efficient SPLADE (Lassance
    and Clinchant, SIGIR 2022, https://arxiv.org/abs/2207.03834);
    ``data.train`` holds teacher-scored pairs or scored queries"""

    KL_MARGIN_MSE = "kl_margin_mse"
    """SPLADE-v3 (Lassance et al. 2024, https://arxiv.org/abs/2403.06789;
    naver/splade's ``kldiv_mse_margin_with_weights``): per query, one
    positive and ``learner.negatives`` negatives of the mined candidates;
    the KL divergence between the softmax of the teacher's and of the
    student's scores over them (weight ``learner.kl_weight``) plus MarginMSE
    over every pair of them (weight ``learner.margin_mse_weight``). Needs
    ``mining``"""


class Backbone(Choice):
    """The kind of language model SPLADE is made of"""

    MLM = "mlm"
    """A masked language model (BERT, DistilBERT, RoBERTa...): the vocabulary
    projection is its MLM head (transform and decoder)"""

    DECODER = "decoder"
    """A decoder-only (causal) language model of Hugging Face (Llama,
    Qwen2/Qwen3, Mistral...): the vocabulary projection is its LM head, tied
    to the input embeddings or not (Lion-SP, LACONIC, CSPLADE, SPLADE-Code);
    see ``model.decoder``"""


class VocabularyHead(Choice):
    """How the maximum over tokens of the vocabulary logits is computed in
    training (the same values and gradients, ``docs/llm.md``)"""

    AUTO = "auto"
    """``memory``, or xpmir's fused Sparton kernel on CUDA with Triton (BERT
    models)"""

    MEMORY = "memory"
    """Keeps, per text, the maximum and the token that reaches it, and
    rebuilds the backward pass from them: training memory of a few batch x
    vocabulary tensors, instead of batch x length x vocabulary"""

    PLAIN = "plain"
    """Autograd on chunks of logits (keeps every chunk's logits for the
    backward pass)"""


class WeightsDtype(Choice):
    """The dtype of a decoder's weights"""

    AUTO = "auto"
    """bfloat16 on a CUDA device that has it when LoRA freezes the weights
    (the adapters stay float32), float32 otherwise (CPU, full fine-tuning:
    mixed precision is ``precision``'s)"""

    FLOAT32 = "float32"
    """float32"""

    BFLOAT16 = "bfloat16"
    """bfloat16"""


class TopKWhen(Choice):
    """When the hard top-k of ``model.topk`` applies"""

    TRAINING = "training"
    """In training only (the index holds whole vectors)"""

    INFERENCE = "inference"
    """At inference only (indexing, retrieval, validation), as SPLARE's
    top-(40, 400)"""

    BOTH = "both"
    """In training and at inference, as LACONIC's ``--use_hard_topk``"""


class DeadTermsRemedy(Choice):
    """What is done against CSPLADE's "dying ReLU" (vocabulary entries whose
    logits stay negative, and get no gradient, for every text)"""

    NONE = "none"
    """Nothing (the share of dead entries is still logged)"""

    ADAPTATION = "adaptation"
    """A short adaptation phase before the ranking training, as CSPLADE's
    (Xu et al., arXiv 2504.10816): the MNTP task (``model.mntp``, or
    ``model.dying_relu.adaptation_steps`` steps of its defaults when it is
    unset)"""


class Regularization(Choice):
    """How the sparsity of the representations is encouraged"""

    FLOPS = "flops"
    """FLOPS (Paria et al., ICLR 2020): the squared mean weight of each term
    over the batch, summed over the vocabulary (SPLADE v2)"""

    L1 = "l1"
    """L1: the mean over the batch of the sum of the weights (Efficient
    SPLADE's regularization of queries; queries only)"""

    IDF_FLOPS = "idf_flops"
    """IDF-aware FLOPS (Geng et al. 2024, https://arxiv.org/abs/2411.04403;
    documents only): FLOPS of the documents' weights each divided by its
    term's IDF, sum_j (mean_i |d_ij| / idf_j)^2 (``model.idf``), so that
    informative terms are penalized less. Geng et al. score documents with
    IDF-weighted queries and regularize the weights themselves: with a
    binary query side (``architecture: doc``, whose document weights then
    carry the IDF), this is the same training; with ``architecture: idf``
    the IDF is already in the query side and ``flops`` is their
    regularization"""


class OptimizerVariant(Choice):
    """Which AdamW: the package's, or naver/splade's"""

    PACKAGE = "package"
    """torch's AdamW as xpm_torch sets it: ``eps`` (1e-8) and no weight
    decay on biases and LayerNorm weights (``re_no_l2_regularization``); also
    Hugging Face's Trainer default (naver/splade's ``splade/hf_train.py``,
    SPLADE-v3)"""

    NAVER = "naver"
    """transformers' AdamW as naver/splade's ``splade/optim/bert_optim.py``
    builds it (SPLADE v2, SPLADE++, Efficient SPLADE): eps 1e-6 and weight
    decay on every parameter (``eps`` and ``re_no_l2_regularization`` are
    then ignored)"""


NonNegative = Annotated[float, Ge(0)]
Positive = Annotated[int, Gt(0)]


def _split_commas(value):
    # experimaestro gives the values of -c options as strings
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


#: A list of strings, also written ``a,b,c`` (e.g. after ``-c``)
Names = Annotated[List[str], BeforeValidator(_split_commas)]


# --- Data


@configuration
class LocalSplit:
    """Queries of a local collection, with their relevance judgements and
    teacher scores (formats: :mod:`splade.local_files`)"""

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
class TestRequirements:
    """Launcher requirements of the tasks of one test collection (unset:
    those of the ``bm25``, ``indexation`` and ``retrieval`` sections)"""

    bm25: Optional[str] = None
    """BM25 index of its documents, and BM25 retrieval"""

    indexation: Optional[str] = None
    """SPLADE index of its documents"""

    retrieval: Optional[str] = None
    """SPLADE retrieval and evaluation"""


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

    train_qrels: str = "com.microsoft.msmarco.passage.train.qrels"
    """Relevance judgements of the training queries, when ``data.train`` is
    teacher scores of their candidates (SPLADE++: the positives)"""

    train_count: Optional[Positive] = None
    """Number of triplets in ``data.train`` (``softmax_ce``), when known:
    they are then sampled down to what training uses (its steps times its
    batch size, plus 10%) before being shuffled, instead of being shuffled
    all"""

    validation: str = "com.microsoft.msmarco.passage.dev.judged"
    """Queries and relevance judgements used to select the best checkpoint
    (MS MARCO dev: its judged queries only; about half of the dev queries
    have no judgement, and would not be counted)"""

    validation_size: Annotated[int, Ge(0)] = 500
    """Number of validation queries sampled from `validation` (0: all). When
    `validation` is the local split used for training, the sampled queries
    are held out of training"""

    validation_exclude: Optional[str] = "com.microsoft.msmarco.passage.dev.small"
    """Queries of this dataset are never sampled for validation (so that
    validation and test queries differ)"""

    tests: Annotated[Dict[str, str], MinLen(1)] = Factory(
        lambda: {
            "msmarco_dev": "com.microsoft.msmarco.passage.dev.small",
            "trec2019": "com.microsoft.msmarco.passage.trec2019",
            "trec2020": "com.microsoft.msmarco.passage.trec2020",
        }
    )
    """Test collections: name -> datamaestro id of an ad-hoc dataset (or
    ``local:<split>``). Each is searched in an index of its own documents;
    collections on the same documents share their indices"""

    tests_only: Names = Factory(list)
    """Evaluate on these test collections only (names in ``tests``; empty:
    all of them), e.g. ``-c data.tests_only=scifact,nfcorpus``"""

    binary_relevance: Dict[str, Positive] = Factory(
        lambda: {"trec2019": 2, "trec2020": 2}
    )
    """Minimum relevance of a relevant document for the binary measures (RR,
    R, AP, P) of a test collection: name -> level (1 when not given; names
    that are not test collections are ignored). The TREC Deep Learning
    tracks count 2, as their official evaluation; nDCG uses the graded
    judgements"""

    test_sizes: Dict[str, Positive] = Factory(dict)
    """Evaluate on a random sample of queries: test collection name -> number
    of queries (collections not named here are used whole)"""

    test_requirements: Dict[str, TestRequirements] = Factory(dict)
    """Launcher requirements of the tasks of a test collection whose
    documents need more than the defaults (e.g. BEIR's 5M-document
    collections): test collection name -> requirements"""

    averages: Dict[str, List[str]] = Factory(dict)
    """Rows of the results table that average test collections (e.g.
    ``BEIR-13``): row name -> test collection names. A model gets the row
    when it was evaluated on all of them"""


# --- BM25 and the model


@configuration
class BM25:
    """The BM25 baseline (impact-index bag-of-words index: no Java needed)"""

    k1: NonNegative = 0.9
    """BM25 k1 (Anserini's MS MARCO default)"""

    b: Annotated[float, Interval(ge=0, le=1)] = 0.4
    """BM25 b (Anserini's MS MARCO default)"""

    validation_topk: Positive = 50
    """The validation collection is made of the BM25 top-k documents of the
    validation queries (plus their relevant documents)"""

    negatives_topk: Positive = 100
    """Training on queries with relevance judgements (``softmax_ce`` on a
    local split): hard negatives are sampled from the BM25 top-k documents"""

    requirements: str = "cpu(cores=4) & duration=12h"
    """Launcher requirements for indexing and retrieval"""


@configuration
class LoRASettings:
    """LoRA adapters (Hu et al., 2021, arXiv 2106.09685) through ``peft``:
    the base weights are frozen, each adapted linear layer learns a rank-r
    update scaled by alpha / r"""

    r: Positive = 16
    """Rank (Lion-SP: 16, its ``lora_r``; LACONIC 8B: 16, 1B and 3B: 32)"""

    alpha: Annotated[float, Gt(0)] = 32.0
    """Scaling numerator (Lion-SP: 32; LACONIC: twice r)"""

    dropout: Annotated[float, Interval(ge=0, lt=1)] = 0.1
    """Dropout on the adapters' input (Lion-SP's ranking training and
    LACONIC: 0.1; Lion-SP's MNTP: 0.05)"""

    target_modules: Names = Factory(
        lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ]
    )
    """The adapted linear layers (Lion-SP and LACONIC: every attention and
    MLP projection of Llama / Qwen)"""


@configuration
class Decoder:
    """A causal language model as SPLADE's encoder (``model.backbone:
    decoder``; ``docs/llm.md``)"""

    bidirectional: bool = False
    """Every token attends to every token: the causal mask is replaced by
    the padding mask (Lion-SP, LACONIC, CSPLADE-bi, SPLADE-Code); a causal
    model is usually adapted to it first (``model.mntp``)"""

    echo: bool = False
    """The text is given twice, only the second copy is pooled: with causal
    attention, its tokens have seen the whole text (Echo embeddings,
    Springer et al., arXiv 2402.15449; Mistral-SPLADE, arXiv 2408.11119;
    CSPLADE-echo); each copy is truncated to the maximum length"""

    logit_scale: Annotated[float, Gt(0)] = 1.0
    """Factor of the logits before log(1 + ReLU): Lion-SP multiplies them by
    hidden_size ** -0.25 (0.1487 for Llama-3.2-1B's 2,048, 0.125 for
    Llama-3-8B's 4,096); 1 elsewhere"""

    logit_bias: float = 0.0
    """Added to the (scaled) logits before log(1 + ReLU), a constant. The
    logits of a pretrained decoder may share a large offset that softmax
    ignores: SmolLM2-135M's are 13.9 on average, 99.7% of them positive, so
    that every vocabulary entry is active in every text and the ranking
    training does not start (docs/llm.md). A negative bias leaves the
    highest logits only (SmolLM2-135M with Lion-SP's scale 576 ** -0.25:
    -5.3 keeps about 1,500 of 49,152 entries per document of the debug
    collection). 0 for the published models (Lion-SP, LACONIC), whose
    training started with none"""

    lora: Optional[LoRASettings] = None
    """LoRA adapters (unset: every weight is trained)"""

    adapter_base: Optional[str] = None
    """When ``model.base_hf_id`` is a LoRA adapter (``peft`` layout, e.g. a
    Lion-SP checkpoint): its base model, instead of the one its
    ``adapter_config.json`` names (e.g. a local copy of
    ``meta-llama/Llama-3.2-1B``)"""

    gradient_checkpointing: bool = False
    """Recompute the layers' activations in the backward pass (Lion-SP and
    LACONIC train with it): less memory, about a third more time"""

    dtype: WeightsDtype = WeightsDtype.AUTO
    """The weights' dtype, see :class:`WeightsDtype`"""


@configuration
class TopK:
    """Hard top-k sparsification (:mod:`splade.encoders.topk`): each vector
    keeps its k largest weights, beside the FLOPS regularization"""

    query: Optional[Positive] = None
    """Weights kept per query (unset: all; LACONIC: 512, SPLARE: 40)"""

    document: Optional[Positive] = None
    """Weights kept per document (unset: all; LACONIC: 512, SPLARE:
    400)"""

    when: TopKWhen = TopKWhen.BOTH
    """In training, at inference, or both, see :class:`TopKWhen`"""


@configuration
class MNTP:
    """Masked next-token prediction (LLM2Vec, BehnamGhader et al., arXiv
    2404.05961), with bidirectional attention, on documents: the adaptation
    of a causal LM before SPLADE's training (Lion-SP, LACONIC). Defaults:
    Lion-SP's (HansiZeng/scaling-retriever,
    ``train_configs/mntp/meta_llama3_1b_msmarco.json``)"""

    documents: Optional[str] = None
    """The texts: a datamaestro id of documents (unset: ``data.documents``;
    Lion-SP: the MS MARCO passages)"""

    max_documents: Annotated[int, Ge(0)] = 0
    """Draw the texts from the first documents only (0: all)"""

    steps: Positive = 10_000
    """Optimization steps (Lion-SP: ``stop_after_n_steps`` 10,000)"""

    batch_size: Positive = 32
    """Texts per step (Lion-SP: 32 per device)"""

    lr: Annotated[float, Gt(0)] = 5.0e-5
    """Learning rate, AdamW, linear decay (Lion-SP's configuration does not
    set it: the Hugging Face Trainer's default, 5e-5, as LLM2Vec's
    ``train_llama3_marco.sh``)"""

    warmup_steps: Annotated[int, Ge(0)] = 0
    """Steps of linear warm-up (Lion-SP: none, the Trainer's default)"""

    weight_decay: NonNegative = 0.0
    """AdamW weight decay (Lion-SP: 0, the Trainer's default)"""

    mask_probability: Annotated[float, Interval(gt=0, lt=1)] = 0.2
    """Share of the tokens masked (Lion-SP and LACONIC: ``mlm_probability``
    0.2)"""

    mask_token: Optional[str] = None
    """The mask token (unset: the tokenizer's, else ``_``, LLM2Vec's
    ``mask_token_type: blank`` that Lion-SP uses for Llama-3)"""

    maxlen: Positive = 512
    """Maximum number of tokens of a text (Lion-SP: 512)"""

    lora: Optional[LoRASettings] = Factory(lambda: LoRASettings(dropout=0.05))
    """LoRA adapters, merged into the model at the end (Lion-SP: r 16,
    alpha 32, dropout 0.05; unset: every weight is trained)"""

    gradient_checkpointing: bool = True
    """Recompute the activations in the backward pass (Lion-SP: yes)"""

    checkpoint_interval: Positive = 1000
    """Steps between two checkpoints (a killed task resumes from the last;
    Lion-SP: ``save_steps`` 1,000)"""

    requirements: str = "duration=1 day & cuda(mem=40G)"
    """Launcher requirements of the MNTP task"""


@configuration
class DyingReLU:
    """CSPLADE's "dying ReLU" (Xu et al., arXiv 2504.10816): early in the
    contrastive training of a causal LM, the logits of most vocabulary
    entries may become negative for every text; ReLU then gives them no
    gradient, and the representations collapse"""

    window: Annotated[int, Ge(0)] = 100
    """Every ``window`` training steps, the share of vocabulary entries that
    no query (``dead_terms_q``) or no document (``dead_terms_d``) of these
    steps activated is logged (TensorBoard), and a warning when nearly all
    are dead; every step, the share of all-zero vectors (``zero_vectors_q``,
    ``zero_vectors_d``); 0: none of it. Logging only: the task identifiers
    do not depend on it"""

    remedy: DeadTermsRemedy = DeadTermsRemedy.NONE
    """What is done against it, see :class:`DeadTermsRemedy`"""

    adaptation_steps: Positive = 1000
    """Steps of the adaptation phase of ``remedy: adaptation`` when
    ``model.mntp`` is unset (the paper calls the phase lightweight; the
    number of steps is this package's choice)"""


@configuration
class Model:
    """The SPLADE model"""

    base_hf_id: str = "distilbert-base-uncased"
    """Masked language model to start from: a Hugging Face hub id, a local
    folder holding a Hugging Face model, or ``splade.debug.bert`` (the small
    model this package makes)"""

    architecture: Architecture = Architecture.MAX
    """SPLADE-max (``max``), SPLADE-doc (``doc``), inference-free with IDF
    queries (``idf``) or SPLADE-v3-Lexical (``lexical``), see
    :class:`Architecture`"""

    idf: IdfSource = IdfSource.AUTO
    """Where the IDF table of ``architecture: idf`` (and of the
    ``idf_flops`` regularization) comes from, see :class:`IdfSource`"""

    document_activation: Optional[Activation] = None
    """The activation of the document encoder (see :class:`Activation`);
    unset: ``relu``, except with ``architecture: idf``, where it is what the
    model folder's sentence-transformers configuration says (its
    ``SpladePooling`` module's ``activation_function``; OpenSearch's doc-v3
    models say ``log1p_relu``), ``relu`` when it says nothing"""

    lambda_q: NonNegative = 0.5
    """FLOPS regularization weight for queries"""

    lambda_d: NonNegative = 0.4
    """FLOPS regularization weight for documents"""

    lambda_warmup_steps: Annotated[int, Ge(0)] = 50_000
    """The FLOPS weights grow quadratically from 0 to their value during
    these many steps"""

    query_regularization: Regularization = Regularization.FLOPS
    """Regularization of the query representations (weight ``lambda_q``):
    ``flops`` or ``l1`` (Efficient SPLADE, SPLADE-v3)"""

    document_regularization: Regularization = Regularization.FLOPS
    """Regularization of the document representations (weight
    ``lambda_d``): ``flops`` or ``idf_flops`` (Geng et al.), see
    :class:`Regularization`"""

    document_flops: DocumentFlops = DocumentFlops.BATCH
    """Which documents the FLOPS of documents is computed over: ``batch``
    (naver/splade's SPLADE-v3 code) or ``pairs_mean`` (its SPLADE v2 and
    SPLADE++ code), see :class:`DocumentFlops`"""

    anti_zero: bool = False
    """Adds naver/splade's "anti-zero" term, 1 / (sum of the batch's query
    weights)^2 + 1 / (sum of its document weights)^2 (no weight), which
    keeps the representations from collapsing to zero
    (``splade/hf/trainers.py``, SPLADE-v3)"""

    query_hf_id: Optional[str] = None
    """A separate query encoder (Efficient SPLADE), as ``base_hf_id``: a
    masked language model with the same vocabulary (e.g. a BERT-tiny for
    fast query encoding); unset: queries and documents share the encoder"""

    query_maxlen: Positive = 256
    """Maximum number of tokens of a query (256 in the papers' code, like
    documents; queries are padded to the longest of their batch only)"""

    document_maxlen: Positive = 256
    """Maximum number of tokens of a document"""

    backbone: Backbone = Backbone.MLM
    """``mlm`` (a masked language model) or ``decoder`` (a causal language
    model, see ``model.decoder``), see :class:`Backbone`"""

    decoder: Decoder = Factory(Decoder)
    """Options of a decoder backbone (``model.backbone: decoder``)"""

    head: VocabularyHead = VocabularyHead.AUTO
    """How the maximum of the vocabulary logits is computed in training (the
    same vectors and gradients), see :class:`VocabularyHead`"""

    topk: TopK = Factory(TopK)
    """Hard top-k: the number of weights kept per vector (every encoder:
    BERT or decoder)"""

    mntp: Optional[MNTP] = None
    """Masked next-token prediction before the ranking training (decoders):
    an experimaestro task whose adapted model is the starting point; unset:
    none (unless ``model.dying_relu.remedy: adaptation``)"""

    dying_relu: DyingReLU = Factory(DyingReLU)
    """CSPLADE's "dying ReLU" guard: dead vocabulary entries logged, and
    their remedy"""


# --- Training


@configuration
class Optimization(TransformerOptimization):
    """Optimizer, learning rate schedule, batch size, epochs and steps
    (xpm_torch's ``TransformerOptimization``, with the ranges checked)"""

    optimizer_name: Literal["adam-w", "adam", "sgd", "adafactor"] = "adam-w"
    """Name of the optimizer (``adam-w``, ``adam``, ``sgd`` or
    ``adafactor``)"""

    lr: Annotated[float, Gt(0)] = 3.0e-6
    """Learning rate (after warm-up)"""

    num_warmup_steps: Annotated[int, Ge(0)] = 1000
    """Steps of linear warm-up of the learning rate (then linear decay)"""

    batch_size: Positive = 64
    """Training batch size (number of queries per step)"""

    max_epochs: Positive = 3200
    """Number of training epochs"""

    steps_per_epoch: Positive = 32
    """Number of steps (batches) per epoch"""

    weight_decay: NonNegative = 1e-2
    """AdamW's weight decay (of the parameters ``variant`` says)"""

    eps: Annotated[float, Gt(0)] = 1e-8
    """AdamW's epsilon (``variant: package``)"""

    re_no_l2_regularization: List[str] = Factory(lambda: [r"\.bias$", r"\.LayerNorm\."])
    """Regular expressions of the parameters without weight decay
    (``variant: package``): biases and LayerNorm weights"""

    variant: OptimizerVariant = OptimizerVariant.PACKAGE
    """The package's AdamW or naver/splade's, see :class:`OptimizerVariant`"""

    max_grad_norm: Optional[Annotated[float, Gt(0)]] = None
    """Gradients are clipped to this norm before each step (Hugging Face's
    Trainer clips them to 1 by default: naver/splade's SPLADE-v3 code);
    unset: not clipped (naver/splade's SPLADE v2 / SPLADE++ code)"""

    @property
    def optimizer(self):
        """The optimizers and schedulers of xpm_torch (``variant: naver``:
        one group, every parameter decayed, eps 1e-6)"""
        if OptimizerVariant(self.variant) == OptimizerVariant.NAVER:
            naver = attr.evolve(self, eps=1e-6, re_no_l2_regularization=[])
            (one,) = TransformerOptimization.optimizer.func(naver)
            # xpm_torch 0.3.1's Learner cannot train with a single optimizer:
            # it calls list(fabric.setup_optimizers(*optimizers))
            # (xpm_torch/learner.py:341), and Fabric returns the optimizer
            # itself, not a tuple, for one ("'FabricAdamW' object is not
            # iterable"). The same AdamW twice, over the biases and LayerNorm
            # weights and over the other parameters: AdamW's update is per
            # parameter, the schedule is the same, so that it is one group's
            # (tests/unit/test_v3_losses.py checks the updates)
            return [
                ParameterOptimizer.C(
                    scheduler=one.scheduler,
                    optimizer=TransformerOptimization.get_optimizer(naver, True),
                    filter=RegexParameterFilter.C(
                        includes=[r"\.bias$", r"\.LayerNorm\."]
                    ),
                ),
                one,
            ]
        return TransformerOptimization.optimizer.func(self)


@configuration
class Learner:
    """How the model is trained and validated"""

    optimization: Optimization = Factory(Optimization)
    """Optimizer, learning rate schedule, batch size, epochs and steps"""

    loss: Loss = Loss.MARGIN_MSE
    """``margin_mse`` (DistilSPLADE-max), ``softmax_ce`` (SPLADE v2),
    ``kl_div`` (Efficient SPLADE) or ``kl_margin_mse`` (SPLADE-v3), see
    :class:`Loss`"""

    negatives: Positive = 8
    """Negatives per query when training on mined candidates with
    ``kl_margin_mse`` or ``softmax_ce`` (naver/splade's ``n_negatives``):
    drawn without replacement among the query's scored non-positive
    candidates (with replacement when it has no more than that many); the
    positive is drawn among its scored relevant documents"""

    kl_weight: NonNegative = 0.99
    """Weight of the KL divergence in ``kl_margin_mse`` (naver: 0.99)"""

    margin_mse_weight: NonNegative = 0.05
    """Weight of MarginMSE in ``kl_margin_mse`` (naver: 0.05)"""

    temperature: Annotated[float, Gt(0)] = 1.0
    """Temperature of the softmaxes of ``kl_margin_mse`` (naver: 1)"""

    validation_interval: Positive = 1
    """Number of epochs between two validations"""

    early_stop: Annotated[int, Ge(0)] = 0
    """Stop after these many epochs without improvement (0: never stop
    early; must be a multiple of validation_interval)"""

    num_workers: Annotated[int, Ge(0)] = 2
    """Data loader worker processes (0: load in the training process), in
    each training process"""

    devices: Positive = 1
    """Training processes per node (data parallelism, Lightning Fabric's
    ``ddp``): one per GPU, or CPU processes on a machine without GPU. Each
    of the ``devices * num_nodes`` processes takes an equal share of
    ``optimization.batch_size`` (the global batch, which must be divisible
    by their number); gradients are averaged, in-batch negatives and the
    FLOPS regularization use the whole global batch. The learner then needs
    that many GPUs: its ``requirements`` give what *one* process needs
    (e.g. ``cuda(mem=24G)``), the experiment asks the launcher for
    ``devices`` of them (``cuda(mem=24G)*4``). Does not change the task
    identifiers: the training is the same (the same global batches), up to
    floating-point rounding, which training amplifies (documentation:
    *Several GPUs and Slurm*, ``docs/distributed.md``)"""

    num_nodes: Positive = 1
    """Number of nodes (machines) that train together, each running
    ``devices`` processes; more than one needs a launcher that starts one
    task per process on each node, such as ``launchers/slurm``"""

    requirements: str = "duration=4 days & cuda(mem=24G)"
    """Launcher requirements for training, of one training process (see
    ``devices``)"""


@configuration
class Mining:
    """Hard negatives mined by a first-stage SPLADE model and scored by a
    teacher, for a second training on them: SPLADE++ SelfDistil (Formal et
    al., SIGIR 2022, https://arxiv.org/abs/2205.04733). Each stage is a task
    of its own: the first stage's index of ``data.documents``, its top-k for
    the training queries, the teacher's scores of them"""

    first_stage: Optional[str] = None
    """The first stage: a trained SPLADE-max model (Hugging Face hub id or
    folder, e.g. ``naver/splade-cocondenser-ensembledistil``); or a recipe
    of this folder (``splade_pp_sd.yaml``): the model that recipe trains,
    built here with that recipe's own configuration (the ``-c`` options are
    not applied to it), so that its tasks are those of a run of that recipe
    (shared in a workspace), also evaluated (``model=splade-first-stage``);
    unset: the model that this experiment trains first, with the recipe's
    settings and training data (e.g. SPLADE++ EnsembleDistil), also
    evaluated"""

    queries: str = "com.microsoft.msmarco.passage.train"
    """Training queries with their relevance judgements (an ad-hoc dataset,
    or ``local:<split>``): their positives come from the judgements, their
    negatives from the first stage's top-k"""

    query_count: Annotated[int, Ge(0)] = 0
    """Mine for a random sample of these many queries (0: all of them)"""

    topk: Positive = 50
    """Documents retrieved by the first stage for each query, then scored by
    the teacher (with the query's positives)"""

    random: Annotated[int, Ge(0)] = 0
    """Plus these many documents drawn at random (uniformly, without
    replacement) among the first stage's ranks ``topk + 1`` to ``depth``
    (SPLADE-v3's pool: the top-50 and 50 of the top-1000, naver/splade's
    ``distil_top50_50_random``); 0: the top-k only"""

    depth: Positive = 1000
    """Documents retrieved by the first stage when ``random`` is set"""

    init_from_first_stage: bool = False
    """The model starts from the first stage's weights (a continued
    training) instead of ``model.base_hf_id`` (the paper's SelfDistil starts
    from the same pretrained model as the first stage)"""

    teacher: str = "cross-encoder/ms-marco-MiniLM-L-6-v2"
    """The teacher: a cross-encoder (Hugging Face hub id or folder of a
    sequence classification model), ``splade.debug.teacher`` (the debug
    collection's oracle) or ``splade.debug.teacher.noisy`` (the oracle plus
    Gaussian noise)"""

    teachers: Names = Factory(list)
    """A teacher ensemble (SPLADE-v3), each as ``teacher``, replacing
    ``teacher``: each one scores the candidates in a task of its own (cached:
    adding a teacher scores nothing again), then each one's scores are
    min-max normalised per query and averaged (``-c
    mining.teachers=a,b``)"""

    rescale: Optional[str] = None
    """One of ``teachers``: the ensemble's scores are mapped by an affine
    transformation to the mean and standard deviation (over every scored
    pair) of this teacher's scores (SPLADE-v3's "rescored" data, naver's
    ``distil_top50_50_random_rescored``: the ensemble on the scale of
    ``cross-encoder/ms-marco-MiniLM-L-6-v2``'s scores, which the KL's
    temperature 1 was set for); unset: the average as it is (in [0, 1])"""

    teacher_maxlen: Positive = 512
    """Maximum number of tokens of a (query, document) pair for the
    cross-encoder"""

    batch_size: Positive = 256
    """Pairs scored at once by the teacher"""

    requirements: str = "duration=2 days & cuda(mem=16G)"
    """Launcher requirements of the mining and scoring tasks"""


# --- Index and retrieval


@configuration
class Indexation:
    """Sparse index of the document collection"""

    batch_size: Positive = 512
    """Number of documents encoded at once"""

    max_docs: Annotated[int, Ge(0)] = 0
    """Index only the first documents (0: all of them), for BM25 and SPLADE
    alike; test queries are then restricted to those with a relevant
    document among the indexed ones, and judgements to indexed documents"""

    shards: Positive = 1
    """Number of tasks that encode the documents, each a slice of the
    collection (whole batches), submitted to the launcher at once (e.g. N
    Slurm jobs on N GPUs or nodes); a CPU task then merges their indices
    into one, the same as one task's
    (:mod:`splade.engines.exhaustive.shards`). Only for the engines that
    search the exhaustive index or convert it: ``exhaustive``, ``pisa``,
    ``bmp``"""

    requirements: str = "duration=2 days & cuda(mem=16G)"
    """Launcher requirements for encoding and indexing (of each shard)"""


#: The retrieval engines (``retrieval.engine.name``), from the registry of
#: :mod:`splade.engines`; each member's documentation is its engine's
EngineName = Choice("EngineName", {name.upper(): name for name in ENGINES})
for _member in EngineName:
    _member.__doc__ = inspect.cleandoc(ENGINES[_member.value].__doc__ or "")


def _engine_section() -> type:
    """The ``retrieval.engine`` section: the engine's name, and the
    settings of each engine (:func:`splade.engines.sections`), each a field
    documented by its dataclass"""
    namespace = {
        "__doc__": """Retrieval engine of the SPLADE index (``BENCHMARKS.md``,
    section *Retrieval engines*, gives the recall@10 and latency of each)""",
        "__module__": __name__,
        "__qualname__": "Engine",
        "__annotations__": {"name": EngineName},
        "name": attr.field(
            default=EngineName(next(iter(ENGINES))),
            metadata={"doc": "The engine, see :class:`EngineName`"},
        ),
    }
    for key, settings in engine_sections().items():
        namespace["__annotations__"][key] = settings
        namespace[key] = attr.field(
            factory=settings,
            metadata={"doc": inspect.cleandoc(settings.__doc__ or "")},
        )
    return configuration(type("Engine", (), namespace))


#: ``retrieval.engine``: ``name``, and one settings section per engine
#: (``exhaustive``, ``compression``, ``pisa``, ``bmp``, ``seismic``, ...)
Engine = _engine_section()


@configuration
class Retrieval:
    """Retrieval with the sparse index, and evaluation"""

    topk: Positive = 1000
    """Number of retrieved documents per query"""

    batch_size: Positive = 256
    """Number of queries encoded at once"""

    engine: Engine = Factory(Engine)
    """Retrieval engine of the SPLADE index and its parameters"""

    measures: Names = Factory(lambda: ["RR@10", "nDCG@10", "R@1000", "AP"])
    """Evaluation measures (ir_measures names, ``Measure@k``; on the command
    line: ``-c retrieval.measures=nDCG@10,R@100``)"""

    efficiency_queries: Annotated[int, Ge(0)] = 1000
    """Test queries timed one at a time (one thread) for the efficiency
    columns of each SPLADE model's results (FLOPS, latency with and without
    query encoding, index size); 0: no efficiency measures"""

    evaluate_untrained: bool = False
    """Also index and evaluate the model before training (a sanity check:
    training should improve it)"""

    requirements: str = "duration=1 days & cuda(mem=8G)"
    """Launcher requirements for query encoding and retrieval"""


# --- Export


class ExportFormat(Choice):
    """A format that other engines read (``docs/exporting.md``)"""

    ANSERINI = "anserini"
    """Anserini (Lucene): the documents as a ``JsonVectorCollection`` (JSON
    lines ``{"id", "contents", "vector": {token: integer weight}}``) and the
    queries pre-encoded (TSV for ``SearchCollection``'s ``TsvString``
    topics, JSON lines), integer weights ``round(scale * w)``; indexed and
    searched with ``-impact -pretokenized``"""

    CIFF = "ciff"
    """CIFF, the Common Index File Format (protobuf; Lin et al., SIGIR 2020),
    integer weights ``round(scale * w)``: PISA (``ciff2pisa``), Anserini,
    Terrier and JASS import it"""

    OPENSEARCH = "opensearch"
    """OpenSearch / Elasticsearch: bulk files of the documents' vectors
    (float weights, of which ``rank_features`` and ``sparse_vector`` keep 9
    significant bits: a relative error up to 0.4%), the index mappings, and a
    ``neural_sparse`` / ``sparse_vector`` search body per query"""


class TermNames(Choice):
    """How the exported vectors name their terms"""

    TOKENS = "tokens"
    """The tokenizer's tokens (e.g. ``##ing``); a token with white space (or,
    for Elasticsearch, a dot), an empty one, or an id beyond the tokenizer
    is named ``[<term id>]``"""

    IDS = "ids"
    """The term ids (``"0"`` to ``"30521"`` for BERT)"""


@configuration
class Export:
    """Exports of each SPLADE index, with the test queries of its documents
    encoded by the model, to the formats that other engines read; a task per
    model and collection of documents, after the index is built
    (``docs/exporting.md``; the same exports of any index folder:
    ``python -m splade.export``)"""

    formats: Annotated[List[ExportFormat], BeforeValidator(_split_commas)] = Factory(
        list
    )
    """The formats (``anserini``, ``ciff``, ``opensearch``, see
    :class:`ExportFormat`; on the command line ``-c
    export.formats=anserini,ciff``); empty: no export"""

    scale: Annotated[float, Gt(0)] = 100.0
    """Integer weights are ``round(scale * w)`` (halves to even; weights that
    round to 0 are left out), for ``anserini`` and ``ciff`` (100: as
    Anserini's SPLADE regressions and pyterrier-pisa)"""

    terms: TermNames = TermNames.TOKENS
    """How terms are named: ``tokens`` or ``ids``, see :class:`TermNames`"""

    text: bool = False
    """Also write each document's text (Anserini's ``contents``, a ``text``
    field for OpenSearch / Elasticsearch); otherwise ids and vectors only"""

    index_name: str = "splade"
    """The OpenSearch / Elasticsearch index named in the bulk files"""

    field: str = "splade"
    """The OpenSearch / Elasticsearch field of the vectors"""


@configuration
class SPLADEConfiguration(ConfigurationBase):
    """SPLADE experiment: train, index, retrieve and evaluate"""

    mode: Mode = Mode.TRAIN
    """``train`` or ``zero-shot``, see :class:`Mode`"""

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

    export: Export = Factory(Export)
    """Exports of the SPLADE indices to other engines' formats (none by
    default)"""

    mining: Optional[Mining] = None
    """Hard negatives mined by a first stage and scored by a teacher, to
    train on (SPLADE++ SelfDistil); unset: ``data.train`` is used as it
    is"""

    precision: str = "auto"
    """Numerical precision of training and encoding: ``auto`` uses mixed
    precision (``16-mixed``) on GPU and ``32-true`` on CPU; ``auto-bf16``
    uses ``bf16-mixed`` on a GPU that has bfloat16 (LLMs; else as ``auto``);
    any Lightning Fabric precision string is accepted"""

    seed: int = 0
    """Random seed"""
