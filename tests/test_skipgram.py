"""Skip-gram: the full softmax's and negative sampling's gradients, checked by finite
differences on both backends; the held-out log-likelihood; the full softmax's fused
step (pyx/softmax_step.pyx) against the gradients and Momentum.step it replaces."""
import math

import numpy as np
import pytest
from test_model import central_differences

from wordnet._objectives import negative_sampling
from wordnet.models.base import Momentum
from wordnet.models.skipgram import SkipGram, SkipGramConfig

V, d = 11, 4


def random_model(backend, seed=0, scale=1.0, dtype="float64"):
    rng = np.random.default_rng(seed)
    return SkipGram({"W1": rng.normal(0, scale, (d, V)), "W2": rng.normal(0, scale, (V, d))},
                    backend, threads=1, dtype=dtype)


def some_pairs(seed=1, N=9, K=3):
    rng = np.random.default_rng(seed)
    pairs = rng.integers(0, V, (N, 2)).astype(np.int32)
    pairs[1] = pairs[0]                       # a centre word twice: its gradients add up
    return pairs, rng.integers(0, V, (N, K)).astype(np.int32)


@pytest.mark.parametrize("backend", ["exact", "fast"])
def test_the_full_softmaxs_gradient_is_its_finite_differences(backend):
    model = random_model(backend)
    pairs, _ = some_pairs()
    grads = {n: np.empty_like(p) for n, p in model.params().items()}
    loss = model.gradients(pairs, grads)
    assert loss == pytest.approx(model.evaluate(pairs)["ce"] * len(pairs))
    numeric = central_differences(lambda: model.evaluate(pairs)["ce"] * len(pairs),
                                  model.params())
    for name in model.PARAMS:
        np.testing.assert_allclose(grads[name], numeric[name], rtol=1e-5, atol=1e-7,
                                   err_msg=name)


@pytest.mark.parametrize("backend", ["exact", "fast"])
def test_negative_samplings_gradient_is_its_finite_differences(backend):
    model = random_model(backend)
    pairs, samples = some_pairs()
    samples[2, 1] = pairs[2, 1]               # a sample may be the context word itself
    grads = {n: np.empty_like(p) for n, p in model.params().items()}
    loss = model.gradients(pairs, grads, samples)
    words = np.ascontiguousarray(np.column_stack([pairs[:, 1], samples]), dtype=np.int32)
    centre = np.ascontiguousarray(pairs[:, 0])
    f = lambda: negative_sampling(model.W1, model.W2, centre, words)
    assert loss == pytest.approx(f())
    numeric = central_differences(f, model.params())
    for name in model.PARAMS:
        np.testing.assert_allclose(grads[name], numeric[name], rtol=1e-5, atol=1e-7,
                                   err_msg=name)


def test_negative_sampling_loss_is_the_formula():
    model = random_model("exact", scale=0.7)
    pairs, samples = some_pairs(N=5, K=2)
    sigmoid = lambda u: 1 / (1 + math.exp(-u))
    expected = 0.0
    for (c, o), negatives in zip(pairs, samples):
        v = model.W1[:, c]
        expected -= math.log(sigmoid(model.W2[o] @ v))
        expected -= sum(math.log(sigmoid(-(model.W2[n] @ v))) for n in negatives)
    words = np.ascontiguousarray(np.column_stack([pairs[:, 1], samples]), dtype=np.int32)
    assert negative_sampling(model.W1, model.W2, np.ascontiguousarray(pairs[:, 0]),
                             words) == pytest.approx(expected, rel=1e-12)


def test_negative_sampling_stays_finite_for_large_scores():
    W1 = np.full((1, 2), 30.0)
    W2 = np.array([[30.0], [-30.0]])          # u = ±900: σ(u) is 0 or 1 in float64
    loss = negative_sampling(W1, W2, np.array([0, 0], np.int32),
                             np.array([[1, 0], [0, 1]], np.int32))
    # the first example gets both wrong by 900 (-log σ(-900) = 900), the second both right
    assert math.isfinite(loss) and loss == pytest.approx(900 + 900)


def test_negative_sampling_refuses_bad_words():
    model = random_model("exact")
    with pytest.raises(ValueError, match="outside"):
        negative_sampling(model.W1, model.W2, np.array([0], np.int32),
                          np.array([[V, 0]], np.int32))


def test_log_likelihood_is_that_of_the_softmax_and_chunks_change_nothing():
    model = random_model("exact", scale=0.5)
    pairs, _ = some_pairs(N=30)
    logits = model.W2 @ model.W1[:, pairs[:, 0]]
    log_p = logits - np.log(np.exp(logits).sum(axis=0))
    expected = log_p[pairs[:, 1], np.arange(len(pairs))].mean()
    figures = model.evaluate(pairs)
    assert figures["log_likelihood"] == pytest.approx(expected, rel=1e-9)
    assert model.evaluate(pairs, chunk=4)["log_likelihood"] == pytest.approx(
        figures["log_likelihood"], rel=1e-12)
    single = SkipGram(model.params(), "fast", dtype="float32")
    assert single.evaluate(pairs)["ce"] == pytest.approx(figures["ce"], rel=1e-5)


def test_negative_sampling_adds_in_the_documented_order_bit_for_bit():
    """The kernel computes, bit for bit, the loop its docstring describes: each score a
    sum from 0.0 in ascending k, log σ from log1p and exp, the gradients added word by
    word (whatever it does to go faster: scores side by side, shared log1p)."""
    def log_sigmoid(u):
        return -math.log1p(math.exp(-u)) if u >= 0 else u - math.log1p(math.exp(u))

    model = random_model("exact", seed=3, scale=0.8)
    pairs, samples = some_pairs(seed=4, N=12, K=10)       # K + 1 = 11 words: 8, then 3
    words = np.ascontiguousarray(np.column_stack([pairs[:, 1], samples]), dtype=np.int32)
    centre = np.ascontiguousarray(pairs[:, 0])
    W1, W2 = model.W1.tolist(), model.W2.tolist()
    dW1, dW2, total = np.zeros((d, V)), np.zeros((V, d)), 0.0
    for c, row in zip(centre.tolist(), words.tolist()):
        v, dv = [W1[k][c] for k in range(d)], [0.0] * d
        for j, w in enumerate(row):
            u = 0.0
            for k in range(d):
                u = u + W2[w][k] * v[k]
            if j == 0:
                total, g = total - log_sigmoid(u), math.exp(log_sigmoid(u)) - 1.0
            else:
                total, g = total - log_sigmoid(-u), math.exp(log_sigmoid(u))
            for k in range(d):
                dv[k] = dv[k] + g * W2[w][k]
                dW2[w, k] = dW2[w, k] + g * v[k]
        for k in range(d):
            dW1[k, c] += dv[k]
    g1, g2 = np.empty_like(model.W1), np.empty_like(model.W2)
    assert negative_sampling(model.W1, model.W2, centre, words, g1, g2) == total
    assert g1.tobytes() == dW1.tobytes() and g2.tobytes() == dW2.tobytes()


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("decay", [0.0, 1e-3])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_fused_full_softmax_step_is_gradients_then_momentum_step(dtype, rtol, decay,
                                                                     threads):
    """Five steps of 40 pairs over 300 words (blocks of 128 rows, the last one short),
    centres and targets repeated: the same weights, velocities and losses, to within
    rounding, as SkipGram.gradients then Momentum.step."""
    words, size, N = 300, 6, 40
    config = SkipGramConfig(backend="fast", negatives=0, embedding_size=size, dtype=dtype,
                            weight_decay=decay)
    rng = np.random.default_rng(3)
    params = {"W1": rng.normal(0, 0.5, (size, words)), "W2": rng.normal(0, 0.5, (words, size))}
    ours, theirs = (SkipGram(params, "fast", threads, dtype) for _ in range(2))
    fused, stepped = (Momentum(m, 0.1, 0.9, N, weight_decay=decay) for m in (ours, theirs))
    grads = {n: np.empty_like(p) for n, p in theirs.params().items()}
    for _ in range(5):
        pairs = rng.integers(0, words, (N, 2)).astype(np.int32)
        pairs[:5, 0] = pairs[0, 0]
        pairs[5:9, 1] = words - 1                       # in the last block, several times
        loss = ours.fused_step(pairs, fused, config)
        assert loss == pytest.approx(theirs.gradients(pairs, grads), rel=rtol)
        stepped.step(grads)
    for name in ("W1", "W2"):
        scale = np.abs(getattr(theirs, name)).max()
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=0,
                                   atol=rtol * scale, err_msg=name)
        np.testing.assert_allclose(fused.velocity[name], stepped.velocity[name], rtol=0,
                                   atol=rtol * scale, err_msg=name)


def test_the_fused_step_is_the_fast_backends_full_softmax_only():
    model = random_model("exact")
    optimizer = Momentum(model, 0.1, 0.9, 9)
    pairs, _ = some_pairs()
    assert model.fused_step(pairs, optimizer, SkipGramConfig(backend="exact")) is None
    fast = random_model("fast")
    assert fast.fused_step(pairs, Momentum(fast, 0.1, 0.9, 9),
                           SkipGramConfig(backend="fast", negatives=5)) is None
    assert fast.fused_step(pairs, Momentum(fast, 0.1, 0.9, 9),
                           SkipGramConfig(backend="fast", negatives=0)) > 0

