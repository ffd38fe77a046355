"""Whether a mistyped word is close enough to a real one to suggest it: a wrong suggestion is worse than none."""

from __future__ import annotations

# Edits (insert, delete, replace, swap two neighbours) a typo may be from the word it meant.
MAX_EDITS = 2


def close_spelling(typed: str, known: str) -> bool:
    """True when typed is within MAX_EDITS edits of known, or known shortened or lengthened (`--conf`, `--output`)."""
    typed, known = typed.lstrip("-"), known.lstrip("-")
    if len(typed) >= 2 and known.startswith(typed):
        return True
    if len(known) >= 3 and typed.startswith(known):  # `--output` for `--out`
        return True
    return edit_distance(typed, known) <= min(MAX_EDITS, max(1, len(known) // 3))


def edit_distance(first: str, second: str) -> int:
    """Damerau-Levenshtein distance (optimal string alignment): a swap of neighbours counts once."""
    previous2: list[int] = []
    previous = list(range(len(second) + 1))
    for i, a in enumerate(first, 1):
        current = [i]
        for j, b in enumerate(second, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b))
            if i > 1 and j > 1 and a == second[j - 2] and first[i - 2] == b:
                cost = min(cost, previous2[j - 2] + 1)
            current.append(cost)
        previous2, previous = previous, current
    return previous[-1]
