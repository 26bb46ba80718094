"""Training the window scorer and skip-gram: the 4-gram Trainer's semantics."""
import numpy as np
import pytest

from wordnet.data.corpus import load_corpus
from wordnet.data.dataset import Vocabulary
from wordnet.errors import ConfigError
from wordnet.models.skipgram import SkipGram
from wordnet.models.window import WindowScorer
from wordnet.runs.recipes import make_config
from wordnet.training.sampled import SampledTrainer, examples


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(Vocabulary.embedded(), None)


def train(corpus, rows=3000, **settings):
    small = {"hidden_size": 6} if settings.get("model") == "window" else {}
    config = make_config({"init": "gaussian", "embedding_size": 8, "batch_size": 50, "epochs": 2,
                          "early_stop": 10, "backend": "fast"} | small | settings)
    cls = WindowScorer if config.model == "window" else SkipGram
    # threads fixed: the fast backend's last bits depend on their number, which a model
    # whose threads nobody fixed changes as the machine's load does
    model = cls.initialize(config, 250, threads=2)
    trainer = SampledTrainer(model, config, corpus)
    data = examples(model, corpus, "train", config)[:rows]
    valid = examples(model, corpus, "valid", config)[:500]
    points = []
    history = trainer.run(data, valid, on_validation=lambda step, v: points.append(step))
    return model, history, points


@pytest.mark.parametrize("settings", [{"model": "window"}, {"model": "skipgram"},
                                      {"model": "skipgram", "negatives": 3},
                                      {"model": "window", "corruption": "unigram"}])
def test_schedule_early_stop_and_validation(corpus, settings):
    model, history, points = train(corpus, validation_period=20, **settings)
    M = 3000 // 50
    assert history.updates == M + 10 and len(history.train_ce) == M + 11
    assert points == [21, 41]                    # after minibatches 20 and 40 of epoch 1
    assert history.finished and np.isfinite(history.train_ce).all()
    again, _, _ = train(corpus, validation_period=20, **settings)
    for name in model.PARAMS:                    # the random words come from the seed
        np.testing.assert_array_equal(getattr(model, name), getattr(again, name))
    other, _, _ = train(corpus, validation_period=20, seed=1, **settings)
    assert not np.array_equal(other.W1, model.W1)


def test_the_running_loss_resets_each_epoch(corpus):
    _, history, _ = train(corpus, model="window", learning_rate=0.5)
    M = 60
    # the first minibatch of epoch 2 reports its own loss, not a mean with epoch 1's
    first, mean = history.train_ce[M], history.train_ce[M - 1]
    assert first != mean and history.train_ce[M + 10] < history.train_ce[0]


def test_weight_decay_shrinks_the_weights(corpus):
    plain, _, _ = train(corpus, model="skipgram")
    decayed, _, _ = train(corpus, model="skipgram", weight_decay=5.0)
    assert np.linalg.norm(decayed.W1) < 0.5 * np.linalg.norm(plain.W1)


def test_too_few_examples_are_refused_and_a_late_early_stop_ends_the_epoch(corpus):
    with pytest.raises(ConfigError, match="do not fill one minibatch"):
        train(corpus, model="window", rows=10)
    whole, history, _ = train(corpus, model="window", early_stop=60)      # 60 minibatches
    beyond, later, _ = train(corpus, model="window", early_stop=2**31 - 1)
    assert later.updates == history.updates == 120
    np.testing.assert_array_equal(beyond.W1, whole.W1)


def test_exact_and_fast_backends_train_alike(corpus):
    exact, _, _ = train(corpus, model="skipgram", backend="exact")
    fast, _, _ = train(corpus, model="skipgram")
    np.testing.assert_allclose(fast.W1, exact.W1, rtol=1e-9, atol=1e-12)


def test_the_momentum_steps_threads_change_no_bit(monkeypatch):
    """Small arrays update on one thread (PARALLEL_UPDATE), large ones on the model's:
    either way the same bits."""
    import wordnet.models.base as base
    from wordnet.models.base import Momentum
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(8, 300)), "W2": rng.normal(size=(300, 8))}
    grads = {n: rng.normal(size=p.shape) for n, p in params.items()}
    results = []
    for limit, threads in ((base.PARALLEL_UPDATE, 2), (0, 2), (0, 1)):
        monkeypatch.setattr(base, "PARALLEL_UPDATE", limit)
        model = SkipGram(params, "fast", threads=threads)
        optimizer = Momentum(model, 0.1, 0.9, 100, weight_decay=1e-3)
        for _ in range(3):
            optimizer.step(grads)
        results.append(model.W1.tobytes() + model.W2.tobytes())
    assert results[0] == results[1] == results[2]
