"""Small things every other module needs: the error type and the run's default sizes.

Nothing here is about multi-task learning; it only keeps the other files short.
"""
import os
from dataclasses import dataclass


class MTLError(Exception):
    """A mistake the user can fix (bad block name, missing data, ...).

    The message says what went wrong and what to do. The CLI prints it on one line and
    exits non-zero; notebooks show it as a normal exception.
    """


@dataclass(frozen=True)
class RunSize:
    """How much data and training a run gets by default on this machine (see `run_size`)."""
    smoke: bool                 # MTL_SMOKE=1: tiny data, 1 epoch: a check that everything runs
    max_train: int | None       # training sentences (None = all)
    max_eval: int | None        # validation and test sentences (None = all)
    epochs: int
    batch_size: int


SMOKE_TRAIN, SMOKE_EVAL = 128, 128


def run_size(gpu, notebook=False):
    """The one place that reads MTL_SMOKE (and MTL_MAX_TRAIN, MTL_EPOCHS).

    GPU: all of SNIPS, batch 32. CPU: notebooks take the first 2,000 sentences of a seeded
    shuffle (the CLI takes all unless told otherwise), batch 16. Smoke mode: 128 training,
    128 validation and 128 test sentences, 1 epoch: the numbers then mean nothing.
    """
    smoke = os.environ.get("MTL_SMOKE", "") not in ("", "0")
    max_train = SMOKE_TRAIN if smoke else (2000 if notebook and not gpu else None)
    epochs = 1 if smoke else 3
    if os.environ.get("MTL_MAX_TRAIN"):
        max_train = int(os.environ["MTL_MAX_TRAIN"])
    if os.environ.get("MTL_EPOCHS"):
        epochs = int(os.environ["MTL_EPOCHS"])
    return RunSize(smoke, max_train, SMOKE_EVAL if smoke else None, epochs, 32 if gpu else 16)
