"""Every kernel against a plain numpy/math version, on shapes that are not
multiples of the vector width or register block, down to a batch of 1.

The exact kernels must match bit for bit, so the references here sum in the
same order and take exp/log from the C library (via math), not numpy's SIMD.
"""
import math

import numpy as np
import pytest

from wordnet._activations import bias_sigmoid, bias_softmax, cross_entropy
from wordnet._activations import exp_fast_py as exp_fast
from wordnet._gradients import embed, embed_grad, sigmoid_grad, softmax_grad, sum_columns
from wordnet._products import gemm
from wordnet._updates import momentum_update

SHAPES = [(1, 1, 1), (1, 7, 3), (3, 1, 5), (5, 3, 1), (7, 9, 13), (17, 33, 5), (250, 100, 200)]
exp = np.vectorize(math.exp, otypes=[float])
log = np.vectorize(math.log, otypes=[float])


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def ordered_product(A, B):
    """C = A·B with each entry summed from 0.0 in ascending k, one product at a time."""
    C = np.zeros((A.shape[0], B.shape[1]))
    for k in range(A.shape[1]):
        C += np.outer(A[:, k], B[k, :])
    return C


@pytest.mark.parametrize("M,N,K", SHAPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm(rng, M, N, K, trans_a, trans_b):
    A = rng.standard_normal((K, M) if trans_a else (M, K))
    B = rng.standard_normal((N, K) if trans_b else (K, N))
    expected = ordered_product(A.T if trans_a else A, B.T if trans_b else B)
    C = np.full((M, N), np.nan)
    gemm(A, B, C, trans_a, trans_b, True)
    assert np.array_equal(C, expected)
    for threads in (2, 3):                      # rows split among threads: same bits
        C = np.full((M, N), np.nan)
        gemm(A, B, C, trans_a, trans_b, True, threads)
        assert np.array_equal(C, expected)
    for threads in (1, 2):
        C = np.full((M, N), np.nan)
        gemm(A, B, C, trans_a, trans_b, False, threads)
        np.testing.assert_allclose(C, expected, rtol=1e-12, atol=1e-12)


def test_gemm_rejects_mismatched_shapes(rng):
    with pytest.raises(ValueError, match="shapes"):
        gemm(rng.standard_normal((3, 4)), rng.standard_normal((5, 2)), np.empty((3, 2)))


@pytest.mark.parametrize("rows,N", [(1, 1), (3, 7), (200, 100), (13, 1)])
def test_bias_sigmoid(rng, rows, N):
    z, b = rng.standard_normal((rows, N)) * 10, rng.standard_normal(rows)
    expected = 1.0 / (1.0 + exp(-(z + b[:, None])))
    for threads in (1, 2):
        y = np.empty_like(z)
        bias_sigmoid(z, b, y, True, threads)
        assert np.array_equal(y, expected)
        bias_sigmoid(z, b, y, False, threads)
        np.testing.assert_allclose(y, expected, rtol=1e-15, atol=0)


def softmax_reference(z):
    out = np.empty_like(z)
    for i in range(z.shape[1]):
        e = exp(z[:, i] - z[:, i].max())
        s = 0.0
        for v in e:
            s += v
        out[:, i] = e / s
    return out


@pytest.mark.parametrize("V,N", [(1, 1), (2, 3), (250, 100), (17, 1)])
def test_bias_softmax(rng, V, N):
    z, b = rng.standard_normal((V, N)) * 5, rng.standard_normal(V)
    expected = softmax_reference(z + b[:, None])
    for threads in (1, 2):
        y = np.empty_like(z)
        bias_softmax(z, b, y, None, True, threads)
        assert np.array_equal(y, expected)
        bias_softmax(z, b, y, None, False, threads)
        np.testing.assert_allclose(y, expected, rtol=4e-16 * V, atol=0)


def test_exp_fast_is_within_two_ulp_of_libm():
    x = np.concatenate([np.linspace(-708, 709, 200_001), np.random.default_rng(0).normal(0, 5, 10_000),
                        [0.0, -0.0, 1e-300, -1e-300, 0.5 * math.log(2), -0.5 * math.log(2)]])
    out = np.empty_like(x)
    exp_fast(x, out)
    expected = exp(x)
    ulps = np.abs(out - expected) / np.spacing(expected)
    assert ulps.max() <= 2, ulps.max()


def test_exp_fast_keeps_nan_and_saturates():
    out = np.empty(4)
    exp_fast(np.array([np.nan, -1e4, 1e4, -np.inf]), out)
    assert np.isnan(out[0]) and 0 <= out[1] < 1e-300 and out[2] > 1e307 and 0 <= out[3] < 1e-300


@pytest.mark.parametrize("V,N", [(1, 1), (5, 3), (250, 100)])
def test_cross_entropy_sums_in_target_order(rng, V, N):
    y3 = rng.dirichlet(np.ones(V), size=N).T.copy()
    t = rng.integers(0, V, N).astype(np.int32)
    total = 0.0
    for i in sorted(range(N), key=lambda i: (t[i], i)):
        total += math.log(y3[t[i], i] + math.exp(-30.0))
    assert cross_entropy(y3, t) == -total / N


@pytest.mark.parametrize("V,N", [(1, 1), (5, 3), (250, 100)])
def test_softmax_grad(rng, V, N):
    y3 = rng.random((V, N))
    t = rng.integers(0, V, N).astype(np.int32)
    dz3 = np.empty_like(y3)
    softmax_grad(y3, t, dz3)
    onehot = np.zeros_like(y3)
    onehot[t, np.arange(N)] = 1.0
    assert np.array_equal(dz3, y3 - onehot)


@pytest.mark.parametrize("rows,N", [(1, 1), (3, 7), (250, 100)])
def test_sum_columns(rng, rows, N):
    dz = rng.standard_normal((rows, N))
    expected = np.zeros(rows)
    for i in range(N):
        expected = expected + dz[:, i]
    for threads in (1, 2):
        db = np.empty(rows)
        sum_columns(dz, db, threads)
        assert np.array_equal(db, expected)


@pytest.mark.parametrize("rows,N", [(1, 1), (3, 7), (200, 100)])
def test_sigmoid_grad(rng, rows, N):
    dy2, y2 = rng.standard_normal((rows, N)), rng.random((rows, N))
    for threads in (1, 2):
        dz2 = np.empty_like(y2)
        sigmoid_grad(dy2, y2, dz2, threads)
        assert np.array_equal(dz2, (dy2 * y2) * (1.0 - y2))


@pytest.mark.parametrize("h1,V,N,D", [(1, 1, 1, 1), (3, 5, 7, 3), (50, 250, 100, 3), (4, 9, 1, 2)])
def test_embed(rng, h1, V, N, D):
    W1 = rng.standard_normal((h1, V))
    x = rng.integers(0, V, (N, D)).astype(np.int32)
    y1 = np.empty((D * h1, N))
    embed(W1, x, y1)
    assert np.array_equal(y1, np.concatenate([W1[:, x[:, d]] for d in range(D)]))


@pytest.mark.parametrize("h1,V,N,D", [(1, 1, 1, 1), (3, 5, 7, 3), (50, 250, 100, 3), (4, 9, 1, 2)])
def test_embed_grad(rng, h1, V, N, D):
    dy1 = rng.standard_normal((D * h1, N))
    x = rng.integers(0, min(V, 4), (N, D)).astype(np.int32)     # repeated words
    expected = np.zeros((h1, V))
    for d in range(D):
        part = np.zeros((h1, V))
        for i in range(N):
            part[:, x[i, d]] += dy1[d * h1:(d + 1) * h1, i]
        expected += part
    dW1 = np.full((h1, V), np.nan)
    embed_grad(dy1, x, dW1, np.empty((h1, V)))
    assert np.array_equal(dW1, expected)


def test_embed_rejects_out_of_range_words(rng):
    with pytest.raises(ValueError, match="outside"):
        embed(rng.standard_normal((2, 5)), np.array([[0, 5, 1]], np.int32), np.empty((6, 1)))


@pytest.mark.parametrize("n", [1, 3, 30_000])
def test_momentum_update(rng, n):
    theta, vel, g = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n)
    m, lr, inv_n = 0.9, 0.1, 1.0 / 100
    expected_vel = m * vel + g * inv_n
    expected_theta = theta - lr * expected_vel
    momentum_update(theta, vel, g, m, lr, inv_n, 2)
    assert np.array_equal(vel, expected_vel)
    assert np.array_equal(theta, expected_theta)
