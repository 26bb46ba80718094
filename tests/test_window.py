"""The window scorer: its hinge loss's gradient, checked by finite differences on both
backends, and its ranking evaluation."""
import numpy as np
import pytest
from test_model import central_differences

from wordnet._objectives import hinge_grad
from wordnet.models.window import EVAL_CORRUPTIONS, WindowConfig, WindowScorer, corrupt

V, h1, h2, k = 9, 3, 4, 2
D = 2 * k + 1


def random_scorer(backend, activation, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    shapes = {"W1": (h1, V), "W2": (h2, D * h1), "b2": (h2,), "W3": (1, h2), "b3": (1,)}
    return WindowScorer({n: rng.normal(0, scale, s) for n, s in shapes.items()}, backend,
                        activation=activation, threads=1)


def windows_and_corruptions(seed=1, N=7):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, V, (N, D)).astype(np.int32)
    return x, corrupt(x, (x[:, k] + rng.integers(1, V, N)) % V)    # another centre word


@pytest.mark.parametrize("backend", ["exact", "fast"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_the_hinge_losss_gradient_is_its_finite_differences(backend, activation):
    model = random_scorer(backend, activation)
    model.W3 *= 20                            # scores far apart: margins on both sides of 0
    x, c = windows_and_corruptions()
    grads = {n: np.empty_like(p) for n, p in model.params().items()}
    loss = model.gradients(x, c, grads)
    margins = 1 - model.scores(x) + model.scores(c)
    assert 0 < (margins > 0).sum() < len(x), "both sides of the hinge are exercised"
    assert np.abs(margins).min() > 1e-3, "no margin at the kink, where there is no derivative"
    assert loss == pytest.approx(model.loss(x, c) * len(x))
    numeric = central_differences(lambda: model.loss(x, c) * len(x), model.params())
    for name in model.PARAMS:
        np.testing.assert_allclose(grads[name], numeric[name], rtol=1e-5, atol=1e-7,
                                   err_msg=name)


def test_hinge_grad_kernel():
    s = np.array([2.0, 0.5, 0.0, 0.0, 1.0, -1.0])        # true scores, then corrupted
    ds = np.empty_like(s)
    # margins 1 - 2 + 0 = -1 (none), 1 - 0.5 + 1 = 1.5, 1 - 0 - 1 = 0 (none: not > 0)
    assert hinge_grad(s, ds) == 1.5
    assert ds.tolist() == [0, -1, 0, 0, 1, 0]
    with pytest.raises(ValueError, match="2N"):
        hinge_grad(s[:5], ds[:5])


def test_both_backends_and_float32_score_alike():
    exact = random_scorer("exact", "tanh")
    x, _ = windows_and_corruptions(N=50)
    fast = WindowScorer(exact.params(), "fast", activation="tanh", threads=2)
    single = WindowScorer(exact.params(), "fast", dtype="float32", activation="tanh")
    np.testing.assert_allclose(fast.scores(x), exact.scores(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(single.scores(x), exact.scores(x), rtol=1e-4, atol=1e-5)


def test_evaluation_counts_a_win_when_the_true_window_scores_higher():
    model = random_scorer("exact", "tanh", scale=0.5)
    x, _ = windows_and_corruptions(N=40)
    figures = model.evaluate(x)
    assert 0.0 <= figures["ranking_accuracy"] <= 1.0
    assert figures["loss"] >= max(0.0, 1.0 - figures["mean_margin"]) - 1e-12   # Jensen
    # A scorer that only likes centre word 0 wins every comparison on windows centred on
    # it, and none where the corruption is word 0.
    model.W1[...] = 0
    model.W1[:, 0] = 1.0
    model.W2[...] = 0
    model.W2[:, k * h1:(k + 1) * h1] = 1.0                   # the centre's embedding only
    model.W3[...] = 1.0
    x[:, k] = 0
    assert model.evaluate(x)["ranking_accuracy"] == 1.0
    assert model.evaluate(x, chunk=7) == model.evaluate(x)    # chunks change nothing
    assert EVAL_CORRUPTIONS >= 1


def test_initialize_has_the_recipes_shapes():
    config = WindowConfig(window=3, embedding_size=6, hidden_size=5, init="gaussian",
                          activation="tanh")
    model = WindowScorer.initialize(config, V)
    assert model.W2.shape == (5, 7 * 6) and model.W3.shape == (1, 5) and model.window == 7
    assert not model.b2.any() and model.W1.std() == pytest.approx(0.01, rel=0.3)
