"""SPLADE-v3's training objective, against small reimplementations of
naver/splade's formulas (written here from splade/hf/trainers.py and
splade/tasks/transformer_trainer.py, commit 8dcd33a): the listwise KL +
MarginMSE loss, the contrastive loss over the batch's negatives, the FLOPS
of documents (the whole batch, or the mean over positives and negatives),
the L1 of queries, the anti-zero term, the IDF-aware FLOPS, and the AdamW of
naver's older code"""

import math

import pytest
import torch

from splade.configuration import Model, Optimization
from splade.distillation import list_scores
from splade.losses import BatchNegativesCrossEntropy, KLMarginMSELoss
from splade.regularizer import FlopsRegularizer, flops

# --- naver/splade's formulas, written out with loops


def naver_kl_margin_mse(scores, teacher):
    """kldiv_mse_margin_with_weights: 0.99 KL(softmax(t) || softmax(s))
    summed over each list and averaged over queries + 0.05 mean over every
    (query, i, j) of ((s_j - s_i) - (t_j - t_i))^2"""
    queries, size = len(scores), len(scores[0])
    kl = 0.0
    for s, t in zip(scores, teacher, strict=True):
        zs = sum(math.exp(x) for x in s)
        zt = sum(math.exp(x) for x in t)
        for x, y in zip(s, t, strict=True):
            p = math.exp(y) / zt
            kl += p * (math.log(p) - (x - math.log(zs)))
    kl /= queries
    mse = 0.0
    for s, t in zip(scores, teacher, strict=True):
        for i in range(size):
            for j in range(size):
                mse += ((s[j] - s[i]) - (t[j] - t[i])) ** 2
    mse /= queries * size * size
    return 0.99 * kl + 0.05 * mse


def naver_contrastive(scores, lists_size):
    """contrastive: for each query, cross-entropy of its positive among
    [its positive, every negative of the batch] (scores: queries x all the
    batch's documents, lists one after the other, positive first)"""
    total = 0.0
    queries = len(scores)
    for q in range(queries):
        positive = scores[q][q * lists_size]
        negatives = [scores[q][d] for d in range(len(scores[q])) if d % lists_size != 0]
        logits = [positive, *negatives]
        total += -positive + math.log(sum(math.exp(x) for x in logits))
    return total / queries


def naver_flops(rows):
    """FLOPS: sum over terms of the squared mean absolute weight"""
    count, width = len(rows), len(rows[0])
    return sum((sum(abs(r[j]) for r in rows) / count) ** 2 for j in range(width))


def naver_l1(rows):
    return sum(sum(abs(x) for x in r) for r in rows) / len(rows)


@pytest.fixture
def lists():
    torch.manual_seed(0)
    scores = torch.randn(4, 9, dtype=torch.float64) * 3
    teacher = torch.randn(4, 9, dtype=torch.float64) * 5
    return scores, teacher


def test_kl_margin_mse_is_navers_weighted_sum(lists):
    scores, teacher = lists
    loss = KLMarginMSELoss.C().instance()
    value = loss.compute(scores, teacher, None).item()
    assert value == pytest.approx(
        naver_kl_margin_mse(scores.tolist(), teacher.tolist()), rel=1e-12
    )
    # its weights are parameters (learner.kl_weight, learner.margin_mse_weight)
    kl_only = KLMarginMSELoss.C(margin_mse_weight=0.0).instance()
    mse_only = KLMarginMSELoss.C(kl_weight=0.0).instance()
    total = kl_only.compute(scores, teacher, None) + mse_only.compute(
        scores, teacher, None
    )
    assert total.item() == pytest.approx(value, rel=1e-12)


def test_kl_margin_mse_is_zero_when_the_student_is_the_teacher(lists):
    _, teacher = lists
    loss = KLMarginMSELoss.C().instance()
    assert loss.compute(teacher, teacher, None).item() == pytest.approx(0, abs=1e-12)
    # shifting every score of a query changes neither the softmax nor margins
    assert loss.compute(teacher + 7, teacher, None).item() == pytest.approx(0, abs=1e-9)


def test_the_batch_scores_give_each_query_its_list_and_every_negative():
    queries, size = 3, 4
    # score of query q against document d: 100 q + d
    scores = torch.tensor(
        [[100.0 * q + d for d in range(queries * size + 5)] for q in range(queries)]
    )
    own, negatives = list_scores(scores, size)
    for q in range(queries):
        assert own[q].tolist() == [100 * q + q * size + i for i in range(size)]
    # the positives (0, 4, 8) are left out; the other processes' documents
    # (12 to 16) come in lists of the same size: their positives (12, 16) too
    columns = (negatives[0] - 0).tolist()
    assert columns == [1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15]


def test_contrastive_is_navers_over_the_batch_negatives():
    torch.manual_seed(1)
    queries, size = 3, 2
    scores = torch.randn(queries, queries * size, dtype=torch.float64)
    own, negatives = list_scores(scores, size)
    loss = BatchNegativesCrossEntropy.C().instance()
    value = loss.compute(own, torch.zeros_like(own), negatives).item()
    assert value == pytest.approx(naver_contrastive(scores.tolist(), size), rel=1e-12)


# --- Regularization


class FakeContext:
    def __init__(self, steps):
        self.steps = steps
        self.losses = []
        self.metrics = type("Metrics", (), {"add": lambda self, metric: None})()

    def add_loss(self, loss):
        self.losses.append(loss)


class Reps:
    def __init__(self, value):
        self.value = value


def regularize(queries, documents, steps=10**6, **options):
    regularizer = FlopsRegularizer.C(
        lambda_q=0.01, lambda_d=0.02, lambda_warmup_steps=30000, **options
    ).instance()
    context = FakeContext(steps)
    regularizer(context, Reps(queries), Reps(documents))
    (loss,) = context.losses
    return loss.value.item()


@pytest.fixture
def batch():
    torch.manual_seed(2)
    queries = torch.relu(torch.randn(4, 30, dtype=torch.float64))
    # 4 positives, then 4 negatives (as the pairwise trainers give them)
    documents = torch.relu(torch.randn(8, 30, dtype=torch.float64)) * 2
    return queries, documents


def test_splade_v3_regularization_is_navers(batch):
    """trainers.py: lambda_d FLOPS(all documents) + lambda_q L1(queries) +
    1/(sum q)^2 + 1/(sum d)^2 (after the warm-up)"""
    queries, documents = batch
    value = regularize(queries, documents, query_l1=True, anti_zero=True)
    q, d = queries.tolist(), documents.tolist()
    anti_zero = 1 / sum(map(sum, q)) ** 2 + 1 / sum(map(sum, d)) ** 2
    expected = 0.02 * naver_flops(d) + 0.01 * naver_l1(q) + anti_zero
    assert value == pytest.approx(expected, rel=1e-12)


def test_pairs_mean_is_navers_older_flops_and_differs_from_the_batch(batch):
    """transformer_trainer.py: (FLOPS(positives) + FLOPS(negatives)) / 2"""
    queries, documents = batch
    q, d = queries.tolist(), documents.tolist()
    mean = regularize(queries, documents, document_flops="pairs_mean")
    expected = 0.02 * (naver_flops(d[:4]) + naver_flops(d[4:])) / 2
    assert mean == pytest.approx(expected + 0.01 * naver_flops(q), rel=1e-12)
    whole = regularize(queries, documents)
    assert whole == pytest.approx(0.02 * naver_flops(d) + 0.01 * naver_flops(q))
    # FLOPS of the whole batch is lower (the mean of the two means, squared,
    # is at most the mean of their squares)
    assert whole < mean


def test_the_quadratic_warm_up_of_the_weights(batch):
    queries, documents = batch
    full = regularize(queries, documents)
    assert regularize(queries, documents, steps=15000) == pytest.approx(full / 4)


def test_idf_aware_flops_divides_each_term_by_its_idf(batch, tmp_path):
    """Geng et al.: the FLOPS of documents whose term j weighs idf_j times
    more in the matching is sum_j (mean_i d_ij / idf_j)^2; with d = idf * w,
    that is the FLOPS of w"""
    import json

    from transformers import BertTokenizerFast

    from splade.encoders import IdfFile

    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocabulary += [f"w{i}" for i in range(25)]
    (tmp_path / "vocab.txt").write_text("\n".join(vocabulary) + "\n")
    BertTokenizerFast(str(tmp_path / "vocab.txt")).save_pretrained(tmp_path / "tok")
    torch.manual_seed(3)
    idf = torch.rand(30, dtype=torch.float64) * 5 + 0.5
    table = {token: float(idf[i]) for i, token in enumerate(vocabulary)}
    (tmp_path / "idf.json").write_text(json.dumps(table))
    _, documents = batch
    weights = documents / idf
    value = regularize(
        torch.zeros(1, 30, dtype=torch.float64),
        documents,
        document_idf=IdfFile.C(path=tmp_path / "idf.json"),
        idf_tokenizer=str(tmp_path / "tok"),
    )
    assert value == pytest.approx(0.02 * flops(weights).item(), rel=1e-6)


# --- The optimizer


def adamw_step(parameters, grads, state, lr, decays, eps, decay_after):
    """One AdamW step (bias-corrected moments, betas 0.9 and 0.999), the
    decoupled weight decay applied after the update (transformers' AdamW,
    naver/splade's splade/optim/bert_optim.py) or before it (torch's)"""
    beta1, beta2 = 0.9, 0.999
    state["t"] = state.get("t", 0) + 1
    t = state["t"]
    out = []
    for i, (p, g, decay) in enumerate(zip(parameters, grads, decays, strict=True)):
        m = beta1 * state.get(("m", i), 0.0) + (1 - beta1) * g
        v = beta2 * state.get(("v", i), 0.0) + (1 - beta2) * g * g
        state["m", i], state["v", i] = m, v
        update = lr * (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + eps)
        if decay_after:
            p = (p - update) * (1 - lr * decay)
        else:
            p = p * (1 - lr * decay) - update
        out.append(p)
    return out


@pytest.mark.parametrize("variant", ["naver", "package"])
def test_the_optimizer_variants(variant):
    """naver: one AdamW for every parameter (biases and LayerNorm decayed),
    eps 1e-6 (torch's AdamW decays before the update, transformers' after:
    a difference of lr x decay x update a step, 1e-7 of the weights here);
    package:
    no decay on biases and LayerNorm, eps 1e-8"""

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.LayerNorm = torch.nn.LayerNorm(2)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = torch.nn.Linear(2, 2)
            self.block = Block()

    lr, decay = 1e-3, 0.5
    optimization = Optimization(lr=lr, weight_decay=decay, variant=variant)
    net = Net().double()
    torch.manual_seed(4)
    for p in net.parameters():
        p.data = torch.randn_like(p.data) * 10 + 30  # large: decay visible
    named = dict(net.named_parameters())
    weights = {n: p.detach().clone() for n, p in named.items()}
    optimizers, taken = [], set()
    for group in optimization.optimizer:
        instance = group.instance()
        names = [
            n
            for n, p in named.items()
            if n not in taken and (instance.filter is None or instance.filter(n, p))
        ]
        taken.update(names)
        optimizers.append((names, instance.optimizer([named[n] for n in names])))
    assert taken == set(named)
    if variant == "naver":
        decays, eps = [decay] * len(named), 1e-6
    else:
        decays = [0.0 if "bias" in n or "LayerNorm" in n else decay for n in named]
        eps = 1e-8
    state = {}
    for step in range(3):
        x = torch.ones(1, 2, dtype=torch.float64)
        loss = (net.block.LayerNorm(net.dense(x) * torch.tensor([1.0, 2.0])) ** 2).sum()
        loss = loss + (net.dense.weight**2).sum() + net.dense.bias.sum() ** 2
        for _, optimizer in optimizers:
            optimizer.zero_grad()
        loss.backward()
        grads = [p.grad.detach().clone() for p in named.values()]
        for _, optimizer in optimizers:
            optimizer.step()
        values = adamw_step(
            list(weights.values()),
            grads,
            state,
            lr,
            decays,
            eps,
            decay_after=variant == "naver",
        )
        weights = dict(zip(named, values, strict=True))
        for n, p in named.items():
            assert torch.allclose(p, weights[n], rtol=5e-7, atol=0), (step, n)
    if variant == "naver":
        # one AdamW's settings for every parameter (in two optimizers, as
        # xpm_torch 0.3.1's Learner fails with one: splade/configuration.py)
        assert all(
            (o.defaults["eps"], o.defaults["weight_decay"]) == (1e-6, decay)
            for _, o in optimizers
        )
    else:
        (no_decay, with_decay) = optimizers
        assert set(no_decay[0]) == {
            "dense.bias",
            "block.LayerNorm.weight",
            "block.LayerNorm.bias",
        }
        assert no_decay[1].defaults["weight_decay"] == 0
        assert with_decay[1].defaults["eps"] == 1e-8


def test_model_options_are_recipe_values():
    """Defaults keep the package's SPLADE (and its task identifiers)"""
    model = Model()
    assert (model.document_flops, model.anti_zero) == ("batch", False)
    assert model.document_regularization == "flops"
