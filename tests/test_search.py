"""wordnet.sweeps.search: search spaces, Optuna's sampling and pruning."""
import math

import pytest

from wordnet.errors import ConfigError
from wordnet.sweeps.search import Search, parse_space


def drawn(search: Search) -> list[dict]:
    trials = []
    while (trial := search.next()) is not None:
        trials.append(trial.values)
        search.finish(trial.number, "FINISHED", 1.0)
    return trials


def test_a_grid_is_every_combination_in_order():
    search = Search(parse_space(["learning_rate=0.1, 0.3", "hidden_size=50,100"]))
    assert search.total == 4 and search.sampler == "grid"
    assert drawn(search) == [{"learning_rate": "0.1", "hidden_size": "50"},
                             {"learning_rate": "0.1", "hidden_size": "100"},
                             {"learning_rate": "0.3", "hidden_size": "50"},
                             {"learning_rate": "0.3", "hidden_size": "100"}]
    assert search.next() is None


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_a_seeded_search_samples_the_same_trials_twice(sampler):
    space = ["learning_rate=loguniform:0.01:1", "hidden_size=choice:50,100,200",
             "embedding_size=int:10:60", "momentum=uniform:0.5:0.95"]
    first, again, other = (drawn(Search(parse_space(space), 8, sampler, seed))
                           for seed in (7, 7, 8))
    assert first == again and first != other and len(first) == 8
    for values in first:
        assert 0.01 <= float(values["learning_rate"]) <= 1
        assert values["hidden_size"] in ("50", "100", "200")
        assert 10 <= int(values["embedding_size"]) <= 60
        assert 0.5 <= float(values["momentum"]) <= 0.95
    assert len({v["learning_rate"] for v in first}) > 1


def test_a_sampled_value_is_short_and_a_trial_has_a_folder_of_its_own():
    search = Search(parse_space(["learning_rate=loguniform:0.01:1"]), 2, "random", 0)
    trial = search.next()
    assert len(trial.values["learning_rate"].replace(".", "").lstrip("0")) <= 4
    assert trial.folder == f"trial-000-learning_rate={trial.values['learning_rate']}"


@pytest.mark.parametrize("pair, message", [
    ("learning_rate=loguniform:0:1", "loguniform needs LOW > 0"),
    ("learning_rate=uniform:1:0.5", "LOW must be below HIGH"),
    ("learning_rate=uniform:a:b", "give uniform:LOW:HIGH with numbers"),
    ("hidden_size=int:1.5:3", "give int:LOW:HIGH with integers"),
    ("hidden_size=choice:", "no values to sweep"),
    ("hidden_size=,", "no values to sweep"),
    ("hidden_size= , ,", "no values to sweep"),
    ("hidden_size=,100", "an empty value between commas"),
    ("hidden_size=choice:50,,100", "an empty value between commas"),
    ("=1,2", "unknown key"),
    ("learning_rate", "expected key=value"),
    ("epoch=1,2", "unknown key; choose one of batch_size"),
    ("model=window,skipgram", "model cannot vary in a sweep"),
    ("model=choice:window,skipgram", "model cannot vary in a sweep"),
])
def test_a_bad_space_is_refused_in_one_line(pair, message):
    with pytest.raises(ConfigError, match=message):
        parse_space([pair])


def test_a_distribution_needs_samples():
    with pytest.raises(ConfigError, match="needs --samples N"):
        Search(parse_space(["learning_rate=loguniform:0.01:1"]))


def test_asha_stops_a_trial_not_the_best_of_fewer_than_eta_and_says_so():
    search = Search(parse_space(["learning_rate=0.1,50,0.2"]), prune="asha")
    good, bad, late = search.next(), search.next(), search.next()
    assert search.report(good.number, 1, 3.9) is None        # the first at its rung goes on
    assert search.report(bad.number, 1, 23.7) == ("not the best of the 2 trials at rung 0 "
                                                   "(the best: 3.9000)")
    assert search.report(late.number, 1, 3.8) is None        # better than the best: goes on
    assert search.report(good.number, 2, math.nan) == "not finite (nan)"   # never worth it


def test_asha_says_the_cut_of_its_rung():
    """Eight trials at rung 0: the best quarter, two, go on; the cut is the second best."""
    values = [4.30, 4.50, 4.40, 4.35, 4.60, 4.70, 4.80, 4.90]
    search = Search(parse_space(["learning_rate=" + ",".join(f"0.{n}" for n in range(1, 9))]),
                    prune="asha")
    trials = [search.next() for _ in values[:-1]]
    for trial, value in zip(trials, values):                  # seven report, not the last
        search.report(trial.number, 1, value)
    last = search.next()
    assert search.report(last.number, 1, 4.90) == ("not in the best 1/4 of the 8 trials at "
                                                   "rung 0 (the cut: 4.3500)")


def test_the_median_pruner_says_the_median_it_compared_with():
    search = Search(parse_space(["learning_rate=" + ",".join(f"0.{n}" for n in range(1, 8))]),
                    prune="median")
    for value in (4.1, 4.2, 4.3, 4.4, 4.5):                  # five finish: then it judges
        trial = search.next()
        assert search.report(trial.number, 1, value) is None
        search.finish(trial.number, "FINISHED", value)
    good, bad = search.next(), search.next()
    assert search.report(good.number, 1, 4.25) is None
    assert search.report(bad.number, 1, 4.39) == ("its best so far, 4.3900, worse than the "
                                                  "median 4.3000 of the 5 finished trials at "
                                                  "that point")


def test_no_pruner_lets_every_trial_go_on():
    search = Search(parse_space(["learning_rate=0.1,50"]))
    good, bad = search.next(), search.next()
    assert search.report(good.number, 1, 3.9) is search.report(bad.number, 1, 23.7) is None


def test_a_resumed_grid_runs_only_what_is_left_and_the_pruner_knows_the_rest():
    search = Search(parse_space(["learning_rate=0.1,50,0.2"]), prune="asha")
    search.skip({"learning_rate": "0.1"}, 3.5, {1: 3.9, 2: 3.6}, pruned=False)
    bad = search.next()
    assert bad.values == {"learning_rate": "50"}
    assert search.report(bad.number, 1, 23.7).startswith("not the best of the 2 trials")
    search.finish(bad.number, "PRUNED", None)
    assert search.next().values == {"learning_rate": "0.2"} and search.next() is None


def test_a_closed_search_hands_out_nothing():
    search = Search(parse_space(["learning_rate=0.1,0.2"]))
    search.close()
    assert search.next() is None
