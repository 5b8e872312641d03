"""SPLADE-v3-Lexical's query encoder: SPLADE-max, restricted to the query's
own tokens"""

import torch
from xpm_torch.module import initialized
from xpmir.text.encoders import TextsRepresentationOutput

from splade.encoders.splade_max import SpladeMaxEncoder

__all__ = ["LexicalQueryEncoder"]


class LexicalQueryEncoder(SpladeMaxEncoder):
    """SPLADE-max whose vector keeps only the weights of the text's own
    tokens (no expansion, term weighting only): SPLADE-v3-Lexical (Lassance
    et al. 2024, https://arxiv.org/abs/2403.06789), naver/splade's
    ``lexical_type: query`` (``splade/hf/trainers.py`` multiplies the query
    vectors by the bag of the query's tokens, without [PAD], [CLS], [SEP]
    and [MASK], before scoring and regularizing them)"""

    def __initialize__(self):
        super().__initialize__()
        hf_tokenizer = self.tokenizer.tokenizer.tokenizer
        dropped = [
            hf_tokenizer.pad_token_id,
            hf_tokenizer.cls_token_id,
            hf_tokenizer.sep_token_id,
            hf_tokenizer.mask_token_id,
            hf_tokenizer.bos_token_id,
            hf_tokenizer.eos_token_id,
        ]
        self._dropped = sorted({i for i in dropped if i is not None})

    @initialized
    def forward(self, texts) -> TextsRepresentationOutput:
        output = super().forward(texts)
        value = output.value
        bag = torch.zeros_like(value)
        ids = output.tokenized.ids.to(value.device)
        bag.scatter_(1, ids, output.tokenized.mask.to(value.device).to(value.dtype))
        bag[:, self._dropped] = 0
        return TextsRepresentationOutput(value * bag, output.tokenized)
