"""wordnet.models.registry: the model kinds, each declared once by its module."""
import pytest

from wordnet.errors import ConfigError
from wordnet.models import registry
from wordnet.models.fourgram import FourGramConfig, Model
from wordnet.models.skipgram import SkipGram
from wordnet.models.window import WindowScorer


def test_the_kinds_and_what_they_declare():
    assert list(registry.KINDS) == ["4gram", "window", "skipgram"]
    assert registry.DEFAULT == "4gram" and registry.of(FourGramConfig()).model is Model
    assert registry.predicting() == ("4gram",)
    assert registry.checkpoint_kinds(".npz") == {"window": WindowScorer.PARAMS,
                                                 "skipgram": SkipGram.PARAMS}
    assert registry.checkpoint_kinds(".bin") == {"4gram": Model.PARAMS}
    for kind in registry.KINDS.values():
        assert kind.config().model == kind.name and kind.model.kind == kind.name
        assert kind.run_stages().__name__.endswith("Stages")
        assert kind.figures.select_by.startswith("valid/final_")


def test_an_unknown_kind_names_those_there_are():
    with pytest.raises(ConfigError, match="model must be one of 4gram, window, skipgram, "
                                          "got 'cbow'"):
        registry.kind("cbow")


def test_info_reads_any_npz_model_whatever_its_file_is_called(tmp_path):
    """The kind of a .npz checkpoint is in the file, not its name."""
    from wordnet.models import checkpoint
    from wordnet.use import model_info
    config = registry.kind("skipgram").config(embedding_size=3)
    model = SkipGram.initialize(config, 7)
    checkpoint.save_npz(tmp_path / "mine.npz", model.kind, model.params())
    lines = model_info(str(tmp_path / "mine.npz"), None)
    assert "Model" in lines[1] and "skipgram" in lines[1]
    assert any("W2" in line and "7 x 3" in line for line in lines)
