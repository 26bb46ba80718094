"""The network: gradients against finite differences, and the published checkpoint."""
import math

import numpy as np
import pytest

from wordnet.errors import ConfigError
from wordnet.models import checkpoint
from wordnet.models.base import Momentum
from wordnet.models.fourgram import Buffers, FourGramConfig, Model
from wordnet.training.trainer import evaluate


def small_model(backend, rng, activation="sigmoid"):
    V, h1, h2, D = 11, 4, 6, 3
    params = {"W1": rng.normal(0, 0.5, (h1, V)), "W2": rng.normal(0, 0.5, (h2, D * h1)),
              "b2": rng.normal(0, 0.1, h2), "W3": rng.normal(0, 0.5, (V, h2)),
              "b3": rng.normal(0, 0.1, V)}
    return Model(params, backend, activation=activation)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("backend", ["exact", "fast"])
def test_gradients_match_central_differences(backend, activation):
    rng = np.random.default_rng(7)
    model = small_model(backend, rng, activation)
    N = 5
    x = rng.integers(0, model.vocab_size, (N, 3)).astype(np.int32)
    x[1, 2] = x[0, 0]                            # a word at two positions
    t = rng.integers(0, model.vocab_size, N).astype(np.int32)
    buf = Buffers(model, N)

    def total_loss():                            # the batch sum that backward differentiates
        return model.loss(x, t, buf) * N

    grads = {name: np.empty_like(p) for name, p in model.params().items()}
    model.forward(x, buf)
    model.backward(x, t, buf, grads, np.empty_like(model.W1))
    numeric = central_differences(total_loss, model.params())
    for name in grads:
        err = np.linalg.norm(grads[name] - numeric[name]) / max(np.linalg.norm(numeric[name]),
                                                                 1e-12)
        assert err < 1e-6, f"d{name}: relative error {err:.2e}"


def central_differences(f, params: dict, h: float = 1e-6) -> dict:
    """∂f/∂θ for every entry of every array in ``params``, changed in place and restored."""
    numeric = {}
    for name, theta in params.items():
        numeric[name] = np.empty_like(theta)
        flat, nflat = theta.reshape(-1), numeric[name].reshape(-1)
        for k in range(flat.size):
            saved = flat[k]
            flat[k] = saved + h
            up = f()
            flat[k] = saved - h
            down = f()
            flat[k] = saved
            nflat[k] = (up - down) / (2 * h)
    return numeric


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("backend", ["exact", "fast"])
def test_a_weight_decayed_step_follows_the_penalised_losss_gradient(backend, activation):
    """With weight decay λ, one momentum step from zero velocity moves θ by
    -lr · ∇(mean CE + (λ/2)·(‖W1‖² + ‖W2‖² + ‖W3‖²)), the gradient taken by central
    differences of that objective; the biases are not decayed."""
    rng = np.random.default_rng(11)
    model = small_model(backend, rng, activation)
    N, lr, lam = 5, 0.1, 0.03
    x = rng.integers(0, model.vocab_size, (N, 3)).astype(np.int32)
    t = rng.integers(0, model.vocab_size, N).astype(np.int32)
    buf = Buffers(model, N)

    def objective():
        penalty = sum((getattr(model, w) ** 2).sum() for w in ("W1", "W2", "W3"))
        return model.loss(x, t, buf) + lam / 2 * penalty

    numeric = central_differences(objective, model.params())
    before = {name: p.copy() for name, p in model.params().items()}
    grads = {name: np.empty_like(p) for name, p in model.params().items()}
    model.forward(x, buf)
    model.backward(x, t, buf, grads, np.empty_like(model.W1))
    Momentum(model, lr, 0.9, N, weight_decay=lam).step(grads)
    for name, theta in model.params().items():
        moved = (before[name] - theta) / lr
        err = np.linalg.norm(moved - numeric[name]) / np.linalg.norm(numeric[name])
        assert err < 1e-6, f"d{name}: relative error {err:.2e}"
    undecayed = {name: p.copy() for name, p in before.items()}
    plain = Model(undecayed, backend, activation=activation)
    plain.forward(x, buf)
    plain.backward(x, t, buf, grads, np.empty_like(plain.W1))
    Momentum(plain, lr, 0.9, N).step(grads)
    assert np.array_equal(plain.b2, model.b2) and np.array_equal(plain.b3, model.b3)
    assert not np.array_equal(plain.W2, model.W2)


@pytest.mark.parametrize("backend", ["exact", "fast"])
def test_tanh_is_the_c_librarys_or_within_a_few_ulps(backend):
    from wordnet._activations import bias_tanh
    z = np.linspace(-30, 30, 6000).reshape(3, -1)
    b = np.array([0.0, 0.5, -1e-9])
    y = np.empty_like(z)
    bias_tanh(z, b, y, backend == "exact", 2)
    expected = np.tanh(z + b[:, None])
    if backend == "exact":                       # Python's math.tanh is the C library's
        assert np.array_equal(y, np.vectorize(math.tanh)(z + b[:, None]))
    else:
        assert np.max(np.abs(y - expected)) < 4e-16 and np.all(np.abs(y) <= 1)


def test_backends_agree_closely():
    rng = np.random.default_rng(3)
    exact, fast = small_model("exact", rng), None
    fast = Model(exact.params(), "fast")
    x = rng.integers(0, exact.vocab_size, (9, 3)).astype(np.int32)
    np.testing.assert_allclose(exact.predict_proba(x), fast.predict_proba(x), rtol=1e-12)


@pytest.mark.parametrize("bad", [dict(batch_size=0), dict(learning_rate=-0.1),
                                 dict(momentum=1.0), dict(backend="gpu"), dict(init="zeros"),
                                 dict(epochs=1.5), dict(early_stop=-1), dict(dtype="float16"),
                                 dict(dtype="float32"), dict(dtype="float32", backend="exact")])
def test_config_refuses_out_of_range_values(bad):
    with pytest.raises(ConfigError):
        FourGramConfig(**bad)


def test_float32_is_for_the_fast_backend_and_says_so():
    with pytest.raises(ConfigError, match="dtype float32 needs backend = fast"):
        FourGramConfig(dtype="float32")
    assert FourGramConfig(backend="fast", dtype="float32").dtype == "float32"
    with pytest.raises(ConfigError, match="needs backend = fast"):
        Model(small_model("exact", np.random.default_rng(0)).params(), "exact", dtype="float32")


def test_float32_gradients_match_float64():
    rng = np.random.default_rng(5)
    wide = small_model("fast", rng)
    narrow = Model(wide.params(), "fast", dtype="float32")
    assert all(p.dtype == np.float32 for p in narrow.params().values())
    x = rng.integers(0, wide.vocab_size, (8, 3)).astype(np.int32)
    t = rng.integers(0, wide.vocab_size, 8).astype(np.int32)
    grads = {}
    for model in (wide, narrow):
        buf = Buffers(model, 8)
        assert buf.y3.dtype == model.dtype
        g = {name: np.empty_like(p) for name, p in model.params().items()}
        model.forward(x, buf)
        model.backward(x, t, buf, g, np.empty_like(model.W1))
        grads[model.dtype] = g
    for name, g64 in grads[np.dtype(np.float64)].items():
        g32 = grads[np.dtype(np.float32)][name]
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.fixture(scope="module")
def published(data_dir, dataset):
    header, params = checkpoint.load(data_dir / "model9-3000.bin", vocab_size=len(dataset.vocab))
    return Model(params, "exact")


def test_published_model_predicts_have_a_good(published, dataset):
    p = published.predict_proba(dataset.vocab.encode(["have", "a", "good"]))[0]
    top = np.argsort(-p, kind="stable")[:5]
    got = [(dataset.vocab.words[i], f"{p[i]:.6f}") for i in top]
    assert got == [("time", "0.332076"), ("day", "0.102091"), ("game", "0.059815"),
                   ("team", "0.057552"), ("year", "0.041762")]


def test_published_model_test_and_validation_ce(published, dataset):
    test = evaluate(published, dataset.test)
    assert f"{test.ce:.8f}" == "2.62474208"
    assert test.examples == 46_500
    assert f"{test.top1:.4f}" == "0.3632"
    assert round(test.top5, 3) == 0.666
    assert f"{evaluate(published, dataset.valid, accuracy=False).ce:.8f}" == "2.61306789"


def test_predict_proba_batch_of_one_equals_batch(published):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 250, (37, 3)).astype(np.int32)
    together = published.predict_proba(x)
    alone = np.vstack([published.predict_proba(row) for row in x])
    assert np.array_equal(together, alone)
    assert np.array_equal(published.predict_proba(x, chunk=10), together)   # 3 chunks + 7
    assert published.predict_proba(x[:0]).shape == (0, 250)
    np.testing.assert_allclose(together.sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_buffers_rows_start_on_cache_lines(dtype):
    """So that threads splitting the columns at a line boundary never share a line."""
    model = Model.initialize(FourGramConfig(backend="fast", dtype=dtype), 250)
    buf = Buffers(model, 100)
    for name in ("y1", "dy1", "z2", "y2", "dy2", "dz2", "z3", "y3", "dz3"):
        a = getattr(buf, name)
        assert a.shape[1] == 100 and a.dtype == model.dtype, name
        assert a.ctypes.data % 64 == 0 and a.strides[0] % 64 == 0, name


def test_wordnet_threads_sets_the_default_threads(monkeypatch):
    from wordnet.errors import ConfigError
    from wordnet.models.base import default_threads
    monkeypatch.setenv("WORDNET_THREADS", "3")
    assert default_threads() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("WORDNET_THREADS", bad)
        with pytest.raises(ConfigError, match=r"\$WORDNET_THREADS must be a whole number"):
            default_threads()
