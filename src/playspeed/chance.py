"""Chance levels, and the check that a pretext learned: what a model that learned nothing
scores, so that no accuracy is read without one.

Torch-free: every layer (sampling, tasks, reports) asks here.

- :func:`constant_guess_accuracy`: always answering the most frequent label (classification
  accuracy, the pretext grids, fine-tuning's hold-out, probes);
- :func:`retrieval_chance`: a random ranking of the gallery (retrieval top-k);
- :func:`chance_loss`: the cross-entropy of a uniform guess, ``ln K``;
- :func:`pretext_check`: accuracy within :data:`CHANCE_MARGIN_POINTS` of its chance, or the
  training loss within :data:`CHANCE_LOSS_MARGIN` of ``ln K``, means "did not learn".
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

# A pretext counts as not learned when it ends within this many points of chance ...
CHANCE_MARGIN_POINTS = 5.0
# ... or when its final training loss is within this share of ln K (K-way chance loss).
CHANCE_LOSS_MARGIN = 0.02
ADVICE = ("try more clips (trainer.max_epochs, more videos), another optim.lr or "
          "optim.warmup_epochs, or check that the videos move")
#: How :func:`pretext_check` decides, in words (for reports).
PRETEXT_RULE = (f"validation accuracy under {CHANCE_MARGIN_POINTS:g} points above chance, or "
                f"the training loss within {CHANCE_LOSS_MARGIN:.0%} of ln K")


def constant_guess_accuracy(labels: Sequence[int] | np.ndarray) -> float:
    """Chance level of a set of labels, in percent: the accuracy of always answering its most
    frequent label (``100 / K`` when the ``K`` labels are equally frequent, as on a full grid).
    """
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    return float(100 * counts.max() / counts.sum()) if counts.size else float("nan")


def retrieval_chance(query_labels: Sequence[int], gallery_labels: Sequence[int], *,
                     k: int) -> float:
    """Top-``k`` accuracy (percent) of a random ranking of the gallery, in expectation: a
    query whose class has ``m`` of the ``G`` gallery videos misses with probability
    ``C(G - m, k) / C(G, k)``."""
    gallery = len(gallery_labels)
    if not len(query_labels) or not gallery:
        return float("nan")
    counts = Counter(gallery_labels)
    draws = min(k, gallery)
    misses = [math.comb(gallery - counts[label], draws) / math.comb(gallery, draws)
              for label in query_labels]
    return 100 * (1 - sum(misses) / len(misses))


def chance_loss(num_classes: Mapping[str, int]) -> float:
    """Training loss of a model that knows nothing: ``ln K`` of the ``K`` joint classes of an
    objective's readings (their cross-entropies summed: ``classify``: ``ln(S * D)``;
    ``sort``: ``ln N!``). ``num_classes``: classes per reading
    (:meth:`playspeed.objectives.Objective.num_classes`)."""
    return math.log(math.prod(num_classes.values()))


def pretext_check(*, accuracy: float | None, chance: float, train_loss: float | None,
                  chance_loss: float, margin: float = CHANCE_MARGIN_POINTS,
                  loss_margin: float = CHANCE_LOSS_MARGIN) -> tuple[bool, str | None]:
    """Did the pretext learn? ``(False, reason)`` when the validation accuracy (percent) is
    below ``chance + margin`` points or the final training loss is at least
    ``(1 - loss_margin) * chance_loss``; ``(True, None)`` otherwise. A missing accuracy
    counts as not learned; a missing training loss (a resumed run that had no step left to
    train) is not judged."""
    accuracy = math.nan if accuracy is None else accuracy
    problems = []
    if not accuracy >= chance + margin:  # NaN fails too
        problems.append(f"validation accuracy {accuracy:.1f}% is not {margin:g} points above "
                        f"chance ({chance:.1f}%)")
    if train_loss is not None and not train_loss < (1 - loss_margin) * chance_loss:
        problems.append(f"final training loss {train_loss:.3f} is not {loss_margin:.0%} below "
                        f"chance (ln K = {chance_loss:.3f})")
    if not problems:
        return True, None
    return False, f"the pretext did not learn: {' and '.join(problems)}; {ADVICE}"
