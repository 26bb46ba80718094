"""The governor of a training's threads (wordnet/training/threads.py): what it chooses
from the rates it measures, and that following the load changes no result it must not."""
import numpy as np
import pytest

from wordnet.data.corpus import load_corpus
from wordnet.data.dataset import Vocabulary
from wordnet.models.base import THREADS_ENV
from wordnet.models.fourgram import FourGramConfig, Model
from wordnet.models.window import WindowConfig, WindowScorer
from wordnet.tracking.machine import machine_tags
from wordnet.training import threads
from wordnet.training.sampled import SampledTrainer, examples
from wordnet.training.threads import HOLD, LONGEST_HOLD, Governor
from wordnet.training.trainer import Trainer

CALL = 0.01          # seconds a simulated call takes


def feed(governor: Governor, rate, seconds: float) -> list[int]:
    """Calls of CALL seconds for ``seconds``, each running ``rate(workers)`` minibatches a
    second; the workers of each call."""
    used = []
    for _ in range(round(seconds / CALL)):
        used.append(governor.workers)
        governor.ran(max(1, round(rate(governor.workers) * CALL)), CALL)
    return used


def test_on_a_quiet_machine_it_keeps_the_faster_two_threads():
    governor = Governor(2)
    used = feed(governor, {2: 1800, 1: 1000}.get, 20.0)
    assert governor.choice == 2
    # trials of one thread grow rare: a few per cent of the time
    assert used.count(1) / len(used) < 0.03


def test_on_a_busy_machine_it_drops_to_one_thread():
    governor = Governor(2)
    used = feed(governor, {2: 300, 1: 900}.get, 20.0)
    assert governor.choice == 1
    assert used.count(2) / len(used) < 0.05


def test_a_short_burst_of_other_work_does_not_decide_for_one_thread():
    """Other work takes a core 30 ms in every 130 (a tracked run's own calls to MLflow
    and the scheduler's slices): two threads lose the calls it overlaps, one thread runs
    on.  Two still train faster (731 a second on average against 650) and stay the
    choice; timed on one window each, a window with the burst made one thread win, and
    the run spent 94 % of its time on it."""
    governor = Governor(2)
    calls = iter(range(10**6))

    def rate(workers):
        burst = next(calls) % 13 < 3
        return 650 if workers == 1 else (0 if burst else 950)

    used = feed(governor, rate, 60.0)
    assert governor.choice == 2
    assert used.count(1) / len(used) < 0.05, used.count(1) / len(used)


def test_a_tie_goes_to_fewer_threads():
    governor = Governor(4)
    assert governor.candidates == [4, 2, 1]
    feed(governor, {4: 1000, 2: 1010, 1: 990}.get, 2.0)
    assert governor.choice == 1


def test_a_process_starting_mid_run_is_followed_within_a_trial():
    governor = Governor(2)
    feed(governor, {2: 1800, 1: 1000}.get, 10.0)
    assert governor.choice == 2
    # another process takes a core: two threads collapse; one is unaffected
    used = feed(governor, {2: 400, 1: 1000}.get, 1.0)
    assert governor.choice == 1
    assert used.index(1) * CALL <= 2 * threads.TRIAL + CALL      # found at the next window
    # and it leaves: two threads are tried again, later and later, but they are
    feed(governor, {2: 1800, 1: 1000}.get, 2 * LONGEST_HOLD)
    assert governor.choice == 2


def test_a_choice_that_holds_is_tried_again_less_and_less_often():
    governor = Governor(2)
    used = feed(governor, {2: 1800, 1: 1000}.get, 40.0)
    trials = [i for i in range(1, len(used)) if used[i] == 1 and used[i - 1] == 2]
    gaps = np.diff(trials) * CALL
    window = 3 * threads.TRIAL            # a trial, and windows of whole calls
    assert HOLD <= gaps[0] <= HOLD + window
    assert all(b >= a - window for a, b in zip(gaps, gaps[1:]))
    assert LONGEST_HOLD <= gaps[-1] <= LONGEST_HOLD + window


def test_a_first_trial_is_sized_by_the_rate_already_timed():
    """At a large vocabulary a minibatch takes tens of milliseconds: the first trial of
    one thread runs about a window's worth (guessed from two threads' rate), not
    TRIAL_MINIBATCHES of slow training."""
    governor = Governor(2)
    assert governor.workers == 2 and governor.minibatches(1000) == threads.TRIAL_MINIBATCHES
    governor.ran(16, 0.4)                                   # the first call: not timed
    assert governor.minibatches(1000) == threads.TRIAL_MINIBATCHES
    governor.ran(16, 0.4)                                   # two threads: 40 a second
    assert governor.workers == 1
    assert governor.minibatches(1000) == round(40 * threads.TRIAL) == 2
    governor.ran(2, 0.075)                                  # its first call: not timed
    assert governor.workers == 1 and governor.minibatches(1000) == 2
    governor.ran(2, 0.075)                                  # one thread: 27 a second
    assert governor.choice == 2 and governor.minibatches(1000) == 1000


def test_the_first_call_on_other_workers_is_not_timed():
    """The first call of a spell on two threads after one: their threads wake and the
    core that sat out fetches the weights again (slower still where it ran a tracked
    run's MLflow calls meanwhile).  Timed, that call (a window's length at a tenth of
    the rate) kept the run on one thread; not timed, two threads stay the choice."""
    governor = Governor(2)
    used, last = [], None
    for _ in range(2000):
        workers = governor.workers
        cold = workers == 2 and last == 1
        used.append(workers)
        if cold:
            governor.ran(9, threads.TRIAL)              # 180 a second
        else:
            governor.ran(10 if workers == 1 else 18, CALL)
        last = workers
    assert governor.choice == 2
    assert used.count(1) / len(used) < 0.05, used.count(1) / len(used)


def test_fixed_threads_are_never_changed():
    governor = Governor(2, adaptive=False)
    assert feed(governor, {2: 100, 1: 1000}.get, 5.0) == [2] * 500


def test_threads_given_or_set_in_the_environment_are_fixed(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    params = Model.initialize(FourGramConfig(), 250).params()
    assert Model(params).adaptive
    assert not Model(params, threads=2).adaptive
    monkeypatch.setenv(THREADS_ENV, "2")
    assert not Model(params).adaptive
    assert machine_tags(2, fixed=False)["wordnet.threads"] == "1-2"
    assert machine_tags(2)["wordnet.threads"] == "2"


@pytest.fixture
def restless(monkeypatch):
    """A governor that tries the other candidate at every call: the most switching."""
    monkeypatch.setattr(threads, "TRIAL", 0.0)
    monkeypatch.setattr(threads, "HOLD", 0.0)
    monkeypatch.setattr(threads, "TRIAL_MINIBATCHES", 3)


def adaptive(model):
    model.adaptive = True                 # as if nobody fixed its 2 threads
    return model


def test_the_exact_backend_gives_the_same_bits_however_its_threads_change(dataset, restless):
    config = FourGramConfig(backend="exact", epochs=1, early_stop=600)
    alone = Model.initialize(config, 250, threads=1)
    Trainer(alone, config).run(dataset.train)
    model = adaptive(Model.initialize(config, 250, threads=2))
    trainer = Trainer(model, config)
    history = trainer.run(dataset.train)
    assert set(trainer.governor.seconds) == {1, 2} and trainer.governor.choices >= 4
    assert history.updates == 600 and model.workers == 2          # the run's choice ended
    for name, p in alone.params().items():
        assert np.array_equal(p, model.params()[name]), name


def test_the_window_scorer_follows_the_load_too(restless):
    corpus = load_corpus(Vocabulary.embedded(), None)
    config = WindowConfig(backend="exact", epochs=1, early_stop=150)
    runs = []
    for model in (WindowScorer.initialize(config, 250, threads=1),
                  adaptive(WindowScorer.initialize(config, 250, threads=2))):
        trainer = SampledTrainer(model, config, corpus)
        trainer.run(examples(model, corpus, "train", config))
        runs.append((model, trainer.governor))
    (alone, _), (model, governor) = runs
    assert set(governor.seconds) == {1, 2} and governor.choices >= 4
    for name, p in alone.params().items():
        assert np.array_equal(p, model.params()[name]), name
