"""Chance levels and the did-the-pretext-learn check, on labels with known answers."""

import math

import numpy as np
import pytest

from playspeed.chance import (
    chance_loss,
    constant_guess_accuracy,
    pretext_check,
    retrieval_chance,
)


def test_retrieval_chance_is_the_expected_hit_rate_of_a_random_ranking():
    gallery = [0, 0, 1, 2]
    # top-1: the share of the query's class in the gallery, averaged over queries
    assert retrieval_chance([0, 1], gallery, k=1) == pytest.approx(100 * (2 / 4 + 1 / 4) / 2)
    # top-2: a miss draws both from the other classes: C(2,2)/C(4,2) and C(3,2)/C(4,2)
    assert retrieval_chance([0, 1], gallery, k=2) == pytest.approx(100 * (5 / 6 + 3 / 6) / 2)
    assert retrieval_chance([0, 1], gallery, k=5) == 100.0  # k past the gallery: all of it
    assert retrieval_chance([3], gallery, k=2) == 0.0  # a class absent from the gallery
    # a simulation of random rankings agrees
    rng = np.random.default_rng(0)
    hits = np.mean([np.isin(0, rng.permutation(gallery)[:2]) for _ in range(4000)])
    assert 100 * hits == pytest.approx(retrieval_chance([0], gallery, k=2), abs=3)


def test_constant_guess_accuracy_is_the_majority_share():
    assert constant_guess_accuracy([1, 2, 4, 8] * 3) == 25.0
    assert constant_guess_accuracy([1, 1, 1, 2]) == 75.0


def test_pretext_check_flags_accuracy_near_chance_or_loss_near_ln_k():
    ln8 = math.log(8)
    assert chance_loss({"speed": 4, "direction": 2}) == pytest.approx(ln8)
    assert chance_loss({"order": 6}) == pytest.approx(math.log(6))
    # The runs: 20 epochs at chance, 60 epochs learning.
    assert pretext_check(accuracy=11.7, chance=12.5, train_loss=2.0, chance_loss=ln8)[0] is False
    assert pretext_check(accuracy=28.0, chance=12.5, train_loss=1.6, chance_loss=ln8) == (True,
                                                                                         None)
    learned, reason = pretext_check(accuracy=17.0, chance=12.5, train_loss=1.5, chance_loss=ln8)
    assert not learned and "not 5 points above chance (12.5%)" in reason
    learned, reason = pretext_check(accuracy=40.0, chance=12.5, train_loss=0.99 * ln8,
                                    chance_loss=ln8)
    assert not learned and "not 2% below" in reason and "accuracy" not in reason
    assert pretext_check(accuracy=None, chance=12.5, train_loss=None, chance_loss=ln8)[0] is False
    # A resumed run with no step left has no training loss of its own: not judged on it.
    assert pretext_check(accuracy=28.0, chance=12.5, train_loss=None, chance_loss=ln8) == (True,
                                                                                          None)
