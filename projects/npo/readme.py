"""The npo README block (used by `python -m harness.readme npo`): the claims table plus, from the same
results.json, each TOFU method's FQ / MU per epoch (shared with the other unlearning project)."""

from projects.npo.tofu import readme_block as render

__all__ = ["render"]
