"""The simnpo README block: the claims table plus, from the same results.json, each TOFU method's FQ / MU per epoch
(used by `python -m projects.readme simnpo`)."""

from projects import unlearning_tofu
from projects.readme import claims_table


def render(results: dict) -> str:
    tables = unlearning_tofu.epoch_tables(results)
    return claims_table(results) + ("\n\n" + tables if tables else "")
