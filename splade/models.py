"""The SPLADE models of the papers, built with xpmir"""

from pathlib import Path
from typing import List, Optional

from experimaestro import LightweightTask, Param
from xpm_torch.module import ModuleLoader
from xpmir.neural.splade import SpladeTextEncoder, spladeV2_doc, spladeV2_max
from xpmir.rankers import Scorer

from splade import pretrained
from splade.configuration import (
    Architecture,
    DocumentFlops,
    IdfSource,
    Mode,
    Model,
    Regularization,
)
from splade.encoders import (
    BinaryQueryEncoder,
    ComputeIdf,
    IdfQueryEncoder,
    IdfTable,
    LexicalQueryEncoder,
    ModelIdf,
    SpladeMaxEncoder,
)
from splade.encoders.idf import IDF_FILE
from splade.regularizer import FlopsRegularizer
from splade.workarounds.xpmir import InBatchNegativesScorer

#: xpmir's builder of each architecture (the query side is then replaced)
ARCHITECTURES = {
    Architecture.MAX: spladeV2_max,
    Architecture.DOC: spladeV2_doc,
    Architecture.IDF: spladeV2_doc,
    Architecture.LEXICAL: spladeV2_max,
}

#: The architectures without a query encoder (inference-free)
INFERENCE_FREE = (Architecture.DOC, Architecture.IDF)


def problems(model: Model, downloads: bool, mode: Mode = Mode.TRAIN) -> List[str]:
    """Whether the base model (and the query encoder) can be loaded (a
    local folder must hold the files of its architecture,
    :func:`splade.pretrained.missing_files`), and whether the options fit
    the architecture

    :param downloads: whether the run downloads what it needs (not a dry
        run): a hub id must then be reachable
    """
    found = []
    architecture = str(model.architecture)
    for key in ("base_hf_id", "query_hf_id"):
        value = getattr(model, key)
        if not value:
            continue
        # (a separate query encoder is SPLADE-max; the IDF table of an
        # inference-free model is checked below, as it may come from the
        # documents instead of the folder)
        needs = "max" if key == "query_hf_id" else architecture.replace("idf", "doc")
        folder = Path(value).expanduser()
        if folder.is_dir():  # local: checked in a dry run too
            problem = pretrained.folder_problem(folder, needs)
        else:
            problem = pretrained.problem(value, needs) if downloads else None
        if problem:
            found.append(f"model.{key}: {problem}")
    architecture = Architecture(model.architecture)
    if model.query_hf_id and architecture in INFERENCE_FREE:
        found.append(f"model.query_hf_id: {architecture} has no query encoder")
    if Regularization(model.query_regularization) == Regularization.IDF_FLOPS:
        found.append("model.query_regularization: idf_flops is for documents only")
    if Regularization(model.document_regularization) == Regularization.L1:
        found.append(
            "model.document_regularization: l1 is for queries only (flops or idf_flops)"
        )
    source = idf_source(model, mode)
    if source == IdfSource.MODEL and uses_idf(model):
        local = Path(model.base_hf_id).expanduser()
        if local.is_dir() and not (local / IDF_FILE).is_file():
            found.append(
                f"model.idf: {model.base_hf_id} has no {IDF_FILE} (the IDF table"
                " of an inference-free model, as OpenSearch ships it): set"
                " model.idf=documents to compute one on data.documents"
            )
    return found


def uses_idf(model: Model) -> bool:
    """Whether the model needs an IDF table"""
    return Architecture(model.architecture) == Architecture.IDF or (
        Regularization(model.document_regularization) == Regularization.IDF_FLOPS
    )


def idf_source(model: Model, mode: Mode) -> IdfSource:
    """Where the IDF table comes from (``auto`` resolved)"""
    source = IdfSource(model.idf)
    if source == IdfSource.AUTO:
        zero_shot = Mode(mode) == Mode.ZERO_SHOT
        return IdfSource.MODEL if zero_shot else IdfSource.DOCUMENTS
    return source


def idf_table(model: Model, mode: Mode, documents, launcher=None):
    """The IDF table of the model (None when it needs none): the
    ``idf.json`` of ``model.base_hf_id``, or the output of a
    :class:`ComputeIdf` task on ``documents`` (submitted)"""
    if not uses_idf(model):
        return None
    hf_id = pretrained.resolve(model.base_hf_id)
    if idf_source(model, mode) == IdfSource.MODEL:
        return ModelIdf.C(hf_id=hf_id)
    return ComputeIdf.C(documents=documents, tokenizer=hf_id).submit(launcher=launcher)


def splade_model(cfg: Model, idf: Optional[IdfTable] = None):
    """Returns the SPLADE scorer, its FLOPS regularizer and the tasks that
    initialize it from the pretrained masked language model

    ``max`` is SPLADE-max (SPLADE v2, max pooling over tokens of
    log(1 + ReLU(MLM logits))); ``doc`` is SPLADE-doc, whose queries are
    binary bags of tokens; ``idf`` is inference-free SPLADE whose queries
    are bags of tokens weighted by the IDF table ``idf`` (see
    :func:`idf_table`); ``lexical`` is SPLADE-v3-Lexical.
    """
    architecture = Architecture(cfg.architecture)
    if uses_idf(cfg) and idf is None:
        raise ValueError(f"model.architecture={architecture} needs an IDF table")
    builder = ARCHITECTURES[architecture]
    common = dict(
        lambda_q=cfg.lambda_q,
        lambda_d=cfg.lambda_d,
        lambda_warmup_steps=cfg.lambda_warmup_steps,
    )
    hf_id = pretrained.resolve(cfg.base_hf_id)
    scorer, flops, init_tasks = builder(hf_id=hf_id, **common)
    options = {}
    if DocumentFlops(cfg.document_flops) != DocumentFlops.BATCH:
        options["document_flops"] = str(cfg.document_flops)
    if cfg.anti_zero:
        options["anti_zero"] = True
    if Regularization(cfg.document_regularization) == Regularization.IDF_FLOPS:
        options.update(document_idf=idf, idf_tokenizer=hf_id)
    flops = FlopsRegularizer.C(
        **flops.__arguments__(),
        query_l1=Regularization(cfg.query_regularization) == Regularization.L1,
        **options,
    )
    # Same encoders, with a faster inference (splade/encoders/splade_max.py)
    activation = cfg.document_activation
    if activation is None and architecture == Architecture.IDF:
        activation = "auto"
    encoder = SpladeMaxEncoder.C(**scorer.encoder.__arguments__())
    if activation is not None and str(activation) != "relu":
        encoder.activation = str(activation)
    query_encoder = scorer.query_encoder
    if cfg.query_hf_id:
        # A separate query encoder (Efficient SPLADE): SPLADE-max of its own
        query_scorer, _, query_init = spladeV2_max(
            hf_id=pretrained.resolve(cfg.query_hf_id), **common
        )
        query_encoder, init_tasks = query_scorer.encoder, init_tasks + query_init
    if architecture == Architecture.DOC:
        query_encoder = BinaryQueryEncoder.C(tokenizer=scorer.encoder.tokenizer)
    elif architecture == Architecture.IDF:
        query_encoder = IdfQueryEncoder.C(tokenizer=scorer.encoder.tokenizer, idf=idf)
    elif architecture == Architecture.LEXICAL:
        query_encoder = LexicalQueryEncoder.C(**query_encoder.__arguments__())
    else:
        query_encoder = SpladeMaxEncoder.C(**query_encoder.__arguments__())
    # (xpmir's SpladeScorer, whose in-batch negatives work with several
    # training processes)
    scorer = InBatchNegativesScorer.C(encoder=encoder, query_encoder=query_encoder)
    scorer.encoder.maxlen = cfg.document_maxlen
    scorer.query_encoder.maxlen = cfg.query_maxlen
    return scorer, flops, init_tasks


def load_encoders(model_path, upstream: bool = False, device="cpu", **settings):
    """The (document, query) encoders of the package's SPLADE model with the
    weights of the Hugging Face folder ``model_path``, ready to encode (in
    evaluation mode)

    :param upstream: xpmir's ``SpladeTextEncoder`` with the same parameters
        instead of the package's :class:`SpladeMaxEncoder` (to compare them)
    :param settings: fields of :class:`splade.configuration.Model` (e.g.
        ``document_maxlen``)
    """
    model = Model(base_hf_id=str(model_path), **settings)
    idf = ModelIdf.C(hf_id=str(model_path)) if uses_idf(model) else None
    scorer, _, _ = splade_model(model, idf)
    encoders = []
    for config in (scorer.encoder, scorer.query_encoder):
        plain = isinstance(config, SpladeMaxEncoder) and not isinstance(
            config, LexicalQueryEncoder
        )
        if upstream and plain:
            arguments = config.__arguments__()
            arguments.pop("max_tokens", None)
            arguments.pop("activation", None)
            config = SpladeTextEncoder.C(**arguments)
        encoder = config.instance()
        encoder.initialize()
        encoder.load_model(Path(model_path))
        encoder.to(device)
        encoder.eval()
        encoders.append(encoder)
    return encoders


class InitFromCheckpoint(LightweightTask):
    """Loads the encoders' weights of a trained SPLADE checkpoint (another
    model's, e.g. the first stage of SPLADE-v3 trained by another recipe)
    into a model of other settings (maximum lengths, query side...): each
    encoder of ``model`` loads the Hugging Face folder of the checkpoint's
    encoder, and its query encoder the checkpoint's query encoder folder
    when both have one"""

    checkpoint: Param[ModuleLoader]
    """The checkpoint (a learner's best checkpoint)"""

    model: Param[Scorer]
    """The SPLADE scorer to initialize"""

    def execute(self):
        self.model.initialize()
        self.model.encoder.load_model(Path(self.checkpoint.encoder_path))
        query_path = getattr(self.checkpoint, "query_encoder_path", None)
        query_encoder = self.model.query_encoder
        if query_path and query_encoder is not None:
            query_encoder.load_model(Path(query_path))
