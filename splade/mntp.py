"""Masked next-token prediction (MNTP): a causal LM adapted to bidirectional
attention, before SPLADE's ranking training

LLM2Vec's adaptation (BehnamGhader et al., COLM 2024, arXiv 2404.05961),
used by Lion-SP (Zeng et al., SIGIR 2025, arXiv 2502.15526;
HansiZeng/scaling-retriever ``run_mntp.py``) and LACONIC: the causal mask
is removed, a share of the tokens of the documents is replaced by a mask
token, and the model learns to predict each masked token from the state of
the token *before* it (the position that predicts it as a causal LM),
through its LM head, with a cross-entropy loss on the masked tokens only.

:class:`MNTPAdaptation` is an experimaestro task of its own: its result (a
Hugging Face folder, the LoRA merged) is shared by every model that starts
from it, it checkpoints every ``checkpoint_interval`` steps and resumes
from its last checkpoint when it is run again, and it reports its progress
and loss (the experimaestro web monitor, TensorBoard under its folder's
``runs/``, and its log).
"""

import json
import logging
import math
import shutil
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch
from datamaestro_ir.data import DocumentStore
from experimaestro import Meta, Param, PathGenerator, Task, field
from xpmir.text.huggingface.base import HFConfig

from splade.encoders.decoder import (
    LoRA,
    load_causal_lm,
    load_tokenizer,
    resolve_dtype,
    set_bidirectional,
)

__all__ = ["MNTPAdaptation", "MNTPModel", "mask_tokens", "merge_lora", "mntp_loss"]

logger = logging.getLogger(__name__)

#: LLM2Vec's mask token for models without one ("blank")
BLANK = "_"


class MNTPModel(HFConfig):
    """The model an :class:`MNTPAdaptation` made (a Hugging Face folder)"""

    path: Meta[Path]
    """Its folder"""

    def location(self) -> str:
        return str(self.path)


def mask_tokens(ids, attention, probability: float, mask_id: int, generator):
    """Masks each real token but the first (which no position predicts)
    with the given probability (at least one per text): the masked ids
    and the labels (-100 where not masked)"""
    chosen = torch.rand(ids.shape, generator=generator) < probability
    chosen &= attention.bool()
    chosen[:, 0] = False
    lengths = attention.sum(dim=1)
    for row in torch.nonzero(~chosen.any(dim=1)).flatten().tolist():
        if lengths[row] > 1:
            position = 1 + int(
                torch.randint(int(lengths[row]) - 1, (1,), generator=generator)
            )
            chosen[row, position] = True
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    masked = torch.where(chosen, torch.full_like(ids, mask_id), ids)
    return masked, labels


def mntp_loss(model, backbone, ids, attention, labels):
    """Cross-entropy of the masked tokens, each predicted by the LM head at
    the position before it (only those positions are projected); returns
    (loss, number of masked tokens, accuracy)"""
    hidden = backbone(input_ids=ids, attention_mask=attention).last_hidden_state
    rows, columns = torch.nonzero(labels[:, 1:] != -100, as_tuple=True)
    logits = model.get_output_embeddings()(hidden[rows, columns])
    targets = labels[rows, columns + 1]
    loss = torch.nn.functional.cross_entropy(logits.float(), targets)
    accuracy = (logits.argmax(dim=-1) == targets).float().mean()
    return loss, len(targets), float(accuracy)


def merge_lora(model):
    """Merges the LoRA adapters of ``model`` into their base layers and
    removes them (in place); returns the model"""
    from peft.tuners.lora import LoraLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())
    if hasattr(model, "peft_config"):
        del model.peft_config
    return model


class MNTPAdaptation(Task):
    """Adapts a causal LM to bidirectional attention by masked next-token
    prediction on documents (see the module)"""

    source: Param[HFConfig]
    """The causal LM (:class:`~splade.encoders.decoder.DecoderLocation`)"""

    adapter_base: Param[Optional[str]] = field(default=None, ignore_default=True)
    """For an adapter source: its base model"""

    documents: Param[DocumentStore]
    """The texts"""

    max_documents: Param[int] = field(default=0)
    """Documents drawn from (the first ones; 0: all)"""

    steps: Param[int] = field(default=10_000)
    """Optimization steps"""

    batch_size: Param[int] = field(default=32)
    """Texts per step"""

    lr: Param[float] = field(default=5e-5)
    """Learning rate (AdamW), after a linear warm-up, then linear decay"""

    warmup_steps: Param[int] = field(default=0)
    """Steps of linear warm-up"""

    weight_decay: Param[float] = field(default=0.0)
    """AdamW weight decay"""

    mask_probability: Param[float] = field(default=0.2)
    """Share of the tokens masked"""

    mask_token: Param[Optional[str]] = field(default=None, ignore_default=True)
    """The mask token (unset: the tokenizer's, or ``_`` as LLM2Vec's
    "blank" for models without one)"""

    maxlen: Param[int] = field(default=512)
    """Maximum number of tokens of a text"""

    lora: Param[Optional[LoRA]] = field(default=None, ignore_default=True)
    """LoRA adapters (merged at the end; unset: every weight is trained)"""

    seed: Param[int] = field(default=0)
    """Seed of the documents' sampling, the masking and the LoRA
    initialisation"""

    dtype: Meta[str] = field(default="auto", ignore_default=True)
    """Weights' dtype (see :class:`~splade.encoders.decoder.HFDecoderModel`)"""

    gradient_checkpointing: Meta[bool] = field(default=False, ignore_default=True)
    """Recompute the activations in the backward pass"""

    checkpoint_interval: Meta[int] = field(default=1000, ignore_default=True)
    """Steps between two checkpoints (a killed task resumes from the last)"""

    log_interval: Meta[int] = field(default=10, ignore_default=True)
    """Steps between two logged losses"""

    path: Meta[Path] = field(default_factory=PathGenerator("model"))
    """The adapted model (a Hugging Face folder)"""

    checkpoint: Meta[Path] = field(default_factory=PathGenerator("checkpoint"))
    """The last checkpoint"""

    runs: Meta[Path] = field(default_factory=PathGenerator("runs"))
    """TensorBoard logs"""

    def task_outputs(self, dep):
        return dep(MNTPModel.C(path=self.path))

    # --- Data

    def _texts(self, step: int) -> List[str]:
        """The texts of a step: drawn at random (the seed and the step give
        them, so that a resumed task draws the same ones)"""
        count = self.documents.documentcount
        if self.max_documents:
            count = min(count, self.max_documents)
        random = np.random.RandomState([self.seed, step])
        texts = []
        for index in random.randint(0, count, self.batch_size).tolist():
            document = self.documents.document_int(index)
            texts.append(document["text_item"].text or "")
        return texts

    # --- Training

    def execute(self):
        self.adapt(self.path, self.checkpoint, self.runs)

    def adapt(self, path: Path, checkpoint: Path, runs: Path):
        """Trains, resuming from ``checkpoint`` if there is one, and writes
        the model in ``path`` (TensorBoard logs in ``runs``)"""
        from torch.utils.tensorboard import SummaryWriter

        from splade.encoders.decoder import DecoderBackbone

        torch.manual_seed(self.seed)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        location = self.source.location()
        dtype = resolve_dtype(self.dtype, self.lora is not None)
        model = load_causal_lm(location, dtype, self.adapter_base)
        set_bidirectional(model, True)
        if self.lora is not None:
            from peft import inject_adapter_in_model

            inject_adapter_in_model(self.lora.peft_config(location), model)
            for name, parameter in model.named_parameters():
                if "lora_" in name:
                    parameter.data = parameter.data.float()
        if self.gradient_checkpointing:
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        model.config.use_cache = False
        model.to(device).train()
        backbone = DecoderBackbone(model, bidirectional=True)

        tokenizer = load_tokenizer(location, self.adapter_base)
        mask_token = self.mask_token or tokenizer.mask_token or BLANK
        mask_id = tokenizer.convert_tokens_to_ids(mask_token)
        if mask_id is None or mask_id == tokenizer.unk_token_id:
            raise ValueError(f"the mask token {mask_token!r} is not in the vocabulary")

        parameters = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            parameters, lr=self.lr, weight_decay=self.weight_decay
        )

        def factor(step):
            if step < self.warmup_steps:
                return (step + 1) / self.warmup_steps
            remaining = self.steps - self.warmup_steps
            return max(0.0, (self.steps - step) / max(1, remaining))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        start = self._resume(checkpoint, model, optimizer, scheduler)
        writer = SummaryWriter(str(runs))
        generator = torch.Generator()
        autocast = device.type == "cuda" and dtype == torch.float32
        bf16 = autocast and torch.cuda.is_bf16_supported()

        from experimaestro import progress

        losses = []
        for step in range(start, self.steps):
            generator.manual_seed(self.seed * 1_000_003 + step)
            encoded = tokenizer(
                self._texts(step),
                truncation=True,
                max_length=self.maxlen,
                padding=True,
                return_tensors="pt",
            )
            ids, attention = encoded["input_ids"], encoded["attention_mask"]
            masked, labels = mask_tokens(
                ids, attention, self.mask_probability, mask_id, generator
            )
            with torch.autocast(
                device.type,
                dtype=torch.bfloat16 if bf16 else torch.float16,
                enabled=autocast,
            ):
                loss, count, accuracy = mntp_loss(
                    model,
                    backbone,
                    masked.to(device),
                    attention.to(device),
                    labels.to(device),
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            writer.add_scalar("mntp/loss", losses[-1], step + 1)
            writer.add_scalar("mntp/accuracy", accuracy, step + 1)
            if (step + 1) % self.log_interval == 0 or step + 1 == self.steps:
                recent = losses[-self.log_interval :]
                logger.info(
                    "MNTP step %d/%d: loss %.4f (perplexity %.1f), accuracy %.3f",
                    step + 1,
                    self.steps,
                    sum(recent) / len(recent),
                    math.exp(min(50.0, sum(recent) / len(recent))),
                    accuracy,
                )
            progress((step + 1) / self.steps)
            if (step + 1) % self.checkpoint_interval == 0 and step + 1 < self.steps:
                self._save_checkpoint(checkpoint, step + 1, model, optimizer, scheduler)
        writer.close()
        self._save_model(path, checkpoint, model, tokenizer, mask_token, losses)

    # --- Checkpoints and result

    def _save_checkpoint(self, checkpoint, step, model, optimizer, scheduler):
        trained = {
            name: parameter.detach().cpu()
            for name, parameter in model.named_parameters()
            if parameter.requires_grad
        }
        temporary = checkpoint.with_name(checkpoint.name + ".tmp")
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        torch.save(
            {
                "step": step,
                "model": trained,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all()
                if torch.cuda.is_available()
                else [],
            },
            temporary / "state.pt",
        )
        shutil.rmtree(checkpoint, ignore_errors=True)
        temporary.rename(checkpoint)
        logger.info("MNTP checkpoint at step %d", step)

    def _resume(self, checkpoint, model, optimizer, scheduler) -> int:
        state_file = checkpoint / "state.pt"
        if not state_file.is_file():
            return 0
        state = torch.load(state_file, map_location="cpu", weights_only=True)
        parameters = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in state["model"].items():
                parameters[name].copy_(value)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        logger.info("MNTP resumes at step %d", state["step"])
        return state["step"]

    def _save_model(self, path, checkpoint, model, tokenizer, mask_token, losses):
        if self.lora is not None:
            merge_lora(model)
        temporary = path.with_name(path.name + ".tmp")
        shutil.rmtree(temporary, ignore_errors=True)
        model.save_pretrained(temporary)
        tokenizer.save_pretrained(temporary)
        info = {
            "source": self.source.location(),
            "steps": self.steps,
            "mask_token": mask_token,
            "mask_probability": self.mask_probability,
            "final_loss": sum(losses[-10:]) / max(1, len(losses[-10:])),
        }
        (temporary / "mntp.json").write_text(json.dumps(info, indent=2) + "\n")
        shutil.rmtree(path, ignore_errors=True)
        temporary.rename(path)
        shutil.rmtree(checkpoint, ignore_errors=True)
