"""Shared pieces of the simulator tests: a fixed-cost step model and the invariants every
simulation must satisfy."""

import numpy as np


class FixedCosts:
    """A step model where a forward with prompt tokens takes `prefill_s` and a pure decode
    forward `decode_s`, whatever its size: service times become deterministic (queueing tests)."""

    group = 1

    def __init__(self, prefill_s: float, decode_s: float = 0.0):
        self.prefill_s, self.decode_s = prefill_s, decode_s

    def time(self, b, ctx, p=0.0, prompt=1.0):
        return self.prefill_s if p > 0 else self.decode_s

    def decode_times(self, b, ctx):
        return np.full(len(ctx), self.decode_s)


def check_invariants(res) -> None:
    """Little's law, every request completed exactly once, every asked token generated, and
    time running forward for each request."""
    t = res.table
    assert res.completed == res.requests
    assert np.all(t["completions"] == 1)
    assert np.array_equal(t["generated_tokens"], t["output_tokens"])
    assert np.all(t["first_token_s"] >= t["arrival_s"])
    assert np.all(t["finish_s"] >= t["first_token_s"])
    assert res.littles_law["relative_error"] < 1e-9
