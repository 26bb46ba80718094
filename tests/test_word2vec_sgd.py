"""word2vec's optimiser (``lr_schedule = "linear"``): the per-pair SGD kernel of negative
sampling (pyx/sgd.pyx) against the loss's gradient and a plain numpy version, its
linear rate, its threads; the schedule in the trainers of every model."""
import dataclasses

import numpy as np
import pytest
from test_model import central_differences

from wordnet._objectives import negative_sampling
from wordnet._sampling import alias_draw_many
from wordnet._sgd import sgd_negative_sampling
from wordnet.data.corpus import load_corpus
from wordnet.data.dataset import Vocabulary
from wordnet.errors import ConfigError
from wordnet.models.config import LINEAR_FLOOR, TrainingConfig
from wordnet.models.sampler import alias_table
from wordnet.models.skipgram import SkipGram
from wordnet.models.window import WindowScorer
from wordnet.runs.recipes import load_recipe, make_config
from wordnet.training.sampled import SampledTrainer, examples

V, d = 13, 10                # d > 8: the dot products' partial sums and their tail


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(Vocabulary.embedded(), None)


def weights(seed=0, scale=0.5, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, scale, (V, d)).astype(dtype), rng.normal(0, scale, (V, d)).astype(dtype))


def table(seed=4):
    p = np.random.default_rng(seed).random(V) + 0.05
    return alias_table(p / p.sum())


def step(E, W2, pairs, K, seed, lr=0.1, done=0.0, total=1e9, N=None, threads=1, ordered=False):
    N = len(pairs) if N is None else N
    losses = np.empty(len(pairs) // N)
    states = np.array([seed] * threads, np.uint64)
    sgd_negative_sampling(E, W2, np.ascontiguousarray(pairs, np.int32), N, K, *table(),
                          states, lr, LINEAR_FLOOR, done, total, losses, threads, ordered)
    return losses


def drawn(seed, count):
    words = np.empty(count, np.int32)
    alias_draw_many(*table(), seed, words)
    return words


def test_one_pairs_step_is_minus_the_rate_times_the_losss_gradient():
    """With no word twice among a pair's K + 1, its SGD step is -α ∇L exactly, L its
    term of the negative-sampling loss (whose gradient is checked by finite
    differences), with the words the alias table drew; its loss is L before the step."""
    K, seed = 3, 11
    while len(set(drawn(seed, K)) | {5}) < K + 1:
        seed += 1
    E, W2 = weights()
    pairs = np.array([[2, 5]], np.int32)
    words = np.concatenate([[5], drawn(seed, K)]).reshape(1, -1).astype(np.int32)
    params = {"W1": np.ascontiguousarray(E.T), "W2": W2.copy()}
    f = lambda: negative_sampling(params["W1"], params["W2"], pairs[:, 0].copy(), words)
    before, numeric = f(), central_differences(f, params)
    lr = 0.05
    E1, W21 = E.copy(), W2.copy()
    loss = step(E1, W21, pairs, K, seed, lr)
    assert loss[0] == pytest.approx(before, rel=1e-12)
    np.testing.assert_allclose((E - E1).T / lr, numeric["W1"], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose((W2 - W21) / lr, numeric["W2"], rtol=1e-6, atol=1e-8)


def reference(E, W2, pairs, K, words, rates):
    """word2vec's loop, written out in numpy: output vectors first, the input's last."""
    E, W2, losses, n = E.copy(), W2.copy(), [], iter(words)
    sig = lambda x: 1 / (1 + np.exp(-x))
    for (c, o), alpha in zip(pairs, rates):
        e, loss = np.zeros(d), 0.0
        for j in range(K + 1):
            w, label = (o, 1.0) if j == 0 else (next(n), 0.0)
            f = W2[w] @ E[c]
            loss += -np.log(sig(f)) if label else -np.log(sig(-f))
            g = alpha * (label - sig(f))
            e += g * W2[w]
            W2[w] += g * E[c]
        E[c] += e
        losses.append(loss)
    return E, W2, np.array(losses)


@pytest.mark.parametrize("ordered", [False, True])
def test_many_pairs_are_word2vecs_loop_with_a_linear_rate(ordered):
    K, seed, N = 4, 7, 5
    rng = np.random.default_rng(2)
    pairs = rng.integers(0, V, (4 * N, 2)).astype(np.int32)
    pairs[3] = pairs[2]                       # a pair twice, a word in many pairs
    done, total, lr = 30.0, 60.0, 0.2
    E, W2 = weights(1)
    rates = [lr * max(LINEAR_FLOOR, 1 - (done + p) / total) for p in range(len(pairs))]
    E_ref, W2_ref, loss_ref = reference(E, W2, pairs, K, drawn(seed, len(pairs) * K), rates)
    losses = step(E, W2, pairs, K, seed, lr, done, total, N=N, ordered=ordered)
    np.testing.assert_allclose(E, E_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(W2, W2_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(losses, loss_ref.reshape(-1, N).sum(axis=1), rtol=1e-12)


def test_the_rate_stops_falling_at_the_floor():
    E, W2 = weights()
    pairs = np.array([[1, 2]], np.int32)
    moved = []
    for done in (0.0, 0.75e6, 2e6):           # rates lr, lr / 4, lr · floor
        E1, W21 = E.copy(), W2.copy()
        step(E1, W21, pairs, 0, 3, lr=1e-3, done=done, total=1e6)
        moved.append(np.abs(W21 - W2).sum())
    assert moved[1] / moved[0] == pytest.approx(0.25, rel=1e-6)
    assert moved[2] / moved[0] == pytest.approx(LINEAR_FLOOR, rel=1e-6)


def test_one_thread_repeats_bit_for_bit_two_threads_stay_close():
    rng = np.random.default_rng(5)
    pairs = rng.integers(0, V, (400, 2)).astype(np.int32)
    runs = []
    for threads in (1, 1, 2):
        E, W2 = weights(3, scale=0.1)
        losses = step(E, W2, pairs, 5, 9, lr=0.025, N=100, threads=threads)
        runs.append((E, W2, losses))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(runs[0], runs[1]))
    E, W2, losses = runs[2]                   # Hogwild: other draws, the same training
    assert np.isfinite(E).all() and np.isfinite(W2).all() and losses.shape == (4,)
    assert losses == pytest.approx(runs[0][2], rel=0.1)


def test_float32_follows_float64():
    rng = np.random.default_rng(6)
    pairs = rng.integers(0, V, (50, 2)).astype(np.int32)
    E64, W64 = weights(2)
    E32, W32 = (a.astype(np.float32) for a in (E64, W64))
    l64, l32 = step(E64, W64, pairs, 3, 1), step(E32, W32, pairs, 3, 1)
    np.testing.assert_allclose(E32, E64, rtol=1e-4, atol=1e-5)
    assert l32 == pytest.approx(l64, rel=1e-5)


def test_bad_words_and_shapes_are_refused():
    E, W2 = weights()
    with pytest.raises(ValueError, match="outside"):
        step(E, W2, np.array([[0, V]], np.int32), 2, 1)
    with pytest.raises(ValueError, match="random states"):         # 2 threads, 1 state
        sgd_negative_sampling(E, W2, np.zeros((200, 2), np.int32), 100, 2, *table(),
                              np.zeros(1, np.uint64), 0.1, 1e-4, 0, 1, np.empty(2), 2)


# -- the schedule ----------------------------------------------------------------------

def test_linear_is_momentum_free_and_falls_to_the_floor():
    with pytest.raises(ConfigError, match="momentum"):
        TrainingConfig(lr_schedule="linear")
    with pytest.raises(ConfigError, match="lr_schedule"):
        TrainingConfig(lr_schedule="cosine")
    c = TrainingConfig(lr_schedule="linear", momentum=0.0, learning_rate=0.5)
    assert (c.rate(0, 10), c.rate(5, 10), c.rate(10, 10)) == (0.5, 0.25, 0.5 * LINEAR_FLOOR)
    assert TrainingConfig().rate(7, 10) == 0.1
    with pytest.raises(ConfigError, match="weight_decay"):
        make_config({"model": "skipgram", "negatives": 5, "lr_schedule": "linear",
                     "momentum": 0.0, "weight_decay": 1e-4})


LINEAR = {"lr_schedule": "linear", "momentum": 0.0}


@pytest.mark.parametrize("settings", [{"model": "window"}, {"model": "skipgram"},
                                      {"model": "skipgram", "negatives": 3}])
def test_every_sampled_model_trains_with_it_on_the_same_schedule(corpus, settings):
    small = {"hidden_size": 6} if settings["model"] == "window" else {}
    config = make_config({"init": "gaussian", "embedding_size": 8, "batch_size": 50,
                          "epochs": 2, "early_stop": 10, "backend": "fast",
                          "validation_period": 20, "learning_rate": 0.05} | small | settings
                         | LINEAR)
    model = (SkipGram if config.model == "skipgram" else WindowScorer).initialize(config, 250)
    trainer = SampledTrainer(model, config, corpus)
    data = examples(model, corpus, "train", config)[:3000]
    valid = examples(model, corpus, "valid", config)[:500]
    points = []
    history = trainer.run(data, valid, on_validation=lambda step, v: points.append(step))
    M = 3000 // 50
    assert history.updates == M + 10 and len(history.train_ce) == M + 11
    assert points == [21, 41]
    assert np.isfinite(history.train_ce).all()
    assert not np.array_equal(model.W1, type(model).initialize(config, 250).W1)  # it moved
    assert (trainer.table is not None) == (settings.get("negatives", 0) > 0)


def test_the_per_pair_sgd_runs_in_long_calls_that_change_no_bit(corpus, monkeypatch):
    """The trainer calls the kernel for SGD_CHUNK minibatches at a time (each call ends
    at a barrier of its threads); on one thread, how it cuts them changes no bit."""
    from wordnet.training import sampled
    config = make_config({"model": "skipgram", "negatives": 3, "init": "gaussian",
                          "embedding_size": 8, "batch_size": 10, "epochs": 1,
                          "early_stop": 10**9, "backend": "fast"} | LINEAR)
    rows = examples(SkipGram, corpus, "train", config)[:25000]      # 2,500 minibatches

    def train(chunk):
        monkeypatch.setattr(sampled, "SGD_CHUNK", chunk)
        model, calls = SkipGram.initialize(config, 250, threads=1), []
        sgd = model.sgd
        monkeypatch.setattr(model, "sgd", lambda rows, *rest: calls.append(len(rows))
                            or sgd(rows, *rest))
        history = SampledTrainer(model, config, corpus).run(rows)
        return model, history, calls

    model, history, calls = train(sampled.SGD_CHUNK)
    assert sampled.SGD_CHUNK >= 1000 and calls == [10 * sampled.SGD_CHUNK] * 2 + [
        25000 - 20 * sampled.SGD_CHUNK]
    cut, cut_history, cut_calls = train(7)
    assert len(cut_calls) == 358
    assert np.array_equal(model.W1, cut.W1) and np.array_equal(model.W2, cut.W2)
    assert history.train_ce == cut_history.train_ce


def test_skipgram_neg_linear_learns_as_well_as_the_default(corpus):
    """One epoch of the recipe, word2vec's optimiser at gensim's rate (0.025) against the
    default momentum minibatches: the held-out log-likelihood is no worse."""
    base = dataclasses.replace(load_recipe("skipgram-neg").config, early_stop=19565)
    rows = examples(SkipGram, corpus, "train", base)
    test = examples(SkipGram, corpus, "test", base)[:20000]
    figures = {}
    for name, cfg in (("default", base), ("linear", dataclasses.replace(
            base, learning_rate=0.025, **LINEAR))):
        model = SkipGram.initialize(cfg, 250, threads=1)
        SampledTrainer(model, cfg, corpus).run(rows)
        figures[name] = model.evaluate(test)["log_likelihood"]
    assert figures["linear"] > figures["default"] - 0.05, figures


def test_the_4gram_models_fused_loop_takes_the_linear_rate(dataset):
    """The 4-gram trainer with lr_schedule = linear: plain SGD at each minibatch's rate,
    bit for bit the readable step with those rates."""
    from wordnet.models.base import Momentum
    from wordnet.models.fourgram import Buffers, FourGramConfig, Model
    from wordnet.training.trainer import Trainer
    config = FourGramConfig(epochs=1, early_stop=4, batch_size=20, learning_rate=0.5,
                            **LINEAR)
    N, rows = 20, dataset.train[:100]
    fused = Model.initialize(config, len(dataset.vocab))
    Trainer(fused, config).run(rows)
    readable = Model.initialize(config, len(dataset.vocab))
    optimizer = Momentum(readable, config.learning_rate, 0.0, N)
    buf = Buffers(readable, N)
    grads = {name: np.empty_like(p) for name, p in readable.params().items()}
    for b in range(4):
        x = np.ascontiguousarray(rows[b * N:(b + 1) * N, :3])
        t = np.ascontiguousarray(rows[b * N:(b + 1) * N, 3])
        readable.forward(x, buf)
        readable.backward(x, t, buf, grads, np.empty_like(readable.W1))
        optimizer.learning_rate = 0.5 * (1 - b / 4)
        optimizer.step(grads)
    for name, theta in readable.params().items():
        assert np.array_equal(fused.params()[name], theta), name
