"""The Kneser–Ney baseline (wordnet/models/ngram.py): hand-computed probabilities, and
a distribution over the vocabulary for any context."""
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from wordnet.models.ngram import KneserNey, baseline

# Four training 4-grams over V = 4 words.  By hand (docs in the module):
#   order 4: (0 1 2 3) x2, (1 1 2 0), (2 1 2 3): n1 = 2, n2 = 1, D4 = 2 / (2 + 2) = 1/2
#   order 3: (1 2 3) continues 2 distinct 4-grams, (1 2 0) 1: D3 = 1 / (1 + 2) = 1/3
#   order 2: (2 3) 1, (2 0) 1: D2 = 1;  order 1: (3) 1, (0) 1: D1 = 1, 2 types
ROWS = np.array([[0, 1, 2, 3], [0, 1, 2, 3], [1, 1, 2, 0], [2, 1, 2, 3]])


def test_probabilities_computed_by_hand():
    kn = KneserNey(ROWS, 4)
    p1 = (0 + 1 * 2 / 4) / 2                          # every word: 1/4
    p2 = (max(1 - 1, 0) + 1 * 2 * p1) / 2             # P(3 | 2) = P(0 | 2) = 1/4
    p3 = (max(2 - 1 / 3, 0) + 1 / 3 * 2 * p2) / 3     # P(3 | 1 2) = 11/18
    p4 = (max(2 - 1 / 2, 0) + 1 / 2 * 1 * p3) / 2     # P(3 | 0 1 2) = 65/72
    p3_0 = (max(1 - 1 / 3, 0) + 1 / 3 * 2 * p2) / 3   # P(0 | 1 2) = 5/18
    p4_0 = (max(1 - 1 / 2, 0) + 1 / 2 * 1 * p3_0) / 1  # P(0 | 1 1 2) = 23/36
    got = kn.probabilities(np.array([[0, 1, 2, 3], [1, 1, 2, 0], [3, 3, 3, 3], [3, 1, 2, 3]]))
    np.testing.assert_allclose(got, [p4, p4_0, p1, p3], rtol=1e-15)
    assert math.isclose(p4, 65 / 72) and math.isclose(p4_0, 23 / 36)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 9).flatmap(lambda V: st.tuples(
    st.just(V),
    st.lists(st.lists(st.integers(0, V - 1), min_size=4, max_size=4), min_size=1, max_size=60),
    st.lists(st.integers(0, V - 1), min_size=3, max_size=3))))
def test_every_context_gets_a_distribution_over_the_vocabulary(case):
    V, rows, context = case
    kn = KneserNey(np.array(rows), V)
    for h in (context, rows[0][:3]):                 # any context, and one seen
        p = kn.probabilities(np.column_stack([np.tile(h, (V, 1)), np.arange(V)]))
        assert (p > 0).all()
        assert math.isclose(p.sum(), 1.0, rel_tol=1e-12)


def test_the_course_data_has_a_baseline_better_than_a_uniform_guess(dataset):
    V = len(dataset.vocab)
    figures = baseline(dataset.train, dataset.test, V)
    assert figures["test_ce"] < math.log(V)
    assert math.isclose(figures["test_perplexity"], math.exp(figures["test_ce"]))
    # on its own training 4-grams it is far better than on the test split
    assert KneserNey(dataset.train, V).cross_entropy(dataset.train) < figures["test_ce"] - 0.3
