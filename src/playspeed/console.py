"""What the command line shows: stages, progress bars, results and warnings about the input,
not the notices of the libraries underneath.

Lightning logs its notices (accelerator found, defaults in use, advertisements, why ``fit``
stopped) at INFO on its ``rank_zero`` loggers; its real problems come at WARNING or as
Python warnings, which stay. Deprecation warnings that a dependency raises about another
dependency are nothing a user can act on, so they are dropped by message, one by one.
``playspeed --debug`` installs none of this and shows everything.
"""

from __future__ import annotations

import logging
import warnings

# Loggers whose INFO records are the framework's notices, not results.
NOTICE_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")

# (message regex, category) of warnings raised inside dependencies about dependencies.
DEPENDENCY_WARNINGS = (
    # Lightning 2.6 calls torch's deprecated pytree API (torch >= 2.9).
    (r".*isinstance\(treespec, LeafSpec\)", Warning),
    # Lightning on a checkpoint folder that is not empty: a resumed run's, by design.
    (r"Checkpoint directory .* exists and is not empty", UserWarning),
)


def quiet_dependencies() -> None:
    """Hide the notices of dependencies for the rest of the process (the CLI's default)."""
    for name in NOTICE_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for message, category in DEPENDENCY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
