"""wordnet.runs.recipes: recipe files and --set overrides."""
import dataclasses

import pytest

from wordnet.errors import ConfigError
from wordnet.models.fourgram import FourGramConfig
from wordnet.runs import recipes


def recipe(name="quick", **overrides):
    return recipes.with_overrides(recipes.load_recipe(name), {k: str(v) for k, v in overrides.items()})


def test_the_reference_recipe_is_the_c_programs():
    assert recipes.load_recipe("reference").config == FourGramConfig()
    assert recipes.load_recipe("reference").enforce_statistical_parity


def test_the_quick_recipe_is_one_epoch():
    quick = recipes.load_recipe("quick")
    assert quick.config.epochs == 1
    # the whole epoch, on the course's data (3,725 minibatches) and on any other
    assert quick.config.updates(372_550) == 3725 and quick.config.updates(1_000_000) == 10_000
    assert not quick.enforce_statistical_parity
    assert {"quick", "reference"} <= set(recipes.recipe_names())


def test_a_recipe_from_a_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('description = "mine"\n[config]\nhidden_size = 20\n')
    mine = recipes.load_recipe(str(path))
    assert (mine.name, mine.config.hidden_size, mine.config.epochs) == ("mine", 20, 9)
    path.write_text("[config]\nhiden_size = 20\n")
    with pytest.raises(ConfigError, match="unknown key.*hiden_size"):
        recipes.load_recipe(str(path))
    with pytest.raises(ConfigError, match="unknown pipeline 'nope'"):
        recipes.load_recipe("nope")


def test_overrides_are_typed_and_checked():
    r = recipe("reference", learning_rate="0.05", hidden_size="100", backend="fast", seed="3")
    assert (r.config.learning_rate, r.config.hidden_size, r.config.backend, r.config.seed) == (
        0.05, 100, "fast", 3)
    with pytest.raises(ConfigError, match="hidden_size: '1.5' is not an integer"):
        recipe(hidden_size="1.5")
    with pytest.raises(ConfigError, match="learning_rate: 'fast' is not a number"):
        recipe(learning_rate="fast")
    with pytest.raises(ConfigError, match="momentum must be in"):
        recipe(momentum="1.5")
    with pytest.raises(ConfigError, match="backend must be one of"):
        recipe(backend="gpu")
    with pytest.raises(ConfigError, match="reference_checkpoint: .*: no such file"):
        recipe(reference_checkpoint="/no/such.bin")
    with pytest.raises(ConfigError, match="model must be one of 4gram, window, skipgram"):
        recipe(model="cbow")
    with pytest.raises(ConfigError, match="window must be 1 to 10"):
        recipes.with_overrides(recipes.load_recipe("skipgram"), {"window": "0"})
    with pytest.raises(ConfigError, match="negatives must be 0"):
        recipes.with_overrides(recipes.load_recipe("skipgram"), {"negatives": "-1"})
    with pytest.raises(ConfigError, match="corruption must be one of uniform, unigram"):
        recipes.with_overrides(recipes.load_recipe("window"), {"corruption": "zipf"})
    # what another model uses, set away from its default, would be ignored: refused
    with pytest.raises(ConfigError, match="negatives does not apply to the 4gram model"):
        recipe(negatives="5")
    with pytest.raises(ConfigError, match="hidden_size does not apply to the skipgram model"):
        recipes.with_overrides(recipes.load_recipe("skipgram"), {"hidden_size": "7"})
    assert recipes.with_overrides(recipes.load_recipe("skipgram"), {"negatives": "3"}).label() == (
        "K=3 · skipgram · fast")


def test_the_notes_other_models_have_recipes():
    for name, model in (("window", "window"), ("skipgram", "skipgram"),
                        ("skipgram-neg", "skipgram")):
        assert recipes.load_recipe(name).config.model == model
    assert recipes.load_recipe("skipgram-neg").config.negatives == 5
    assert recipes.load_recipe("window").config.activation == "tanh"


@pytest.mark.parametrize("pair, message", [
    ("epochs", "expected key=value"), ("epochs=", "expected key=value"),
    ("epoch=3", "unknown key; choose one of batch_size"),
])
def test_malformed_overrides(pair, message):
    with pytest.raises(ConfigError, match=message):
        recipes.parse_overrides([pair])


def test_the_memory_estimate_before_training():
    """hidden_size=1000000 needs about 22 GB (five copies of 400 million weights, two
    minibatches of 4 million activations); the reference recipe about 7 MB."""
    from wordnet.models.checkpoint import Header
    from wordnet.models.fourgram import training_memory
    reference = recipe("reference").config
    header = Header.for_run(reference, 250, (372_550, 46_568, 46_568))
    assert 5 * (header.file_size() - 72) < training_memory(header) < 10**7
    huge = Header.for_run(recipe("reference", hidden_size="1000000").config, 250, (372_550, 46_568, 46_568))
    assert training_memory(huge) > 20 * 10**9


def test_a_recipe_remembers_what_was_overridden():
    quick = recipes.load_recipe("quick")
    assert quick.max_test_ce == 3.40 and quick.changed() == []
    assert recipe(backend="exact", dtype="float64").changed() == []     # numerics only
    changed = recipe(learning_rate="0.05", epochs="2").changed()
    assert changed == ["epochs=2 (recipe: 1)", "learning_rate=0.05 (recipe: 0.1)"]
    assert recipe(seed="7").changed() == []                 # the seed only counts with gaussian init
    assert recipe(init="gaussian", seed="7").changed() == ["init=gaussian (recipe: c-reference)",
                                                          "seed=7 (recipe: 0)"]
    again = recipes.Recipe.from_json(recipe(learning_rate="0.05").as_json())
    assert again.changed() == ["learning_rate=0.05 (recipe: 0.1)"] and again.max_test_ce == 3.40


def test_a_bad_bound_in_a_recipe_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[reproduce]\nmax_test_ce = "low"\n')
    with pytest.raises(ConfigError, match="max_test_ce must be a positive number"):
        recipes.load_recipe(str(path))


def test_config_defaults_are_the_reference_recipe():
    c = FourGramConfig()
    assert (c.batch_size, c.embedding_size, c.hidden_size, c.epochs, c.early_stop) == (100, 50, 200, 9, 3000)
    assert (c.learning_rate, c.momentum, c.validation_period) == (0.1, 0.9, 2**31 - 1)


def test_each_model_kind_has_its_own_keys():
    """The keys every model has (its training's, its embeddings' and numerics'), then each
    kind's own: a 4-gram run neither logs nor accepts the window scorer's corruption or
    skip-gram's negatives."""
    from wordnet.models.config import Config, TrainingConfig
    from wordnet.models.skipgram import SkipGramConfig
    from wordnet.models.window import WindowConfig
    training = {f.name for f in dataclasses.fields(TrainingConfig)}
    assert training == {"batch_size", "epochs", "early_stop", "learning_rate", "momentum",
                        "validation_period", "checkpoint_minutes", "weight_decay", "lr_schedule"}
    common = set(Config.keys()) - training
    assert common == {"model", "embedding_size", "backend", "dtype", "init", "seed",
                      "init_embeddings"}
    assert set(FourGramConfig.keys()) - set(Config.keys()) == {"hidden_size", "activation"}
    assert set(WindowConfig.keys()) - set(Config.keys()) == {"hidden_size", "activation",
                                                              "window", "corruption"}
    assert set(SkipGramConfig.keys()) - set(Config.keys()) == {"window", "negatives"}
    assert set(recipes.CONFIG_KEYS) == (set(FourGramConfig.keys()) | set(WindowConfig.keys())
                                        | set(SkipGramConfig.keys()))
    assert "negatives" not in dataclasses.asdict(recipes.load_recipe("reference").config)
    with pytest.raises(ConfigError, match="momentum must be in"):
        TrainingConfig(momentum=1.0)
    with pytest.raises(ConfigError, match="hidden_size must be a positive integer"):
        FourGramConfig(hidden_size=0)
    with pytest.raises(ConfigError, match="learning_rate must be float"):
        FourGramConfig(learning_rate="fast")
    with pytest.raises(ConfigError, match="model is 'window' in a WindowConfig"):
        WindowConfig(model="skipgram")


def test_a_recipe_json_of_an_earlier_version_holds_every_kinds_keys():
    """recipe.json written when one Config held every model's keys: the others' are left
    out, and the folder's model is read as it was trained."""
    saved = recipes.load_recipe("skipgram-neg").as_json()
    saved["config"] |= {"hidden_size": 200, "activation": "sigmoid", "corruption": "uniform"}
    saved["written"] = saved["config"]
    assert recipes.Recipe.from_json(saved).config == recipes.load_recipe("skipgram-neg").config


def test_iterations_counts_the_reported_ces():
    assert FourGramConfig().iterations(372_550) == 32_801          # SPEC section 3
    assert recipes.load_recipe("quick").config.iterations(372_550) == 3_725
    assert FourGramConfig(epochs=1, early_stop=20).iterations(372_550) == 21


def test_a_run_is_named_by_what_distinguishes_it():
    assert recipes.load_recipe("reference").label() == "reference · exact"
    assert recipe(learning_rate="0.2", hidden_size="100").label() == "lr=0.2 h=100 · quick · fast"
    assert recipe(dtype="float32").label() == "quick · fast float32"
    assert recipe(learning_rate="0.2", epochs="2").label(first=["epochs"]) == (
        "epochs=2 lr=0.2 · quick · fast")             # a sweep's varying values come first
    assert recipe().label(first=["learning_rate"]) == "lr=0.1 · quick · fast"   # even the recipe's


def test_a_runs_description_is_the_recipes_and_its_overrides():
    quick = recipes.load_recipe("quick")
    assert quick.note() == quick.description
    note = recipe(learning_rate="0.2", backend="exact").note()
    assert note == ("The quick recipe, whose description reads: " + quick.description
                    + "\n\nOverridden: learning_rate=0.2 (recipe: 0.1), backend=exact (recipe: "
                    "fast).")
    reference = recipes.load_recipe("reference")
    assert reference.note(("test",)) == ("Test of a model trained by the reference recipe, "
                                         "whose description reads: " + reference.description)
    assert recipe(learning_rate="0.2").overridden() == {"learning_rate": 0.2}


def test_checkpoint_minutes_is_positive_and_changes_no_model():
    quick = recipes.load_recipe("quick")
    often = recipes.with_overrides(quick, {"checkpoint_minutes": "0.5"})
    assert often.config.checkpoint_minutes == 0.5 and often.changed() == []
    with pytest.raises(recipes.ConfigError, match="checkpoint_minutes must be positive"):
        recipes.with_overrides(quick, {"checkpoint_minutes": "0"})


# -- issue 21 item 7: a recipe file read strictly -------------------------------------

GOOD = """description = "mine"
[config]
epochs = 1
[reproduce]
enforce_statistical_parity = false
max_test_ce = 3.5
"""


def recipe_file(tmp_path, text):
    path = tmp_path / "mine.toml"
    path.write_text(text)
    return path


def test_a_recipe_file_is_read(tmp_path):
    r = recipes.load_recipe(str(recipe_file(tmp_path, GOOD)))
    assert (r.description, r.config.epochs, r.enforce_statistical_parity, r.max_test_ce) == (
        "mine", 1, False, 3.5)


@pytest.mark.parametrize("text, message", [
    (GOOD.replace("= false", '= "false"'),
     "enforce_statistical_parity must be true or false (a TOML boolean, unquoted), got 'false'"),
    (GOOD.replace("max_test_ce", "max_tset_ce"),
     "unknown key(s) in [reproduce]: max_tset_ce (known: enforce_statistical_parity, "
     "max_test_ce)"),
    ("epochs = 1\n" + GOOD, "unknown key(s) at the top level: epochs"),
    ("config = 5\n", "config must be a table ([config]), got 5"),
    ("reproduce = [1]\n", "reproduce must be a table ([reproduce]), got [1]"),
    ("description = 5\n", "description must be a string, got 5"),
    ("[config]\nepochs = \"1\"\n", "epochs"),
    (GOOD.replace("3.5", "nan"), "max_test_ce must be a positive number, got nan"),
    ("description = \"a\nb\"\n", "Illegal character"),
])
def test_a_recipe_with_a_bad_key_or_value_is_refused_in_one_line(tmp_path, text, message):
    """A string parity read as true; unknown keys were ignored (a typo dropped the
    bound); config = 5 or description = 5 ended in `unexpected ...`."""
    path = recipe_file(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        recipes.load_recipe(str(path))
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("make", ["fifo", "folder", "huge"])
def test_a_recipe_that_is_not_a_small_regular_file_is_refused_unread(tmp_path, make):
    """Issue 21 item 6: a FIFO as the recipe hung `run`."""
    import os

    from blocking import unblocking, within
    path = tmp_path / "mine.toml"
    if make == "fifo":
        os.mkfifo(path)
    elif make == "folder":
        path.mkdir()
    else:
        with open(path, "wb") as f:
            f.truncate(1 << 30)
    try:
        e = within(5, lambda: recipes.load_recipe(str(path)))
    finally:
        if make == "fifo":
            unblocking(path)
    assert isinstance(e, ConfigError) and str(e).startswith(f"{path}: ")
    assert ("not a regular file", "is a folder", "more than a recipe can hold")[
        ("fifo", "folder", "huge").index(make)] in str(e)
