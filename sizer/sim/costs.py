"""Step times for the simulator: sizer's step model, tabulated once and interpolated.

Every scheduled forward is a mixed batch: `b` decode tokens whose sequences hold on average
`ctx` tokens of KV, plus `P` prompt (prefill) tokens. The cost is the one
sizer/cost/estimate.py:serving_curve composes for continuous batching: a decode-phase
`step_time` with `prefill_tokens=P` and the prompt length `L` (attention of a chunk grows with
the prompt it belongs to); a forward with no decode tokens is a prefill-phase `step_time` of
P / L prompts of L tokens (estimate's static prefill). Under PP the value is the slowest
stage's time for that micro-batch (the pipeline clock); with PP = 1 it is the step time.

For chunks that do not start at the prompt's beginning, L is the effective length that gives
the same causal attention work: a chunk of n tokens after k computed ones does n (k + n / 2)
query-key products, which a prompt of L = 2k + n does on average per token; several chunks
combine weighted by their tokens (see `effective_prompt`).

Speed: the model is evaluated on grids, one vectorised step_time call per table:
- b (decode tokens): every integer to 16, then steps of 12% to max_num_seqs;
- P (prefill tokens): 0, powers of two to 32, then steps of 12% to max_num_batched_tokens;
- ctx and L: powers of two to 128, then steps of 25%;
- plus `anchors` (the prompt length of a fixed-length workload) on the P and L grids, so a lone
  prompt's forward is priced exactly as sizer estimate prices it.
A (ctx, L) table over the (b, P) grid is built the first time a step needs it and kept; a step
costs a multilinear interpolation (b, P, ctx, L). Decode cost is affine in ctx and GEMM cost
piecewise-affine in the token rows (sizer/cost/ops.py), so the interpolation error is small;
tests/test_sim_costs.py bounds it against direct step_time calls.
"""

from bisect import bisect_right

import numpy as np

from sizer.cost.step import step_time
from sizer.model.split import Split


def _grid(hi: int, exact_to: int, ratio: float, start=()) -> list[int]:
    pts = sorted(set(list(start) + list(range(0, min(exact_to, hi) + 1))))
    x = pts[-1]
    while x < hi:
        x = min(hi, max(x + 1, int(round(x * ratio))))
        pts.append(x)
    return pts


def _log_grid(hi: int = 1 << 23) -> list[int]:
    return _grid(hi, 0, 1.25, start=(1, 2, 4, 8, 16, 32, 64, 128))[1:]


LOG_GRID = _log_grid()


def _locate(grid, x: float):
    """(i, w): x lies at grid[i] + w (grid[i+1] - grid[i]), clamped to the grid."""
    i = bisect_right(grid, x) - 1
    i = min(max(i, 0), len(grid) - 2)
    lo, hi = grid[i], grid[i + 1]
    w = (x - lo) / (hi - lo)
    return i, (0.0 if w < 0 else 1.0 if w > 1 else w)


def effective_prompt(chunks) -> float:
    """L for a list of (n new tokens, k tokens already computed): sum n (2k + n) / sum n."""
    num = den = 0
    for n, k in chunks:
        num += n * (2 * k + n)
        den += n
    return num / den if den else 1.0


class StepCosts:
    """Interpolated step times of one replica (module docstring). `group` > 1 runs that many
    engine replicas in lockstep (DP attention with EP spanning replicas): b and P are then
    totals over the group, split evenly."""

    def __init__(self, model, device, split: Split, *, max_num_seqs: int, max_num_batched_tokens: int,
                 weight_dtype=None, kv_dtype="auto", topology=None, profile=None, cuda_graphs=None,
                 group: int = 1, anchors=(), engine=None):
        self.model, self.device, self.split = model, device, split
        # the engine picks the collective kernels (custom / MNNVL all-reduce), as in estimate
        self.kw = dict(weight_dtype=weight_dtype, kv_dtype=kv_dtype, topology=topology, profile=profile,
                       engine=engine)
        self.cuda_graphs = cuda_graphs
        self.group = group
        hi = max(1, max_num_batched_tokens)
        self.b_grid = _grid(max(1, max_num_seqs), 16, 1.12)
        # anchors (a fixed prompt length) are grid points: a lone prompt's forward is exact
        self.p_grid = sorted(set(_grid(hi, 0, 1.12, start=(0, 1, 2, 4, 8, 16, 32)))
                             | {int(a) for a in anchors if 0 < a <= hi})
        self.l_grid = sorted(set(LOG_GRID) | {int(a) for a in anchors if a > 0})
        self._b = np.asarray(self.b_grid[1:], dtype=float)
        self._p = np.asarray(self.p_grid[1:], dtype=float)
        self._decode = {}  # ctx index -> clock per b_grid entry (b = 0 -> 0)
        self._prefill = {}  # L index -> clock per p_grid entry (P = 0 -> 0)
        self._mixed = {}  # (ctx index, L index) -> [b, P] table
        self.tables_built = 0

    # -- tables -----------------------------------------------------------------------------
    def _clock(self, result, n: int) -> np.ndarray:
        stages = [np.broadcast_to(np.asarray(t, dtype=float), (n,)) for t in result.stage_times_s]
        return np.max(np.stack(stages), axis=0)

    def _decode_col(self, ci: int) -> np.ndarray:
        col = self._decode.get(ci)
        if col is None:
            r = step_time(self.model, self.device, self.split, phase="decode", batch=self._b,
                          context_len=LOG_GRID[ci], cuda_graphs=self.cuda_graphs, **self.kw)
            col = np.concatenate([[0.0], self._clock(r, len(self._b))])
            self._decode[ci] = col
            self.tables_built += 1
        return col

    def _prefill_row(self, li: int) -> np.ndarray:
        row = self._prefill.get(li)
        if row is None:
            L = self.l_grid[li]
            r = step_time(self.model, self.device, self.split, phase="prefill", batch=self._p / L, seq_len=L,
                          cuda_graphs=False if self.cuda_graphs is None else self.cuda_graphs, **self.kw)
            row = np.concatenate([[0.0], self._clock(r, len(self._p))])
            self._prefill[li] = row
            self.tables_built += 1
        return row

    def _mixed_table(self, ci: int, li: int) -> np.ndarray:
        key = (ci, li)
        tab = self._mixed.get(key)
        if tab is None:
            nb, npf = len(self._b), len(self._p)
            b = np.repeat(self._b, npf)
            p = np.tile(self._p, nb)
            r = step_time(self.model, self.device, self.split, phase="decode", batch=b,
                          context_len=LOG_GRID[ci], prefill_tokens=p, seq_len=self.l_grid[li],
                          cuda_graphs=self.cuda_graphs, **self.kw)
            tab = np.empty((nb + 1, npf + 1))
            tab[1:, 1:] = self._clock(r, nb * npf).reshape(nb, npf)
            tab[0, :] = self._prefill_row(li)
            tab[:, 0] = self._decode_col(ci)
            self._mixed[key] = tab
            self.tables_built += 1
        return tab

    # -- lookups ----------------------------------------------------------------------------
    def time(self, b: float, ctx: float, p: float = 0.0, prompt: float = 1.0) -> float:
        """Clock of one forward: b decode tokens at mean KV length ctx, p prefill tokens of
        effective prompt length `prompt` (totals over the lockstep group)."""
        g = self.group
        if g > 1:
            b, p = b / g, p / g
        if p <= 0:
            if b <= 0:
                return 0.0
            bi, bw = _locate(self.b_grid, b)
            ci, cw = _locate(LOG_GRID, max(ctx, 1.0))
            lo, hi = self._decode_col(ci), self._decode_col(ci + 1)
            return ((1 - cw) * ((1 - bw) * lo[bi] + bw * lo[bi + 1])
                    + cw * ((1 - bw) * hi[bi] + bw * hi[bi + 1]))
        pi, pw = _locate(self.p_grid, p)
        li, lw = _locate(self.l_grid, max(prompt, 1.0))
        if b <= 0:
            lo, hi = self._prefill_row(li), self._prefill_row(li + 1)
            return ((1 - lw) * ((1 - pw) * lo[pi] + pw * lo[pi + 1])
                    + lw * ((1 - pw) * hi[pi] + pw * hi[pi + 1]))
        bi, bw = _locate(self.b_grid, b)
        ci, cw = _locate(LOG_GRID, max(ctx, 1.0))
        total = 0.0
        for c, wc in ((ci, 1 - cw), (ci + 1, cw)):
            if wc == 0.0:
                continue
            for li_, wl in ((li, 1 - lw), (li + 1, lw)):
                if wl == 0.0:
                    continue
                t = self._mixed_table(c, li_)
                v = ((1 - bw) * ((1 - pw) * t[bi, pi] + pw * t[bi, pi + 1])
                     + bw * ((1 - pw) * t[bi + 1, pi] + pw * t[bi + 1, pi + 1]))
                total += wc * wl * v
        return total

    def decode_times(self, b: float, ctx: np.ndarray) -> np.ndarray:
        """Clocks of successive decode-only forwards of b sequences at mean KV lengths `ctx`
        (a vector): the fast path for stretches of pure decode."""
        g = self.group
        bb = b / g if g > 1 else b
        bi, bw = _locate(self.b_grid, bb)
        lo_i, _ = _locate(LOG_GRID, max(float(ctx[0]), 1.0))
        hi_i, _ = _locate(LOG_GRID, max(float(ctx[-1]), 1.0))
        idx = range(lo_i, hi_i + 2)
        xs = np.asarray([LOG_GRID[i] for i in idx], dtype=float)
        ys = np.asarray([(1 - bw) * self._decode_col(i)[bi] + bw * self._decode_col(i)[bi + 1] for i in idx])
        return np.interp(np.maximum(ctx, 1.0), xs, ys)
