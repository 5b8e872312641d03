"""The SPLADE models of the papers, built with xpmir: over a masked language
model (BERT...), or over a decoder-only language model
(:mod:`splade.encoders.decoder`)"""

from pathlib import Path
from typing import List, Optional

from xpmir.neural.splade import SpladeTextEncoder, spladeV2_doc, spladeV2_max

from splade import pretrained
from splade.configuration import (
    Architecture,
    Backbone,
    DeadTermsRemedy,
    Model,
    Regularization,
    TopKWhen,
    VocabularyHead,
)
from splade.encoders import BinaryQueryEncoder, SpladeMaxEncoder
from splade.encoders.topk import TopK
from splade.regularizer import FlopsRegularizer
from splade.workarounds.xpmir import InBatchNegativesScorer

#: xpmir's builder of each architecture
ARCHITECTURES = {Architecture.MAX: spladeV2_max, Architecture.DOC: spladeV2_doc}


def problems(model: Model, downloads: bool) -> List[str]:
    """Whether the base model can be loaded

    :param downloads: whether the run downloads what it needs (not a dry
        run): a hub id must then be reachable
    """
    found = []
    for key in ("base_hf_id", "query_hf_id"):
        value = getattr(model, key)
        if value and downloads and (problem := pretrained.problem(value)):
            found.append(f"model.{key}: {problem}")
    if model.query_hf_id and Architecture(model.architecture) == Architecture.DOC:
        found.append("model.query_hf_id: SPLADE-doc has no query encoder")
    found += decoder_problems(model)
    if Backbone(model.backbone) == Backbone.DECODER and downloads:
        location = pretrained.resolve(model.base_hf_id)
        if problem := adapter_problem(location, model.decoder.adapter_base):
            found.append(problem)
    if model.topk.query and Architecture(model.architecture) == Architecture.DOC:
        found.append(
            "model.topk.query: SPLADE-doc's queries are bags of tokens (no"
            " query encoder to truncate)"
        )
    return found


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
    if Architecture(model.architecture) == Architecture.DOC:
        found.append("model.architecture: SPLADE-doc is for model.backbone: mlm")
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


def splade_model(cfg: Model, adapted=None):
    """Returns the SPLADE scorer, its FLOPS regularizer and the tasks that
    initialize it from the pretrained language model

    ``max`` is SPLADE-max (SPLADE v2, max pooling over tokens of
    log(1 + ReLU(MLM logits))); ``doc`` is SPLADE-doc, whose queries are
    binary bags of tokens.

    :param adapted: for a decoder, the output of the MNTP adaptation
        (:class:`splade.mntp.MNTPModel`) to start from instead of
        ``base_hf_id``
    """
    if Backbone(cfg.backbone) == Backbone.DECODER:
        return decoder_model(cfg, adapted)
    architecture = Architecture(cfg.architecture)
    builder = ARCHITECTURES[architecture]
    common = dict(
        lambda_q=cfg.lambda_q,
        lambda_d=cfg.lambda_d,
        lambda_warmup_steps=cfg.lambda_warmup_steps,
    )
    scorer, flops, init_tasks = builder(
        hf_id=pretrained.resolve(cfg.base_hf_id), **common
    )
    flops = flops_regularizer(cfg, **flops.__arguments__())
    document_topk, query_topk = topk_options(cfg)
    # Same encoders, with a faster inference (splade/encoders/splade_max.py)
    encoder = SpladeMaxEncoder.C(
        **scorer.encoder.__arguments__(), **encoder_options(cfg, document_topk)
    )
    query_encoder = scorer.query_encoder
    if cfg.query_hf_id:
        # A separate query encoder (Efficient SPLADE): SPLADE-max of its own
        query_scorer, _, query_init = spladeV2_max(
            hf_id=pretrained.resolve(cfg.query_hf_id), **common
        )
        query_encoder, init_tasks = query_scorer.encoder, init_tasks + query_init
    if architecture == Architecture.DOC:
        query_encoder = BinaryQueryEncoder.C(tokenizer=scorer.encoder.tokenizer)
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
    scorer, _, _ = splade_model(Model(base_hf_id=str(model_path), **settings))
    encoders = []
    for config in (scorer.encoder, scorer.query_encoder):
        if upstream and isinstance(config, SpladeMaxEncoder):
            # (xpmir's parameters only: not max_tokens, head, topk)
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
