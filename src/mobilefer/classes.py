"""Emotion class names: the one place where names are canonicalised and ids mapped.

Classes travel by name, never by index. FER2013's CSV ids and alphabetical folder
order differ, so every reader maps through :func:`canonical_name` and every model
keeps its class names (in output order) in its metadata.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

# Common spellings seen in public data sets, plus the origin notebook's own typos.
SYNONYMS: dict[str, str] = {
    "anger": "angry",
    "angry": "angry",
    "mad": "angry",
    "bored": "boring",
    "boredom": "boring",
    "boring": "boring",
    "contempt": "contempt",
    "contemptuous": "contempt",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "neutral": "neutral",
    "neural": "neutral",
    "calm": "neutral",
    "sad": "sad",
    "sadness": "sad",
    "stress": "stress",
    "stressed": "stress",
    "surprise": "surprise",
    "surprised": "surprise",
    "suprise": "surprise",
}

# Ids of the original FER2013 CSV (Goodfellow et al. 2013), mapped to canonical names.
FER2013_IDS: dict[int, str] = {
    0: "angry",
    1: "disgust",
    2: "fear",
    3: "happy",
    4: "sad",
    5: "surprise",
    6: "neutral",
}


def canonical_name(name: str) -> str:
    """Lower-case, trimmed and synonym-mapped class name; unknown names pass through."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if not key:
        raise ValueError("empty class name")
    return SYNONYMS.get(key, key)


def canonical_names(names: Iterable[str]) -> list[str]:
    """Canonicalise a list of names, refusing two names that collapse into one."""
    out: list[str] = []
    for name in names:
        canon = canonical_name(name)
        if canon in out:
            raise ValueError(f"class names collide: {name!r} is another spelling of {canon!r}")
        out.append(canon)
    return out


def index_map(source: Sequence[str], target: Sequence[str]) -> list[int]:
    """For each class name in ``source``, its index in ``target`` (both canonical).

    Raises ValueError naming the unknown classes and listing ``target``.
    """
    position = {name: i for i, name in enumerate(target)}
    missing = [name for name in source if name not in position]
    if missing:
        raise ValueError(
            f"class(es) {', '.join(missing)} not among the model's classes: {', '.join(target)}"
        )
    return [position[name] for name in source]


def match_classes(new: Sequence[str], old: Sequence[str], cutoff: float = 0.8) -> list[int | None]:
    """For each of ``new`` (canonical names), the index of the same class in ``old``, or None.

    Exact (synonym-mapped) names first; then a close spelling ("hapy" -> "happy") that no
    other new class claims. Used to reuse a trained head's rows when fine-tuning.
    """
    position = {name: i for i, name in enumerate(old)}
    found: list[int | None] = [position.get(name) for name in new]
    taken = {i for i in found if i is not None}
    for k, name in enumerate(new):
        if found[k] is None:
            free = [o for o in old if position[o] not in taken]
            close = difflib.get_close_matches(name, free, n=1, cutoff=cutoff)
            if close:
                found[k] = position[close[0]]
                taken.add(found[k])
    return found
