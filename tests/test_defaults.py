"""What the command line shows without loading a model agrees with the model."""
from vqcodec.defaults import DEFAULT_MODEL, shipped_levels


def test_the_levels_the_help_shows_are_the_shipped_models(model):
    assert model.name == DEFAULT_MODEL
    assert shipped_levels() == (model.default_quality, model.levels)
