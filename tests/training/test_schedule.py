"""Learning-rate schedules against hand-computed values."""

import math

import pytest

from transunet3d.training.schedule import cosine_lr, poly_lr


def test_cosine_warms_up_linearly_then_decays_to_zero():
    assert cosine_lr(1.0, 0, 100, warmup=10) == pytest.approx(0.1)
    assert cosine_lr(1.0, 9, 100, warmup=10) == pytest.approx(1.0)
    assert cosine_lr(1.0, 10, 100, warmup=10) == pytest.approx(1.0)
    assert cosine_lr(1.0, 55, 100, warmup=10) == pytest.approx(0.5)  # halfway through the decay
    assert cosine_lr(1.0, 40, 100, warmup=10) == pytest.approx(0.5 * (1 + math.cos(math.pi / 3)))
    assert cosine_lr(1.0, 100, 100, warmup=10) == pytest.approx(0.0)


def test_poly_matches_nnunet():
    assert poly_lr(1e-2, 0, 1000) == pytest.approx(1e-2)
    assert poly_lr(1e-2, 500, 1000) == pytest.approx(1e-2 * 0.5**0.9)
