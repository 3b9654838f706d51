"""Explicit text normalisation of words (case, punctuation, numbers), recorded in sidecars.

Nothing is changed unless the spec asks: ``lowercase``, ``strip_punctuation``
(Unicode punctuation removed, except apostrophes and hyphens inside words; a word
made only of punctuation is kept as written) and ``numbers`` (``keep``;
``spell``: digits written out in English words, e.g. ``1984`` -> ``one thousand
nine hundred eighty-four``; ``drop``: words that are numbers are removed with
their timings).
"""

from __future__ import annotations

import re
import unicodedata

from ...errors import UsageError

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10 ** 12, "trillion"), (10 ** 9, "billion"), (10 ** 6, "million"),
           (1000, "thousand"))
_NUMBER = re.compile(r"^[-+]?\d[\d,]*(\.\d+)?$")


def spell_integer(value: int) -> str:
    """English words of a non-negative integer (``21`` -> ``twenty-one``)."""
    if value < 20:
        return _ONES[value]
    if value < 100:
        tens, ones = divmod(value, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if value < 1000:
        hundreds, rest = divmod(value, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {spell_integer(rest)}" if rest else "")
    for scale, name in _SCALES:
        if value >= scale:
            head, rest = divmod(value, scale)
            return f"{spell_integer(head)} {name}" + (f" {spell_integer(rest)}" if rest else "")
    raise ValueError(value)  # pragma: no cover


def spell_number(token: str) -> str:
    """English words of a number written in digits (``3.5`` -> ``three point five``)."""
    sign = "minus " if token.startswith("-") else ""
    body = token.lstrip("+-").replace(",", "")
    whole, _, decimals = body.partition(".")
    if len(whole) > 15:
        return token
    words = sign + spell_integer(int(whole))
    if decimals:
        words += " point " + " ".join(_ONES[int(d)] for d in decimals)
    return words


def is_number(word: str) -> bool:
    """Tell whether a word is written only with digits (and separators)."""
    return bool(_NUMBER.match(word.strip()))


def _strip_punctuation(word: str) -> str:
    chars = list(word)
    out = []
    for i, char in enumerate(chars):
        if unicodedata.category(char).startswith("P"):
            inner = 0 < i < len(chars) - 1 and char in "'’-"
            if not inner:
                continue
        out.append(char)
    return "".join(out)


def normalise_words(words: list[str], spec) -> list[str]:
    """Apply the spec's explicit text normalisation.

    Parameters
    ----------
    words : list of str
        Words as read.
    spec : AnnotationConfig
        ``lowercase``, ``strip_punctuation``, ``numbers`` and ``language``.

    Returns
    -------
    list of str
        Same length; ``""`` marks a word removed by ``numbers = "drop"``.
    """
    numbers = getattr(spec, "numbers", "keep")
    language = str(getattr(spec, "language", "") or "en").split("-")[0].lower()
    if numbers == "spell" and language != "en":
        raise UsageError(f"'annotations.numbers' = 'spell' writes numbers in English words but "
                         f"annotations.language is '{spec.language}'; use 'keep' or 'drop'.")
    out = []
    for word in words:
        if spec.strip_punctuation:
            word = _strip_punctuation(word) or word
        if is_number(word):
            if numbers == "drop":
                out.append("")
                continue
            if numbers == "spell":
                word = spell_number(word)
        if spec.lowercase:
            word = word.lower()
        out.append(word)
    return out


def normalisation_record(spec, separator: str) -> dict:
    """Describe what was done to the text, for sidecars."""
    return {"Lowercase": bool(spec.lowercase),
            "StripPunctuation": bool(spec.strip_punctuation),
            "Numbers": getattr(spec, "numbers", "keep"),
            "Language": getattr(spec, "language", "") or "unspecified",
            "Segmentation": getattr(spec, "segmentation", "none"),
            "LabelSeparator": getattr(spec, "label_separator", " / "),
            "DroppedLabels": list(getattr(spec, "drop_labels", [])),
            "WordSeparator": separator}
