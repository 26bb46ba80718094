"""The samplers of random words (pyx/sampling.pyx): the cumulative table gives numpy's
``Generator.choice`` words exactly, the alias table the distribution it was built
from, and the skip-gram recipe's training is the same as with ``choice``."""
import dataclasses

import numpy as np
import pytest

from wordnet._sampling import alias_draw_many, cdf_draw, splitmix64_next
from wordnet.data.corpus import load_corpus
from wordnet.data.dataset import Vocabulary
from wordnet.models.sampler import alias_table, cumulative
from wordnet.models.skipgram import SkipGram
from wordnet.runs.recipes import load_recipe
from wordnet.training.sampled import SampledTrainer, examples


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(Vocabulary.embedded(), None)


def distributions():
    rng = np.random.default_rng(3)
    skewed = rng.random(250) ** 4
    holes = rng.random(30)
    holes[[0, 7, 8, 29]] = 0.0                 # words that can never be drawn, at the ends too
    return [skewed / skewed.sum(), holes / holes.sum(), np.array([1.0]),
            np.full(7, 1 / 7)]


@pytest.mark.parametrize("p", distributions(), ids=["skewed", "holes", "one", "uniform"])
@pytest.mark.parametrize("shape", [(100, 5), (1,), (3000,)])
def test_the_cumulative_table_draws_numpys_choice(p, shape):
    for seed in range(5):
        expected = np.random.default_rng(seed).choice(len(p), size=shape, p=p)
        u = np.random.default_rng(seed).random(shape)
        got = np.empty(shape, np.int32)
        cdf_draw(cumulative(p), u.reshape(-1), got.reshape(-1))
        np.testing.assert_array_equal(got, expected)


def test_the_trainers_draws_are_choices_with_the_same_seed(corpus):
    config = load_recipe("skipgram-neg").config
    model = SkipGram.initialize(config, 250)
    trainer = SampledTrainer(model, config, corpus)
    rng = np.random.default_rng(config.seed)
    for _ in range(20):
        expected = rng.choice(250, size=(100, 5), p=trainer.draw_p).astype(np.int32)
        np.testing.assert_array_equal(trainer._draw((100, 5)), expected)


def test_skipgram_neg_trains_byte_for_byte_as_with_choice(corpus):
    """The recipe's default path, shortened: the same parameters, losses and validation
    as the old draws through ``Generator.choice(p=...)``."""
    config = dataclasses.replace(load_recipe("skipgram-neg").config, early_stop=120,
                                 validation_period=50)
    rows = examples(SkipGram, corpus, "train", config)
    valid = examples(SkipGram, corpus, "valid", config)[:2000]
    runs = []
    for old in (False, True):
        model = SkipGram.initialize(config, 250)
        trainer = SampledTrainer(model, config, corpus)
        if old:
            trainer._draw = lambda shape, t=trainer: t.rng.choice(
                250, size=shape, p=t.draw_p).astype(np.int32)
        history = trainer.run(rows, valid)
        runs.append((model, history))
    (new, h_new), (old, h_old) = runs
    assert h_new.train_ce == h_old.train_ce and h_new.valid_ce == h_old.valid_ce
    for name in SkipGram.PARAMS:
        assert getattr(new, name).tobytes() == getattr(old, name).tobytes(), name


@pytest.mark.parametrize("p", distributions()[:3], ids=["skewed", "holes", "one"])
def test_the_alias_table_holds_the_distribution_exactly(p):
    prob, alias = alias_table(p)
    n = len(p)
    mass = prob / n
    np.add.at(mass, alias, (1.0 - prob) / n)
    np.testing.assert_allclose(mass, p, rtol=0, atol=1e-15)
    assert ((0 <= prob) & (prob <= 1)).all() and ((0 <= alias) & (alias < n)).all()


def test_alias_draws_follow_the_distribution():
    p = distributions()[1]
    prob, alias = alias_table(p)
    draws = np.empty(400_000, np.int32)
    alias_draw_many(prob, alias, 12345, draws)
    counts = np.bincount(draws, minlength=len(p))
    assert counts[p == 0].sum() == 0
    expected = p * len(draws)
    chi2 = (((counts - expected) ** 2)[p > 0] / expected[p > 0]).sum()
    # 25 degrees of freedom: the 0.999 quantile is 52.6
    assert chi2 < 52.6


def test_splitmix64_is_the_published_generator():
    # the first outputs of splitmix64 from state 0 (Vigna's reference implementation)
    assert splitmix64_next(0, 2) == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4]


def test_alias_table_refuses_bad_distributions():
    for bad in ([], [0.0, 0.0], [1.0, -0.5], [np.nan, 1.0]):
        with pytest.raises(ValueError):
            alias_table(bad)
