"""The SPLADE models of the papers, built with xpmir: over a masked language
model (BERT...), or over a decoder-only language model
(:mod:`splade.encoders.decoder`)"""

from pathlib import Path
from typing import List, Optional

from experimaestro import LightweightTask, Param
from xpm_torch.module import ModuleLoader
from xpmir.neural.splade import SpladeTextEncoder, spladeV2_doc, spladeV2_max
from xpmir.rankers import Scorer

from splade import pretrained
from splade.configuration import (
    Architecture,
    Backbone,
    DeadTermsRemedy,
    DocumentFlops,
    IdfSource,
    Mode,
    Model,
    Regularization,
    TopKWhen,
    VocabularyHead,
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
from splade.encoders.topk import TopK
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
    found += decoder_problems(model)
    if Backbone(model.backbone) == Backbone.DECODER and downloads:
        location = pretrained.resolve(model.base_hf_id)
        if problem := adapter_problem(location, model.decoder.adapter_base):
            found.append(problem)
    if model.topk.query and architecture in INFERENCE_FREE:
        found.append(
            f"model.topk.query: {architecture}'s queries are bags of tokens (no"
            " query encoder to truncate)"
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


def adapter_problem(location: str, adapter_base: Optional[str]) -> Optional[str]:
    """Why the base of a LoRA adapter (``location``, e.g. a Lion-SP
    checkpoint) cannot be loaded (None if it can, or if ``location`` is not
    an adapter)"""
    from splade.encoders.decoder import adapter_base as named_base

    named = named_base(location)
    if named is None:
        return None
    base = adapter_base or named
    if problem := pretrained.problem(base):
        return (
            f"model.decoder.adapter_base: the LoRA adapter {location} is over"
            f" {named}, and {base} cannot be loaded ({problem}); set"
            " model.decoder.adapter_base to a folder holding that base model"
        )
    return None


def decoder_problems(model: Model) -> List[str]:
    """The options of a decoder backbone that do not go together"""
    found = []
    decoder = Backbone(model.backbone) == Backbone.DECODER
    if not decoder:
        changed = [
            key
            for key, value in (
                ("bidirectional", model.decoder.bidirectional),
                ("echo", model.decoder.echo),
                ("logit_scale", model.decoder.logit_scale != 1.0),
                ("logit_bias", model.decoder.logit_bias != 0.0),
                ("lora", model.decoder.lora is not None),
                ("adapter_base", model.decoder.adapter_base),
            )
            if value
        ]
        found += [
            f"model.decoder.{key}: only for model.backbone: decoder" for key in changed
        ]
        if model.mntp is not None:
            found.append("model.mntp: only for model.backbone: decoder")
        if DeadTermsRemedy(model.dying_relu.remedy) == DeadTermsRemedy.ADAPTATION:
            found.append(
                "model.dying_relu.remedy: the adaptation phase is MNTP, for"
                " model.backbone: decoder"
            )
        return found
    if Architecture(model.architecture) != Architecture.MAX:
        found.append(
            f"model.architecture: {model.architecture} is for model.backbone: mlm"
        )
    if model.query_hf_id:
        found.append("model.query_hf_id: not for model.backbone: decoder")
    if model.decoder.lora is not None and not model.decoder.lora.target_modules:
        found.append("model.decoder.lora.target_modules: at least one layer")
    if model.mntp is not None:
        lora = model.mntp.lora
        if lora is not None and not lora.target_modules:
            found.append("model.mntp.lora.target_modules: at least one layer")
    return found


def topk_options(cfg: Model):
    """The (document, query) :class:`TopK` configurations (None where not
    set)"""
    when = TopKWhen(cfg.topk.when)
    flags = dict(
        training=when in (TopKWhen.TRAINING, TopKWhen.BOTH),
        inference=when in (TopKWhen.INFERENCE, TopKWhen.BOTH),
    )
    return tuple(
        TopK.C(k=k, **flags) if k else None for k in (cfg.topk.document, cfg.topk.query)
    )


def encoder_options(cfg: Model, topk) -> dict:
    """The head and top-k of an encoder (only when not the defaults, so that
    the encoders of the recipes before them keep their identifiers)"""
    options = {}
    if VocabularyHead(cfg.head) != VocabularyHead.AUTO:
        options["head"] = str(cfg.head)
    if topk is not None:
        options["topk"] = topk
    return options


def flops_regularizer(cfg: Model, **arguments):
    """The FLOPS (or L1) regularizer, which also logs the dead vocabulary
    entries (``model.dying_relu.window``)"""
    options = {}
    if cfg.dying_relu.window:
        options["dead_terms_window"] = cfg.dying_relu.window
    return FlopsRegularizer.C(
        **arguments,
        query_l1=Regularization(cfg.query_regularization) == Regularization.L1,
        **options,
    )


def splade_model(cfg: Model, idf: Optional[IdfTable] = None, adapted=None):
    """Returns the SPLADE scorer, its FLOPS regularizer and the tasks that
    initialize it from the pretrained language model

    ``max`` is SPLADE-max (SPLADE v2, max pooling over tokens of
    log(1 + ReLU(MLM logits))); ``doc`` is SPLADE-doc, whose queries are
    binary bags of tokens; ``idf`` is inference-free SPLADE whose queries
    are bags of tokens weighted by the IDF table ``idf`` (see
    :func:`idf_table`); ``lexical`` is SPLADE-v3-Lexical.

    :param idf: the IDF table of ``idf`` and ``idf_flops`` (see
        :func:`idf_table`)
    :param adapted: for a decoder, the output of the MNTP adaptation
        (:class:`splade.mntp.MNTPModel`) to start from instead of
        ``base_hf_id``
    """
    if Backbone(cfg.backbone) == Backbone.DECODER:
        return decoder_model(cfg, adapted)
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
    flops = flops_regularizer(cfg, **flops.__arguments__(), **options)
    document_topk, query_topk = topk_options(cfg)
    # Same encoders, with a faster inference (splade/encoders/splade_max.py)
    activation = cfg.document_activation
    if activation is None and architecture == Architecture.IDF:
        activation = "auto"
    encoder = SpladeMaxEncoder.C(
        **scorer.encoder.__arguments__(), **encoder_options(cfg, document_topk)
    )
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
        query_encoder = SpladeMaxEncoder.C(
            **query_encoder.__arguments__(), **encoder_options(cfg, query_topk)
        )
    # (xpmir's SpladeScorer, whose in-batch negatives work with several
    # training processes)
    scorer = InBatchNegativesScorer.C(encoder=encoder, query_encoder=query_encoder)
    scorer.encoder.maxlen = cfg.document_maxlen
    scorer.query_encoder.maxlen = cfg.query_maxlen
    return scorer, flops, init_tasks


def decoder_model(cfg: Model, adapted=None):
    """SPLADE-max over a causal language model (``model.backbone:
    decoder``): the scorer, its FLOPS regularizer, and the task that loads
    the pretrained weights (of ``base_hf_id``, or of the MNTP adaptation's
    model)"""
    from splade.encoders.decoder import DecoderLocation, LoRA, decoder_encoders

    location = pretrained.resolve(cfg.base_hf_id)
    source = adapted if adapted is not None else DecoderLocation.C(hf_id=location)
    options = cfg.decoder
    lora = None
    if options.lora is not None:
        lora = LoRA.C(
            r=options.lora.r,
            alpha=options.lora.alpha,
            dropout=options.lora.dropout,
            target_modules=list(options.lora.target_modules),
        )
    document_topk, query_topk = topk_options(cfg)
    document, query, init_tasks = decoder_encoders(
        source,
        name=location,
        query_maxlen=cfg.query_maxlen,
        document_maxlen=cfg.document_maxlen,
        bidirectional=options.bidirectional,
        echo=options.echo,
        logit_scale=options.logit_scale,
        logit_bias=options.logit_bias,
        lora=lora,
        adapter_base=options.adapter_base,
        gradient_checkpointing=options.gradient_checkpointing,
        dtype=str(options.dtype),
        head=str(cfg.head),
        query_topk=query_topk,
        document_topk=document_topk,
    )
    scorer = InBatchNegativesScorer.C(encoder=document, query_encoder=query)
    flops = flops_regularizer(
        cfg,
        lambda_q=cfg.lambda_q,
        lambda_d=cfg.lambda_d,
        lambda_warmup_steps=cfg.lambda_warmup_steps,
    )
    return scorer, flops, init_tasks


def adaptation_settings(cfg: Model):
    """The MNTP settings of a model (``model.mntp``, or the adaptation phase
    of ``model.dying_relu.remedy: adaptation``), or None"""
    from splade.configuration import MNTP

    if cfg.mntp is not None:
        return cfg.mntp
    if DeadTermsRemedy(cfg.dying_relu.remedy) == DeadTermsRemedy.ADAPTATION:
        return MNTP(steps=cfg.dying_relu.adaptation_steps)
    return None


def mntp_task(cfg: Model, documents, launcher=None) -> Optional[object]:
    """The MNTP adaptation of a decoder (submitted), whose output is the
    model's starting point; None without adaptation"""
    settings = adaptation_settings(cfg)
    if settings is None or Backbone(cfg.backbone) != Backbone.DECODER:
        return None
    from splade.encoders.decoder import DecoderLocation, LoRA
    from splade.mntp import MNTPAdaptation

    lora = None
    if settings.lora is not None:
        lora = LoRA.C(
            r=settings.lora.r,
            alpha=settings.lora.alpha,
            dropout=settings.lora.dropout,
            target_modules=list(settings.lora.target_modules),
        )
    task = MNTPAdaptation.C(
        source=DecoderLocation.C(hf_id=pretrained.resolve(cfg.base_hf_id)),
        adapter_base=cfg.decoder.adapter_base,
        documents=documents,
        max_documents=settings.max_documents,
        steps=settings.steps,
        batch_size=settings.batch_size,
        lr=settings.lr,
        warmup_steps=settings.warmup_steps,
        weight_decay=settings.weight_decay,
        mask_probability=settings.mask_probability,
        mask_token=settings.mask_token,
        maxlen=settings.maxlen,
        lora=lora,
        dtype=str(cfg.decoder.dtype),
        gradient_checkpointing=settings.gradient_checkpointing,
        checkpoint_interval=settings.checkpoint_interval,
    )
    return task.submit(launcher=launcher)


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
            # (xpmir's parameters only: not max_tokens, activation, head, topk)
            upstream_fields = SpladeTextEncoder.__getxpmtype__().arguments
            arguments = {
                key: value
                for key, value in config.__arguments__().items()
                if key in upstream_fields
            }
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
