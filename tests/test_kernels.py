"""Every kernel against a plain numpy/math version, on shapes that are not
multiples of the vector width or register block, down to a batch of 1.

The exact kernels must match bit for bit, so the references here sum in the
same order and take exp/log from the C library (via math), not numpy's SIMD.
"""
import math
import os
import platform

import numpy as np
import pytest

from wordnet._activations import bias_sigmoid, bias_softmax, cross_entropy, exp_shifted
from wordnet._activations import exp_fast_py as exp_fast
from wordnet._gradients import (
    embed,
    embed_grad,
    sigmoid_grad,
    softmax_grad,
    sum_columns,
)
from wordnet._products import gemm, gemm_accumulate
from wordnet._updates import momentum_update, step_ahead, velocity_ahead, velocity_behind

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
        bias_softmax(z, b, y, np.empty(N), True, threads)
        assert np.array_equal(y, expected)
        bias_softmax(z, b, y, np.empty(N), False, threads)
        np.testing.assert_allclose(y, expected, rtol=4e-16 * V, atol=0)


@pytest.mark.parametrize("rows,N", [(1, 1), (128, 100), (7, 3)])
def test_exp_shifted_is_a_softmax_before_its_division(rng, rows, N):
    z = rng.standard_normal((rows, N)) * 20
    m, s = np.empty(N), np.empty(N)
    e = z.copy()
    exp_shifted(e, m, s)
    assert np.array_equal(m, z.max(axis=0))
    np.testing.assert_allclose(e, np.exp(z - m), rtol=1e-15, atol=0)
    np.testing.assert_allclose(s, e.sum(axis=0), rtol=1e-15 * rows)
    np.testing.assert_allclose(e / s, softmax_reference(z), rtol=4e-16 * rows, atol=1e-300)


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
        sum_columns(dz, db, True, threads)
        assert np.array_equal(db, expected)
        sum_columns(dz, db, False, threads)                 # eight partial sums
        np.testing.assert_allclose(db, expected, rtol=1e-13, atol=1e-13)


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
    dW1[...] = np.nan
    embed_grad(dy1, x, dW1, np.empty((h1, V)), False)   # fast: straight into dW1
    np.testing.assert_allclose(dW1, expected, rtol=1e-13, atol=1e-13)
    before = rng.standard_normal((h1, V))
    dW1[...] = before
    embed_grad(dy1, x, dW1, np.empty((h1, V)), False, 0.01, True)   # the fused loop's way
    np.testing.assert_allclose(dW1, before + 0.01 * expected, rtol=1e-13, atol=1e-13)


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


@pytest.mark.parametrize("decay", [0.0, 1e-3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_fused_loops_fast_update_is_the_momentum_update(rng, decay, dtype):
    """The fast loop's way: the velocity ahead, m v + λθ, then BLAS adds dz yᵀ / N to it,
    then θ -= lr v.  The momentum update, rounded otherwise; velocity_behind undoes the
    step ahead to within rounding."""
    dz, y = rng.standard_normal((13, 20)).astype(dtype), rng.standard_normal((7, 20)).astype(dtype)
    theta, vel = rng.standard_normal((13, 7)).astype(dtype), rng.standard_normal((13, 7)).astype(dtype)
    m, lr, inv_n = 0.9, 0.1, 1 / 20
    g = np.empty_like(theta)
    gemm(dz, y, g, False, True, False)
    expected_theta, expected_vel = theta.copy(), vel.copy()
    momentum_update(expected_theta.reshape(-1), expected_vel.reshape(-1), g.reshape(-1), m, lr,
                    inv_n, 1, decay)
    velocity_ahead(vel.reshape(-1), theta.reshape(-1), m, decay)
    gemm_accumulate(dz, y, vel, inv_n, False, True)
    step_ahead(theta.reshape(-1), vel.reshape(-1), lr, m, decay, ahead=False)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(vel, expected_vel, rtol=0, atol=8 * eps * np.abs(vel).max())
    np.testing.assert_allclose(theta, expected_theta, rtol=0, atol=8 * eps * np.abs(theta).max())
    step_ahead(theta.reshape(-1), vel.reshape(-1), 0.0, m, decay)      # the next one's start
    velocity_behind(vel.reshape(-1), theta.reshape(-1), m, decay)
    np.testing.assert_allclose(vel, expected_vel, rtol=0, atol=8 * eps * np.abs(vel).max())


# -- float32, for the fast backend only: the same kernels, specialised ----------------------

f32 = np.float32


def test_float32_gemm_goes_through_blas_and_refuses_the_exact_order(rng):
    A, B = rng.standard_normal((17, 33)).astype(f32), rng.standard_normal((33, 5)).astype(f32)
    C = np.full((17, 5), np.nan, f32)
    gemm(A, B, C, False, False, False, 2)
    np.testing.assert_allclose(C, A.astype(float) @ B.astype(float), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="float64 only"):
        gemm(A, B, C, False, False, True)
    with pytest.raises(ValueError, match="dtype mismatch"):      # one dtype per call
        gemm(A, B.astype(float), C, False, False, False)


def test_float32_exp_fast_is_within_two_ulp():
    x = np.concatenate([np.linspace(-87, 88, 200_001), np.random.default_rng(0).normal(0, 5, 10_000),
                        [0.0, -0.0, 1e-30, -1e-30]]).astype(f32)
    out = np.empty_like(x)
    exp_fast(x, out)
    expected = np.exp(x.astype(np.float64))
    ulps = np.abs(out - expected) / np.spacing(expected.astype(f32))
    assert out.dtype == f32 and ulps.max() <= 2, ulps.max()
    special = np.empty(3, f32)
    exp_fast(np.array([np.nan, -1e4, 1e4], f32), special)
    assert np.isnan(special[0]) and 0 <= special[1] < 1e-37 and special[2] > 1e38


@pytest.mark.parametrize("V,N", [(1, 1), (13, 7), (250, 100)])
def test_float32_activations_match_float64_to_float32_precision(rng, V, N):
    z, b = (rng.standard_normal((V, N)) * 5).astype(f32), rng.standard_normal(V).astype(f32)
    zb = (z + b[:, None]).astype(float)                 # the bias is added in float32
    y = np.empty_like(z)
    bias_sigmoid(z, b, y, False, 2)
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-zb)), rtol=4e-7)
    bias_softmax(z, b, y, np.empty(N, f32), False, 2)
    np.testing.assert_allclose(y, softmax_reference(zb), rtol=1e-6 * V, atol=1e-12)
    t = rng.integers(0, V, N).astype(np.int32)
    assert cross_entropy(y, t) == pytest.approx(cross_entropy(y.astype(float), t), rel=1e-12)


def test_float32_gradient_kernels_compute_in_float32(rng):
    V, N, h1, D = 11, 7, 3, 3
    y3, t = rng.random((V, N)).astype(f32), rng.integers(0, V, N).astype(np.int32)
    dz3 = np.empty_like(y3)
    softmax_grad(y3, t, dz3)
    onehot = np.zeros_like(y3)
    onehot[t, np.arange(N)] = 1
    assert np.array_equal(dz3, y3 - onehot)
    db = np.empty(V, f32)
    sum_columns(dz3, db, True, 2)
    expected = np.zeros(V, f32)
    for i in range(N):
        expected = expected + dz3[:, i]
    assert np.array_equal(db, expected)
    dy2, y2 = rng.standard_normal((V, N)).astype(f32), rng.random((V, N)).astype(f32)
    dz2 = np.empty_like(y2)
    sigmoid_grad(dy2, y2, dz2, 2)
    assert np.array_equal(dz2, (dy2 * y2) * (f32(1) - y2))
    W1, x = rng.standard_normal((h1, V)).astype(f32), rng.integers(0, 4, (N, D)).astype(np.int32)
    y1 = np.empty((D * h1, N), f32)
    embed(W1, x, y1)
    assert np.array_equal(y1, np.concatenate([W1[:, x[:, d]] for d in range(D)]))
    dW1 = np.empty((h1, V), f32)
    embed_grad(y1, x, dW1, np.empty((h1, V), f32))
    reference = np.zeros((h1, V))
    for d in range(D):
        np.add.at(reference.T, x[:, d], y1[d * h1:(d + 1) * h1].T.astype(float))
    np.testing.assert_allclose(dW1, reference, rtol=1e-6, atol=1e-6)


def test_float32_momentum_update(rng):
    theta, vel, g = (rng.standard_normal(1000).astype(f32) for _ in range(3))
    m, lr, inv_n = f32(0.9), f32(0.1), f32(1 / 100)
    expected_vel = m * vel + g * inv_n
    expected_theta = theta - lr * expected_vel
    momentum_update(theta, vel, g, 0.9, 0.1, 1 / 100, 2)
    assert np.array_equal(vel, expected_vel) and np.array_equal(theta, expected_theta)


def test_kernels_are_built_for_the_best_instruction_set_the_builder_had():
    """x86-64-v3 (AVX2) when the building CPU has it, unless WORDNET_MARCH chose otherwise:
    the default build on this machine must not fall back to baseline x86-64 unnoticed."""
    from wordnet import _cpu
    if os.environ.get("WORDNET_MARCH") is not None:
        assert _cpu.BUILT_FOR == os.environ["WORDNET_MARCH"]
        return
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next(l for l in f if l.startswith("flags")).split(":")[1].split())
    except (OSError, StopIteration):
        flags = set()
    has_v3 = {"avx2", "fma", "bmi2", "movbe", "f16c"} <= flags and platform.machine() == "x86_64"
    assert _cpu.BUILT_FOR == ("x86-64-v3" if has_v3 else "")
    _cpu.check()                                          # and this CPU runs them


@pytest.mark.parametrize("V,N", [(1, 1), (5, 3), (250, 100)])
def test_cross_entropy_from_terms_in_target_order_is_the_same_sum(rng, V, N):
    """The fused loop's CE (terms, then summed in target order) equals cross_entropy's."""
    from wordnet._activations import cross_entropy_in_order
    from wordnet.training.trainer import target_order
    y3 = rng.dirichlet(np.ones(V), size=N).T.copy()
    t = rng.integers(0, min(V, 4), N).astype(np.int32)           # many ties
    order = target_order(t[None])[0]
    assert cross_entropy_in_order(y3, t, order) == cross_entropy(y3, t)


def row_padded(a, pad=5):
    """The same values in a view whose rows lie ``pad`` entries further apart."""
    out = np.full((a.shape[0], a.shape[1] + pad), np.nan, dtype=a.dtype)[:, :a.shape[1]]
    out[...] = a
    return out


@pytest.mark.parametrize("exact", [True, False])
def test_batch_kernels_honour_the_row_stride(rng, exact):
    """Buffers have padded rows (Buffers): every batch kernel reads and writes by the row
    stride, giving the bits it gives on contiguous arrays, and never touches the padding."""
    V, h1, h2, D, N = 13, 4, 6, 3, 9
    W1, W2 = rng.standard_normal((h1, V)), rng.standard_normal((h2, D * h1))
    x = rng.integers(0, V, (N, D)).astype(np.int32)
    t = rng.integers(0, V, N).astype(np.int32)
    z, b = rng.standard_normal((V, N)), rng.standard_normal(V)
    results = {}
    for layout in ("contiguous", "padded"):
        arr = (lambda a: a.copy()) if layout == "contiguous" else row_padded
        y1, z2, y3, dz3 = (arr(np.zeros(s)) for s in [(D * h1, N), (h2, N), (V, N), (V, N)])
        embed(W1, x, y1)
        gemm(W2, y1, z2, exact=exact)
        bias_softmax(arr(z), b, y3, np.empty(N), exact)
        softmax_grad(y3, t, dz3)
        db, dW1 = np.empty(V), np.empty_like(W1)
        sum_columns(dz3, db, exact)
        embed_grad(y1, x, dW1, np.empty_like(W1))
        results[layout] = [y1.copy(), z2.copy(), y3.copy(), dz3.copy(), db, dW1,
                           cross_entropy(y3, t)]
        if layout == "padded":
            for a in (y1, z2, y3, dz3):
                assert np.isnan(a.base[:, N:]).all()
    for got, want in zip(results["padded"], results["contiguous"]):
        assert np.array_equal(got, want)


def test_kernels_refuse_arrays_whose_rows_differ_in_stride(rng):
    z = rng.standard_normal((5, 4))
    with pytest.raises(ValueError, match="row stride"):
        bias_softmax(z, np.zeros(5), row_padded(np.empty_like(z)), np.empty(4))
    with pytest.raises(ValueError, match="row strides"):
        softmax_grad(z, np.zeros(4, dtype=np.int32), row_padded(np.empty_like(z)))
    with pytest.raises(ValueError, match="contiguous"):
        sum_columns(z[:, ::2], np.empty(5))


def test_bias_softmax_on_cache_aligned_rows_with_threads(rng):
    """Buffers' rows start on cache lines: the columns then split on a line (48 and 52
    of 100), with the same bits as one thread on contiguous rows."""
    from wordnet.models.fourgram import _cache_aligned
    z, b = rng.standard_normal((250, 100)) * 5, rng.standard_normal(250)
    want = np.empty_like(z)
    bias_softmax(z, b, want, np.empty(100), True, 1)
    z_lines, y = _cache_aligned(z.shape, z.dtype), _cache_aligned(z.shape, z.dtype)
    z_lines[...] = z
    bias_softmax(z_lines, b, y, np.empty(100), True, 2)
    assert np.array_equal(y, want)
