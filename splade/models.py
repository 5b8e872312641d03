"""The SPLADE models of the papers, built with xpmir"""

from pathlib import Path
from typing import List

from xpmir.neural.splade import SpladeTextEncoder, spladeV2_doc, spladeV2_max

from splade import pretrained
from splade.configuration import Architecture, Model, Regularization
from splade.encoders import BinaryQueryEncoder, SpladeMaxEncoder
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
    return found


def splade_model(cfg: Model):
    """Returns the SPLADE scorer, its FLOPS regularizer and the tasks that
    initialize it from the pretrained masked language model

    ``max`` is SPLADE-max (SPLADE v2, max pooling over tokens of
    log(1 + ReLU(MLM logits))); ``doc`` is SPLADE-doc, whose queries are
    binary bags of tokens.
    """
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
    flops = FlopsRegularizer.C(
        **flops.__arguments__(),
        query_l1=Regularization(cfg.query_regularization) == Regularization.L1,
    )
    # Same encoders, with a faster inference (splade/encoders/splade_max.py)
    encoder = SpladeMaxEncoder.C(**scorer.encoder.__arguments__())
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
