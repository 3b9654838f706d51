"""Content-addressed feature cache: shared by participants, never loads a model on a hit."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from stimuli_models.features import FeatureSettings
from stimuli_models.models import hash_model_dir
from stimuli_models.story_features import Story, feature_key, featurize_stories, load_feature_layers
from stimuli_models.tuning import get_method

STORIES = [
    Story("lighthouse", "The keeper woke before dawn . Fog rolled over the rocks .".split()),
    Story("market", "On Saturdays the old market filled with voices .".split()),
    Story("zh", ["我们", "今天", "去", "公园", "。"], separator=""),
]
SETTINGS = FeatureSettings(layers=(1, 2), stride=2, context_words=4, dtype="float32")


@pytest.fixture()
def model_copy(tiny_bert, tmp_path):
    path = tmp_path / "model"
    shutil.copytree(tiny_bert, path)
    return path


def _loader(path, calls):
    method = get_method("frozen")

    def load():
        calls.append(path)
        return method.load_for_features(path, None, device="cpu")

    return load


def test_cache_hit_never_loads_the_model(model_copy, tmp_path):
    calls = []
    fingerprint = hash_model_dir(model_copy)
    cache = tmp_path / "cache"
    first = featurize_stories(STORIES, load=_loader(model_copy, calls),
                              model_fingerprint=fingerprint, settings=SETTINGS, cache_dir=cache)
    assert len(calls) == 1  # one load for all stories
    features, layers = load_feature_layers(first[0])
    assert features.shape == (2, len(STORIES[0].words), 32) and layers == [1, 2]
    meta = json.loads(first[2].with_suffix(".json").read_text(encoding="utf-8"))
    assert meta["story"] == "zh" and meta["n_tokens"] == 8
    stamps = [p.stat().st_mtime_ns for p in first]
    # the model disappears: a cache hit must not notice
    model_copy.rename(tmp_path / "gone")
    again = featurize_stories(STORIES[::-1], load=_loader(model_copy, calls),
                              model_fingerprint=fingerprint, settings=SETTINGS, cache_dir=cache)
    assert len(calls) == 1
    assert again[::-1] == first
    assert [p.stat().st_mtime_ns for p in first] == stamps


def test_key_depends_on_everything_the_features_depend_on():
    story = STORIES[0]
    key = feature_key("abc", SETTINGS, story)
    assert key == feature_key("abc", FeatureSettings(**SETTINGS.to_dict()), story)
    assert key != feature_key("abd", SETTINGS, story)
    assert key != feature_key("abc", FeatureSettings(**{**SETTINGS.to_dict(), "stride": 3}), story)
    assert key != feature_key("abc", FeatureSettings(**{**SETTINGS.to_dict(),
                                                        "context_unit": "tokens"}), story)
    assert key != feature_key("abc", SETTINGS, Story("x", story.words, separator=""))
    assert key != feature_key("abc", SETTINGS, Story("x", story.words[:-1]))


def test_new_settings_compute_only_what_is_missing(model_copy, tmp_path):
    calls = []
    fingerprint = hash_model_dir(model_copy)
    cache = tmp_path / "cache"
    a = featurize_stories(STORIES[:1], load=_loader(model_copy, calls),
                          model_fingerprint=fingerprint, settings=SETTINGS, cache_dir=cache)
    b = featurize_stories(STORIES[:2], load=_loader(model_copy, calls),
                          model_fingerprint=fingerprint, settings=SETTINGS, cache_dir=cache)
    assert len(calls) == 2 and b[0] == a[0]
    other = FeatureSettings(**{**SETTINGS.to_dict(), "layers": [2]})
    c = featurize_stories(STORIES[:1], load=_loader(model_copy, calls),
                          model_fingerprint=fingerprint, settings=other, cache_dir=cache)
    assert len(calls) == 3 and c[0] != a[0]
    np.testing.assert_array_equal(np.load(c[0])[0], np.load(a[0])[1])


def test_story_json_round_trip(tmp_path):
    story = Story("zh", ["我们", "今天"], sentences=[0, 0], separator="")
    story.to_json(tmp_path / "s.json")
    assert Story.from_json(tmp_path / "s.json") == story
