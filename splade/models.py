"""The SPLADE models of the papers, built with xpmir"""

from xpmir.neural.splade import SpladeScorer, spladeV2_doc, spladeV2_max

from splade.configuration import Model
from splade.data import hf_model
from splade.encoders import SpladeMaxEncoder
from splade.regularizer import FlopsRegularizer
from splade.workarounds import BinaryQueryEncoder

ARCHITECTURES = {"max": spladeV2_max, "doc": spladeV2_doc}


def splade_model(cfg: Model):
    """Returns the SPLADE scorer, its FLOPS regularizer and the tasks that
    initialize it from the pretrained masked language model

    ``max`` is SPLADE-max (SPLADE v2, max pooling over tokens of
    log(1 + ReLU(MLM logits))); ``doc`` is SPLADE-doc, whose queries are
    binary bags of tokens.
    """
    scorer, flops, init_tasks = ARCHITECTURES[cfg.architecture](
        lambda_q=cfg.lambda_q,
        lambda_d=cfg.lambda_d,
        lambda_warmup_steps=cfg.lambda_warmup_steps,
        hf_id=hf_model(cfg.base_hf_id),
    )
    flops = FlopsRegularizer.C(**flops.__arguments__())
    # Same encoders, with a faster inference (splade/encoders.py)
    encoder = SpladeMaxEncoder.C(**scorer.encoder.__arguments__())
    if cfg.architecture == "doc":
        query_encoder = BinaryQueryEncoder.C(tokenizer=scorer.encoder.tokenizer)
    else:
        query_encoder = SpladeMaxEncoder.C(**scorer.query_encoder.__arguments__())
    scorer = SpladeScorer.C(encoder=encoder, query_encoder=query_encoder)
    scorer.encoder.maxlen = cfg.document_maxlen
    scorer.query_encoder.maxlen = cfg.query_maxlen
    return scorer, flops, init_tasks
