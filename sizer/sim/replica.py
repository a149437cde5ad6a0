"""Request state and one engine replica's bookkeeping: queues, KV blocks, forwards.

Requests follow vLLM v1's accounting (vllm/v1/core/sched/scheduler.py at commit
00024d314514900f361ad072af6931e403b7f589, `schedule` and `_update_after_schedule`): a request
knows `isl + out` tokens (prompt plus generated) and has computed the KV of `comp` of them. A
forward computes `new` tokens of it; when all known tokens are computed the forward samples the
next output token. A decode step is new = 1; a prefill chunk is new > 1; a request resumed
after preemption recomputes its prompt and the tokens it already generated (under vLLM, those
past the part of its KV still in the prefix cache, `cache_hit`), then samples the next one. KV is held in blocks of `block_tokens` per the engine's KV cache groups
(sizer/sim/kv.py: ceil(comp / block) per request with one group; vLLM's hybrid manager also
frees what sliding-window and chunked groups no longer attend to), freed when the request
finishes or is preempted. A waiting request has no KV (comp = 0).

For speed the running requests of a replica live in its own parallel arrays (admission order),
so a forward of 256 sequences is a handful of vectorised updates; `State` holds what every
request keeps beyond its stay in a replica (lengths, timestamps, counters).
"""

from collections import deque
from dataclasses import dataclass

import numpy as np

from .kv import KVLayout

PENDING, WAITING, RUNNING, DONE = 0, 1, 2, 3
_I = np.int64


class State:
    """Every request of one simulation (arrays indexed by request id = arrival order)."""

    def __init__(self, workload, first_measured: int = 0):
        n = len(workload)
        self.n = n
        self.first_measured = first_measured
        self.arrival = np.asarray(workload.arrival_s, dtype=float)
        self.isl = np.asarray(workload.isl, dtype=_I)
        self.osl = np.asarray(workload.osl, dtype=_I)
        self.out = np.zeros(n, dtype=_I)
        self.status = np.zeros(n, dtype=np.int8)
        self.preemptions = np.zeros(n, dtype=_I)
        self.completions = np.zeros(n, dtype=_I)  # must end at exactly 1 each
        self.replica = np.full(n, -1, dtype=_I)
        # vLLM prefix caching of a preempted request: tokens it had computed, blocks it freed, and
        # the replica's allocation count at which the last of them is evicted
        self.cached_tokens = np.zeros(n, dtype=_I)
        self.cached_blocks = np.zeros(n, dtype=_I)
        self.evict_at = np.zeros(n, dtype=_I)
        self.pos = np.zeros(n, dtype=_I)  # index in its replica's running arrays
        nan = np.full(n, np.nan)
        self.release_t, self.start_t, self.first_t = nan.copy(), nan.copy(), nan.copy()
        self.last_t, self.finish_t = nan.copy(), nan.copy()
        self.itl: list = []  # (gaps, how many measured requests each gap stands for)

    def add_gaps(self, ids, gaps) -> None:
        if self.first_measured:
            gaps = gaps[ids >= self.first_measured]
        if len(gaps) > 1 and gaps.min() == gaps.max():  # one forward's gap, shared
            self.itl.append((gaps[:1], len(gaps)))
        elif len(gaps):
            self.itl.append((gaps, 1))


@dataclass
class Batch:
    """One scheduled forward: request ids, the tokens each computes, and the shape the step
    model needs (decode tokens, their summed KV length, prefill tokens, effective prompt)."""

    ids: np.ndarray
    new: np.ndarray
    decode: int
    ctx_sum: float
    prefill: int
    prompt: float
    pos: object = None  # positions in the replica's running arrays when scheduled (PP = 1)

    @property
    def size(self) -> int:
        return len(self.ids)


def make_batch(ids, new, comp, need) -> Batch:
    """`comp`, `need` (tokens the request still has to compute) of the same requests."""
    dec = (new == 1) & (need == 1)
    b = int(np.count_nonzero(dec))
    if b == len(new):
        return Batch(ids, new, b, float(comp.sum()) + b, 0, 1.0)
    if b == 0:
        p = int(new.sum())
        return Batch(ids, new, 0, 0.0, p, float((new * (2 * comp + new)).sum()) / p)
    ctx_sum = float(comp[dec].sum()) + b
    pn, pk = new[~dec], comp[~dec]
    p = int(pn.sum())
    return Batch(ids, new, b, ctx_sum, p, float((pn * (2 * pk + pn)).sum()) / p)


class Replica:
    """One engine replica (a TP x PP group, or several in lockstep): waiting queue, running
    requests (parallel arrays in admission order), KV block pool, forwards in flight."""

    def __init__(self, idx: int, *, max_num_seqs: int, max_num_batched_tokens: int, block_tokens: int,
                 kv_tokens: int, pp: int, costs, policy_cls, layout: KVLayout | None = None,
                 prefix_caching: bool = False, reserve_full_isl: bool = False):
        self.idx = idx
        self.max_seqs = max_num_seqs
        self.max_tokens = max_num_batched_tokens
        self.block = max(1, block_tokens)
        self.kv = layout or KVLayout(self.block, kv_tokens // self.block)
        self.total_blocks = self.kv.total_blocks
        self.free = self.total_blocks
        self.prefix_caching = prefix_caching  # preempted requests' blocks stay cached until evicted
        self.reserve_full_isl = reserve_full_isl  # vLLM's full-sequence admission gate (sizer/sim/kv.py)
        self.allocated = 0  # blocks taken from the free queue so far (prefix-cache eviction clock)
        self.reserved = 0  # blocks promised to running requests (whole-sequence admission)
        self.pp = pp
        self.costs = costs
        self.waiting: deque = deque()
        self.m = np.zeros((6, 0), dtype=_I)  # rows: ids, comp, known, out, osl, blocks
        self._views()
        self.last = np.zeros(0)
        self.fly = np.zeros(0, dtype=bool)
        self.stage_free = [0.0] * pp
        self.inflight: deque = deque()  # (exit time, Batch or Plan)
        self.wake_at = None
        self.samples: list = []  # (end time, forwards, sequences, KV blocks used, waiting, running)
        self.policy = policy_cls(self)

    @property
    def running(self) -> int:
        return len(self.ids)

    @property
    def load(self) -> int:
        return len(self.waiting) + len(self.ids)

    def blocks_for(self, tokens):
        """Blocks a request with nothing computed takes for its first `tokens`."""
        return self.kv.fresh(tokens)

    # -- membership -------------------------------------------------------------------------
    def _views(self) -> None:
        self.ids, self.comp, self.known, self.out, self.osl, self.blocks = self.m

    def cache_hit(self, st: State, r: int) -> int:
        """Tokens of waiting request r whose KV is still in the prefix cache: vLLM frees a
        preempted request's blocks to the tail of its LRU free queue, group by group, each
        group's last block first (vllm/v1/core/single_type_kv_cache_manager.py `free` at commit
        129ab7c60cbb: "tail blocks are freed first"; block_pool.py FreeKVCacheBlockQueue), and
        takes every new block from its head: once the `allocated` clock (every group's new
        blocks) passes evict_at - k, each allocation evicts the next of its k blocks in that
        order, all gone at evict_at; the hit is what every KV group can still serve (KVLayout.hit: windowed groups need the
        blocks just before the resume point, the ones evicted first). A hit leaves at least
        one token to compute (`get_computed_blocks`)."""
        k = int(st.cached_blocks[r])
        if not k:
            return 0
        evicted = min(max(self.allocated - (int(st.evict_at[r]) - k), 0), k)
        return self.kv.hit(int(st.cached_tokens[r]), k, evicted, int(st.isl[r] + st.out[r]) - 1)

    def add(self, st: State, rids: list, now: float, comp=None) -> None:
        """Move waiting requests `rids` (already popped) to the end of the running arrays,
        with `comp` tokens already computed (prefix-cache hits; default none)."""
        r = np.asarray(rids, dtype=_I)
        k, n = len(r), len(self.ids)
        st.status[r] = RUNNING
        start = st.start_t[r]
        st.start_t[r] = np.where(np.isnan(start), now, start)
        st.pos[r] = np.arange(n, n + k)
        add = np.zeros((6, k), dtype=_I)
        out = st.out[r]
        add[0], add[2], add[3], add[4] = r, st.isl[r] + out, out, st.osl[r]
        if comp is not None:
            add[1] = comp
        st.cached_blocks[r] = 0
        self.m = np.concatenate([self.m, add], axis=1)
        self._views()
        self.last = np.concatenate([self.last, st.last_t[r]])
        self.fly = np.concatenate([self.fly, np.zeros(k, dtype=bool)])

    def _keep(self, st: State, keep: np.ndarray) -> None:
        self.m = self.m[:, keep]
        self._views()
        self.last, self.fly = self.last[keep], self.fly[keep]
        st.pos[self.ids] = np.arange(len(self.ids))

    def allocate(self, pos, new) -> None:
        """Blocks for `new` more tokens of the running requests at `pos` (a slice or indices).
        Prefix-cache hits (the `comp` of a request just added) are taken back, not new blocks;
        the eviction clock counts every group's new blocks, whatever its window frees
        (KVLayout.gross)."""
        comp = self.comp[pos]
        need = self.kv.held(comp, comp + new) - self.blocks[pos]
        if not self.kv.hybrid:  # else windowed groups free what they no longer attend to
            np.maximum(need, 0, out=need)
        self.blocks[pos] += need
        self.free -= int(need.sum())
        self.allocated += int(self.kv.gross(comp, comp + new).sum())

    def preempt(self, st: State, pos: np.ndarray, front: bool) -> None:
        """Free the KV of the running requests at `pos` and send them back to waiting, to
        recompute on resume: to the front in their order (vLLM prepends each preempted
        request) or to the back (SGLang's retraction)."""
        ids = self.ids[pos]
        if self.prefix_caching:  # freed last first (vLLM pops the last running request first)
            held = self.blocks[pos]
            before = self.free + np.concatenate([np.cumsum(held[::-1])[::-1][1:], [0]])
            st.evict_at[ids] = self.allocated + before + held
            st.cached_blocks[ids] = held
            st.cached_tokens[ids] = self.comp[pos]
        self.free += int(self.blocks[pos].sum())
        if self.policy.reserves:
            self.reserved -= int(self.blocks_for(self.known[pos] - self.out[pos] + self.osl[pos]).sum())
        st.out[ids] = self.out[pos]
        st.last_t[ids] = self.last[pos]
        st.preemptions[ids] += 1
        st.status[ids] = WAITING
        keep = np.ones(len(self.ids), dtype=bool)
        keep[pos] = False
        self._keep(st, keep)
        if front:
            self.waiting.extendleft(ids[::-1].tolist())
        else:
            self.waiting.extend(ids.tolist())

    def finish(self, st: State, pos: np.ndarray, t: float) -> int:
        ids = self.ids[pos]
        st.finish_t[ids] = t
        st.status[ids] = DONE
        st.completions[ids] += 1
        st.out[ids] = self.out[pos]
        self.free += int(self.blocks[pos].sum())
        if self.policy.reserves:
            self.reserved -= int(self.blocks_for(self.known[pos] - self.out[pos] + self.osl[pos]).sum())
        keep = np.ones(len(self.ids), dtype=bool)
        keep[pos] = False
        self._keep(st, keep)
        return len(ids)

    # -- forwards ---------------------------------------------------------------------------
    def complete(self, st: State, batch: Batch, t: float) -> int:
        """Apply a finished forward at time t: KV computed, tokens sampled, requests done.
        Returns how many requests finished."""
        pos = batch.pos if self.pp == 1 else st.pos[batch.ids]  # PP = 1: nothing moved since
        if isinstance(pos, slice):
            self.comp += batch.new
            pe = np.flatnonzero(self.comp == self.known)
        else:
            self.comp[pos] += batch.new
            if self.pp > 1:
                self.fly[pos] = False
            pe = pos[self.comp[pos] == self.known[pos]]
        done = 0
        if len(pe):
            self.known[pe] += 1
            o = self.out[pe] + 1
            self.out[pe] = o
            first = o == 1
            if first.any():
                st.first_t[self.ids[pe[first]]] = t
                later = pe[~first]
            else:
                later = pe
            if len(later):
                st.add_gaps(self.ids[later], t - self.last[later])
            self.last[pe] = t
            fin = pe[o >= self.osl[pe]]
            if len(fin):
                done = self.finish(st, fin, t)
        self.record(t, 1, batch.size)
        return done

    def record(self, t: float, forwards: int, seqs: int) -> None:
        self.samples.append((t, forwards, seqs, self.total_blocks - self.free, len(self.waiting), len(self.ids)))
