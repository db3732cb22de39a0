"""Random run names in MLflow's style ("bold-heron-42") for ``${km.random_name:}``, without importing mlflow."""

from __future__ import annotations

import random

_ADJECTIVES = (
    "amber", "bold", "brave", "bright", "calm", "clever", "crisp", "dapper", "eager", "fair",
    "gentle", "glad", "grand", "keen", "kind", "lively", "lucky", "merry", "nimble", "noble",
    "proud", "quick", "quiet", "rare", "sharp", "shy", "sleek", "smart", "swift", "tidy",
)
_NOUNS = (
    "badger", "bee", "crane", "deer", "dove", "eel", "falcon", "finch", "fox", "gull",
    "hare", "hawk", "heron", "ibis", "jay", "koala", "lark", "lynx", "mole", "newt",
    "otter", "owl", "panda", "quail", "robin", "seal", "swan", "toad", "wolf", "wren",
)


def random_run_name(_ignored: object = None) -> str:
    """``_ignored``: kedro-mlflow's resolver takes one argument, so its ``${km.random_name:null}`` works too."""
    rng = random.SystemRandom()
    return f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}-{rng.randint(0, 999)}"
