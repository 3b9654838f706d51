"""Story text for the embedded demo dataset, written by a seeded generator.

Each story opens with a few fixed sentences and continues with sentences drawn
from small templates (characters, places, objects, actions, feelings), so the
text is varied enough for a language model's features to change from word to
word while staying reproducible from the seed.
"""

from __future__ import annotations

import numpy as np

OPENINGS = {
    "lighthouse": [
        "The lighthouse keeper woke before dawn, as she had done for thirty years.",
        "Fog rolled over the rocks and the lamp turned slowly above her head.",
        "Nobody had visited the island since the storm of the previous winter.",
    ],
    "market": [
        "On Saturdays the old market filled with voices long before the shops opened.",
        "Tomas carried crates of apples from the van while his father counted coins.",
        "A street musician tuned a violin under the clock that never showed the right time.",
    ],
    "journey": [
        "The train left the city at noon and climbed slowly into the mountains.",
        "Mira pressed her face to the cold window and watched the villages shrink.",
        "Somewhere in her bag was a letter she had promised not to open until Friday.",
    ],
}

PEOPLE = ["the keeper", "her brother", "an old fisherman", "the doctor", "a small boy",
          "the baker", "Tomas", "Mira", "the conductor", "a tired soldier", "the teacher",
          "his grandmother", "a stranger in a grey coat", "the twins", "the mayor"]
PLACES = ["the harbour", "the kitchen", "the narrow bridge", "the empty station", "the garden",
          "the library", "the top of the hill", "the frozen lake", "the crowded square",
          "the back of the shop", "the dark forest", "the hospital corridor", "the beach"]
OBJECTS = ["a wooden box", "the letter", "a broken umbrella", "a basket of bread",
           "the silver key", "an old photograph", "a lantern", "the map", "a red scarf",
           "a cup of tea", "the violin", "a bundle of newspapers", "a pair of boots"]
ACTIONS = ["opened", "carried", "dropped", "found", "hid", "repaired", "remembered", "sold",
           "painted", "wrapped", "lost", "described", "noticed", "returned"]
MOTIONS = ["walked to", "ran towards", "hurried across", "wandered through", "climbed up to",
           "drove past", "waited near", "returned to", "stumbled into", "sailed around"]
FEELINGS = ["happy", "afraid", "curious", "angry", "calm", "lonely", "surprised", "proud",
            "nervous", "sad", "hopeful", "confused"]
TIMES = ["In the morning", "Later that day", "After a while", "At midnight", "Before long",
         "On the third day", "When the rain stopped", "Suddenly", "Much later",
         "That evening"]
SPEECH = ["asked whether anyone had seen the dog", "said that the sea was rising",
          "whispered that the door was locked", "shouted that the bread was ready",
          "explained how the clock had stopped", "wondered why nobody answered",
          "promised to come back before winter", "laughed at the old joke again"]
WEATHER = ["The wind grew stronger and the windows rattled.",
           "Snow began to fall over the roofs.", "The sun came out for a moment.",
           "A heavy rain drummed on the tin roof.", "The air smelled of salt and smoke.",
           "Thunder rolled somewhere far away."]


def _sentence(rng: np.random.Generator) -> str:
    pick = lambda items: items[int(rng.integers(len(items)))]  # noqa: E731
    kind = int(rng.integers(7))
    if kind == 0:
        text = f"{pick(TIMES)}, {pick(PEOPLE)} {pick(MOTIONS)} {pick(PLACES)}."
    elif kind == 1:
        text = f"{pick(PEOPLE)} {pick(ACTIONS)} {pick(OBJECTS)} in {pick(PLACES)}."
    elif kind == 2:
        text = f"{pick(PEOPLE)} felt {pick(FEELINGS)} and {pick(SPEECH)}."
    elif kind == 3:
        text = pick(WEATHER)
    elif kind == 4:
        text = (f"Because {pick(PEOPLE)} was {pick(FEELINGS)}, {pick(PEOPLE)} "
                f"{pick(ACTIONS)} {pick(OBJECTS)}.")
    elif kind == 5:
        text = f"\"Where is {pick(OBJECTS)}?\" {pick(PEOPLE)} {pick(SPEECH).split(' ', 1)[0]}."
    else:
        text = (f"{pick(PEOPLE)} {pick(MOTIONS)} {pick(PLACES)}, where {pick(PEOPLE)} "
                f"{pick(ACTIONS)} {pick(OBJECTS)}.")
    return text[0].upper() + text[1:]


def story_words(name: str, n_words: int, seed: int) -> list[str]:
    """Words of one demo story (at least ``n_words``, ending at a sentence end).

    Parameters
    ----------
    name : str
        One of the keys of :data:`OPENINGS`.
    n_words : int
        Minimum length.
    seed : int
        Random seed (the same seed gives the same text).

    Returns
    -------
    list of str
        Words with their punctuation attached.
    """
    rng = np.random.default_rng([seed, sum(map(ord, name))])
    words: list[str] = []
    for sentence in OPENINGS[name]:
        words.extend(sentence.split())
    while len(words) < n_words:
        words.extend(_sentence(rng).split())
    return words
