"""lib/minimal_models.py: the three-parameter model reproduces the authors' stored trajectory."""

import jax
import jax.numpy as jnp
import numpy as np

from lib.minimal_models import sigma_n, three_param_descent, three_param_loss


def test_loss_at_zero_is_log_31():
    """At (0,0,0) the correct end competes with 30 others at equal logit: L = ln 31."""
    np.testing.assert_allclose(three_param_loss(jnp.zeros(3)), np.log(31), rtol=1e-6)
    np.testing.assert_allclose(sigma_n(jnp.log(10.0), 10.0), 0.5, rtol=1e-6)


def test_gradient_matches_finite_differences():
    """jax.grad of the loss equals central finite differences (float64)."""
    with jax.enable_x64(True):
        th = jnp.array([0.3, -0.7, 1.9], jnp.float64)
        g = jax.grad(three_param_loss)(th)
        eps = 1e-6
        fd = [(three_param_loss(th.at[i].add(eps)) - three_param_loss(th.at[i].add(-eps))) / (2 * eps)
              for i in range(3)]
        np.testing.assert_allclose(g, fd, rtol=1e-6)


def test_plateau_then_cliff_from_the_authors_init():
    """From the notebook's init, SGD lr 0.1: 3.419 → 3.251 (600) → 0.15 (800) → 0.0063 (2000), (α,β,γ) → (6.03,
    5.35, 8.33)."""
    thetas, losses = three_param_descent(jnp.array([-0.404, -0.6635, 1.4107]), lr=0.1, steps=2000)
    np.testing.assert_allclose([losses[0], losses[600], losses[800], losses[2000]], [3.419, 3.251, 0.15, 0.0063],
                               rtol=0.02)
    np.testing.assert_allclose(thetas[-1], [6.03, 5.35, 8.33], rtol=0.02)
    assert np.all(np.asarray(losses[:601]) > 3.2)


def test_zero_init_plateau_and_beta_moves_last():
    """From (0,0,0): L > 3.3 through step 800, < 1 at 1000, < 0.01 at 2000; β stays put until just before the cliff."""
    thetas, losses = three_param_descent(jnp.zeros(3), lr=0.1, steps=2000)
    assert np.all(np.asarray(losses[:801]) > 3.3)
    assert 0.6 < float(losses[1000]) < 1.0 and float(losses[2000]) < 0.01
    assert abs(float(thetas[700, 1] - thetas[0, 1])) < 0.2
    assert float(thetas[700, 0]) > 0.5 and float(thetas[700, 2]) > 0.5  # α and γ crept up first
