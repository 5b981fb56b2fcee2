"""lib/compute_cost.py: FLOP and roofline models against hand-computed values."""

import pytest

from lib import compute_cost as cc

DIMS = cc.ModelDims(params_nonemb=1000.0, d_model=8, n_layers=2, vocab=10)


def test_token_and_decode_flops_by_hand():
    """One token: 2·P + 2·d·V + 4·L·ℓ·d; decoding sums it over steps with the growing context."""
    assert cc.token_flops(DIMS, 5) == 2 * 1000 + 2 * 8 * 10 + 4 * 2 * 5 * 8
    by_hand = sum(3 * cc.token_flops(DIMS, p + 1) for p in range(4, 9))  # 3 rows, positions 4..8
    assert cc.decode_flops(DIMS, batch=3, start=4, end=9) == pytest.approx(by_hand)


def test_roofline_is_bandwidth_bound_for_small_batches_and_compute_bound_for_large():
    """A decode step of a few rows costs the weight read; of very many rows, the FLOPs."""
    hw = cc.Roofline()
    small = cc.roofline_decode_seconds(hw, batch=1, start=100, end=101)
    assert small == pytest.approx((16e9 + 128 * 1024 * 100.5) / 3.35e12)
    big = cc.roofline_decode_seconds(cc.Roofline(kv_bytes_per_token=0.0), batch=100_000, start=0, end=1)
    assert big == pytest.approx(2 * 8e9 * 100_000 / (0.5 * 989e12))
    assert cc.roofline_pass_seconds(hw, batch=1, length=1, reward_model=True) == pytest.approx(16e9 / 3.35e12)


def test_schedule_cost_and_best_of_n_scaling():
    """A single full-length round equals Best-of-N on one device; N devices cost N times one."""
    kw = dict(prompt_len=5, gen=DIMS, rm=DIMS)
    one = cc.best_of_n_cost(16, device_batch=16, max_new_tokens=20, **kw)
    same = cc.schedule_cost([{"bucket": 16, "start": 5, "end": 25}], [{"n": 16, "length": 25}], **kw)
    assert one == pytest.approx(same)
    four = cc.best_of_n_cost(64, device_batch=16, max_new_tokens=20, **kw)
    assert four["flops"] == pytest.approx(4 * one["flops"])
    assert four["roofline_seconds"] == pytest.approx(4 * one["roofline_seconds"])


def test_roofline_scale_prompt_false_scales_new_tokens_only():
    """scale_prompt=False maps a length ℓ to P + (ℓ − P)·s; FLOPs are unchanged."""
    g = cc.ModelDims(1e6, 64, 2, 100)
    rounds, rm = [{"bucket": 4, "start": 10, "end": 20}], [{"n": 4, "length": 20}]
    a = cc.schedule_cost(rounds, rm, prompt_len=10, gen=g, rm=g, length_scale=8, scale_prompt=False)
    b = cc.schedule_cost([{"bucket": 4, "start": 10, "end": 90}], [{"n": 4, "length": 90}], prompt_len=10,
                                   gen=g, rm=g)
    assert a["roofline_seconds"] == pytest.approx(b["roofline_seconds"])
    assert a["flops"] == cc.schedule_cost(rounds, rm, prompt_len=10, gen=g, rm=g)["flops"]
