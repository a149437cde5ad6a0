"""Per-engine iteration schedulers: which requests a forward carries, and what happens when KV
runs out. Each policy fills one forward under the replica's caps (max_num_seqs sequences,
max_num_batched_tokens tokens) and says how many pure-decode forwards may be fused (the loop's
fast path: nothing can be admitted or preempted before a request finishes).

- vLLM v1 (vllm/v1/core/sched/scheduler.py, commit 00024d314514900f361ad072af6931e403b7f589,
  `Scheduler.schedule`): RUNNING requests first, in admission order, each taking
  min(remaining tokens, token budget) (chunked prefill); KV blocks are allocated per step and,
  when allocation fails, the last running request is preempted (freed, prepended to WAITING,
  recomputed later past what of its KV the prefix cache still holds, Replica.cache_hit) until
  it fits; then, only if nothing was preempted, WAITING requests are admitted FCFS while the
  budget, max_num_seqs and free blocks allow (a resumed request needs its cached blocks back
  as well as its chunk's). Blocks are counted per KV group (sizer/sim/kv.py). Prefill and
  decode share a forward. Admission also passes vLLM's full-sequence gate by default
  (`scheduler_reserve_full_isl`, PR #37307, merged 2026-03; off with
  --no-scheduler-reserve-full-isl): the blocks of all the request's known tokens, prompt plus
  outputs so far, must be free, not only its first chunk's (KVLayout.admission; the waiting
  loop's `allocate_slots(..., full_sequence_must_fit=True)` returning None ends admission, as
  quoted from vllm/v1/core/sched/scheduler.py at commit 6cf7b26bd4bf).
- SGLang (python/sglang/srt/managers/scheduler.py, schedule_policy.py `PrefillAdder`,
  schedule_batch.py `retract_decode`; constants from srt/environ.py): a forward is either a
  prefill batch or a decode batch, prefill first when a waiting request can be added. A
  request is added when its prompt plus min(max_new_tokens, 4096) fits the free KV minus each
  running request's remaining output x `new_token_ratio` (0.7 at start, decaying by
  (0.7 - 0.098) / 600 per decode step to 0.098); prompts are chunked at the token budget
  (chunked_prefill_size). When a decode step has no free slot for every running request,
  requests are retracted (fewest output tokens first, longest prompt on ties) until 20 steps
  of decode fit, and the ratio resets to (decoded + 20 x running) / max_new_tokens, capped at 1.
  Retracted requests rejoin the back of the queue and recompute.
- TensorRT-LLM (docs: performance-tuning-guide/useful-runtime-flags.html and torch/scheduler.html,
  CapacitySchedulerPolicy.GUARANTEED_NO_EVICT, the default): a request is admitted, FCFS, only
  when blocks for its whole sequence (prompt + max new tokens) fit beside the reservations of
  the running ones, so nothing is ever evicted; the micro-batch scheduler takes generation
  requests (1 token) and whole context requests (no context chunking by default) in order up
  to max_num_tokens.
- generic (`--engine none`): vLLM's mixed chunked-prefill forward with TensorRT-LLM's
  whole-sequence admission: plain continuous batching that never preempts, whose steady state
  is sizer estimate's continuous mode.
"""

import numpy as np

from .replica import Batch, State, make_batch

SGLANG_INIT_RATIO = 0.7  # SGLANG_INIT_NEW_TOKEN_RATIO x schedule_conservativeness (1.0)
SGLANG_MIN_RATIO = 0.7 * 0.14  # x SGLANG_MIN_NEW_TOKEN_RATIO_FACTOR
SGLANG_DECAY = (SGLANG_INIT_RATIO - SGLANG_MIN_RATIO) / 600  # SGLANG_NEW_TOKEN_RATIO_DECAY_STEPS
SGLANG_RETRACT_STEPS = 20  # SGLANG_RETRACT_DECODE_STEPS
SGLANG_CLIP = 4096  # SGLANG_CLIP_MAX_NEW_TOKENS_ESTIMATION
_I = np.int64


def _budgeted(need: np.ndarray, budget: int) -> np.ndarray:
    """Tokens granted in order under a budget: whole requests while they fit, then the rest of
    the budget to the next one (a chunk), nothing after."""
    cum = np.cumsum(need)
    if not len(need) or cum[-1] <= budget:
        return need
    k = int(np.searchsorted(cum, budget, side="right"))
    new = np.zeros_like(need)
    new[:k] = need[:k]
    if k < len(need):
        new[k] = budget - (cum[k - 1] if k else 0)
    return new


def decode_block_steps(rep, k_max: int) -> int:
    """How many successive one-token steps of every running request fit the free blocks (with
    windowed KV groups, by sizer/sim/kv.py's decode_bound: blocks they free are not counted on)."""
    c, held, free = rep.comp, rep.blocks, rep.free

    def need(k):
        return int(np.maximum(rep.kv.decode_bound(c + k) - held, 0).sum())

    if need(k_max) <= free:
        return k_max
    lo, hi = 0, k_max  # need(lo) fits, need(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if need(mid) <= free else (lo, mid)
    return lo


class _Forward:
    """Builds one forward: running requests (at positions, or all of them in order), then the
    admitted ones."""

    def __init__(self):
        self.pos, self.new, self.comp, self.need = [], [], [], []
        self.all_running = False  # the running part is every running request, in order
        self.rids, self.chunks, self.fresh_need, self.hits = [], [], [], []

    def running_part(self, pos, new, comp, need) -> None:
        self.pos.append(pos)
        self.new.append(new)
        self.comp.append(comp)
        self.need.append(need)

    def batch(self, rep, st: State, now: float) -> Batch | None:
        n0 = rep.running
        if self.rids:
            hits = np.asarray(self.hits if self.hits else [0] * len(self.rids), dtype=_I)
            rep.add(st, self.rids, now, hits)
            chunks = np.asarray(self.chunks, dtype=_I)
            rep.allocate(slice(n0, None), chunks)
            self.running_part(np.arange(n0, rep.running), chunks, hits,
                              np.asarray(self.fresh_need, dtype=_I))
        if not self.pos:
            return None
        one = len(self.pos) == 1
        cat = (lambda xs: xs[0]) if one else np.concatenate
        new = cat(self.new)
        if not len(new):
            return None
        if self.all_running:
            pos, ids = slice(None), rep.ids
        else:
            pos = cat(self.pos)
            ids = rep.ids[pos]
        if rep.pp > 1:
            rep.fly[pos] = True
        batch = make_batch(ids, new, cat(self.comp), cat(self.need))
        batch.pos = pos
        return batch


class VLLM:
    reserves = False

    def __init__(self, rep):
        self.rep = rep

    def schedule(self, st: State, now: float) -> Batch | None:
        rep = self.rep
        fw = _Forward()
        budget = rep.max_tokens
        preempted = False
        n = rep.running
        if n:
            if rep.pp > 1:
                cand = np.flatnonzero(~rep.fly)
                comp, held = rep.comp[cand], rep.blocks[cand]
            else:
                cand, comp, held = None, rep.comp, rep.blocks
            need = rep.known[cand] - comp if cand is not None else rep.known - comp
            new = _budgeted(need, budget)
            blk = rep.kv.held(comp, comp + new) - held
            if not rep.kv.hybrid:
                np.maximum(blk, 0, out=blk)
            prefix = np.concatenate([[0], np.cumsum(blk)])
            if rep.kv.hybrid:  # a request frees its skipped blocks only when its turn comes
                np.maximum.accumulate(prefix, out=prefix)
            if int(prefix[-1]) > rep.free:
                # keep the longest prefix whose blocks fit once the tail behind it is freed
                cand = np.arange(n) if cand is None else cand
                held_tail = np.concatenate([np.cumsum(held[::-1])[::-1], [0]])
                m = int(np.flatnonzero(prefix <= rep.free + held_tail)[-1])
                rep.preempt(st, cand[m:], front=True)  # positions before cand[m] do not move
                cand, comp, need, new = cand[:m], comp[:m], need[:m], new[:m]
                preempted = True
            nz = new > 0
            if cand is None and nz.all():
                fw.all_running = True
                rep.allocate(slice(None), new)
                fw.running_part(None, new, comp, need)
            else:
                cand = np.arange(n) if cand is None else cand
                cand, comp, need, new = cand[nz], comp[nz], need[nz], new[nz]
                if len(cand):
                    rep.allocate(cand, new)
                    fw.running_part(cand, new, comp, need)
            budget -= int(new.sum())
        if not preempted:
            self._admit(st, fw, budget)
        return fw.batch(rep, st, now)

    def _head(self, st: State, r: int, budget: int) -> tuple:
        """(cached tokens, chunk, blocks, blocks free to admit) for waiting request r under
        `budget`: a request that was preempted resumes after the part of its KV still in the
        prefix cache (Replica.cache_hit), and the blocks it takes are those of the hit (taken
        back from the free queue) and of the chunk (vLLM `allocate_slots` counts both against
        the free blocks); with the full-sequence gate it is admitted only when the blocks of
        all its known tokens are free (KVLayout.admission), else when its chunk's are."""
        rep = self.rep
        full = int(st.isl[r] + st.out[r])
        hit = rep.cache_hit(st, r) if rep.prefix_caching else 0
        chunk = min(full - hit, budget)
        blocks = int(rep.kv.held(hit, hit + chunk))
        gate = max(blocks, int(rep.kv.admission(hit, full))) if rep.reserve_full_isl else blocks
        return hit, chunk, blocks, gate

    def _admit(self, st: State, fw: _Forward, budget: int) -> None:
        rep = self.rep
        free, n_run = rep.free, rep.running
        while rep.waiting and budget > 0 and n_run < rep.max_seqs:
            r = rep.waiting[0]
            hit, chunk, blocks, gate = self._head(st, r, budget)
            if gate > free or not self.admissible(st, r):
                break
            rep.waiting.popleft()
            fw.rids.append(r)
            fw.chunks.append(chunk)
            fw.fresh_need.append(int(st.isl[r] + st.out[r]) - hit)
            fw.hits.append(hit)
            free -= blocks
            budget -= chunk
            n_run += 1

    def admissible(self, st: State, r: int) -> bool:
        return True

    def can_admit(self, st: State) -> bool:
        """Could the head of the queue join the next forward? (Conservative: True when unsure;
        the loop cuts a fused stretch of decode steps only then.)"""
        rep = self.rep
        room = rep.max_tokens - rep.running
        if not rep.waiting or rep.running >= rep.max_seqs or room <= 0:
            return False
        r = rep.waiting[0]
        free = rep.free
        if rep.kv.hybrid:  # the running requests' next allocation frees what fell out of their windows
            free -= int(np.minimum(rep.kv.held(rep.comp, rep.comp + 1) - rep.blocks, 0).sum())
        return self._head(st, r, room)[3] <= free and self._could_admit(st, r)

    def decode_steps(self, st: State, k_max: int) -> int:
        """Pure-decode forwards that may be fused now (0: take one step at a time)."""
        if self.can_admit(st):
            return 0
        return decode_block_steps(self.rep, k_max)

    def _could_admit(self, st: State, r: int) -> bool:
        return True

    def on_decode_steps(self, k: int) -> None:
        pass


class Generic(VLLM):
    """Mixed chunked-prefill forwards (as vLLM) with whole-sequence admission, no eviction."""

    reserves = True

    def _full(self, st: State, r: int) -> int:
        return int(self.rep.blocks_for(int(st.isl[r] + st.osl[r])))

    def admissible(self, st: State, r: int) -> bool:
        rep = self.rep
        full = self._full(st, r)
        if rep.reserved + full > rep.total_blocks:
            return False
        rep.reserved += full  # the caller admits it
        return True

    def _could_admit(self, st: State, r: int) -> bool:
        return self.rep.reserved + self._full(st, r) <= self.rep.total_blocks

    def can_admit(self, st: State) -> bool:
        rep = self.rep
        return bool(rep.waiting) and rep.running < rep.max_seqs and self._could_admit(st, rep.waiting[0])

    def decode_steps(self, st: State, k_max: int) -> int:
        return 0 if self.can_admit(st) else k_max


class TRTLLM(Generic):
    """GUARANTEED_NO_EVICT admission; whole prompts only (no chunked context)."""

    def schedule(self, st: State, now: float) -> Batch | None:
        rep = self.rep
        fw = _Forward()
        budget = rep.max_tokens
        if rep.running:
            cand = np.flatnonzero(~rep.fly) if rep.pp > 1 else np.arange(rep.running)
            comp = rep.comp[cand]
            need = rep.known[cand] - comp
            k = int(np.searchsorted(np.cumsum(need), budget, side="right"))  # stop at the first misfit
            if k:
                cand, comp, need = cand[:k], comp[:k], need[:k]
                rep.allocate(cand, need)
                budget -= int(need.sum())
                fw.pos.append(cand)
                fw.new.append(need)
                fw.comp.append(comp)
                fw.need.append(need)
        n_run = rep.running
        while rep.waiting and n_run < rep.max_seqs:
            r = rep.waiting[0]
            full = int(st.isl[r] + st.out[r])
            if full > budget or not self.admissible(st, r):
                break
            rep.waiting.popleft()
            fw.rids.append(r)
            fw.chunks.append(full)
            fw.fresh_need.append(full)
            budget -= full
            n_run += 1
        return fw.batch(rep, st, now)


class SGLang:
    reserves = False

    def __init__(self, rep):
        self.rep = rep
        self.ratio = SGLANG_INIT_RATIO

    def schedule(self, st: State, now: float) -> Batch | None:
        rep = self.rep
        idle = ~rep.fly if rep.pp > 1 else np.ones(rep.running, dtype=bool)
        need = rep.known - rep.comp
        partial = np.flatnonzero(idle & (need > 1))
        if rep.waiting or len(partial):
            batch = self._prefill(st, now, partial, idle & (need == 1))
            if batch is not None:
                return batch
        dec = np.flatnonzero(idle & (need == 1))
        if not len(dec):
            return None
        if int(np.maximum(rep.blocks_for(rep.comp[dec] + 1) - rep.blocks[dec], 0).sum()) > rep.free:
            self._retract(st, dec)
            dec = np.flatnonzero((~rep.fly if rep.pp > 1 else True) & (rep.known - rep.comp == 1))
        else:
            self.on_decode_steps(1)
        ones = np.ones(len(dec), dtype=_I)
        rep.allocate(dec, ones)
        if rep.pp > 1:
            rep.fly[dec] = True
        batch = make_batch(rep.ids[dec], ones, rep.comp[dec], ones)
        batch.pos = dec
        return batch

    def _prefill(self, st: State, now: float, partial, decoding) -> Batch | None:
        rep = self.rep
        fw = _Forward()
        chunk_left = rep.max_tokens
        left = np.minimum(np.maximum(rep.osl[decoding] - rep.out[decoding], 0), SGLANG_CLIP)
        rem_total = rep.free * rep.block - float(left.sum()) * self.ratio
        if len(partial):  # the chunked request continues first (PrefillAdder.add_chunked_req)
            comp = rep.comp[partial]
            need = rep.known[partial] - comp
            new = _budgeted(need, chunk_left)
            keep = new > 0
            partial, comp, need, new = partial[keep], comp[keep], need[keep], new[keep]
            rep.allocate(partial, new)
            fw.pos.append(partial)
            fw.new.append(new)
            fw.comp.append(comp)
            fw.need.append(need)
            chunk_left -= int(new.sum())
            rem_total -= float(new.sum())
        n_run = rep.running
        while rep.waiting and chunk_left > 0 and n_run < rep.max_seqs:
            r = rep.waiting[0]
            extend = int(st.isl[r] + st.out[r])
            total = extend + min(max(int(st.osl[r] - st.out[r]), 0), SGLANG_CLIP)
            if total >= rem_total:
                break
            n = min(extend, chunk_left)
            rep.waiting.popleft()
            fw.rids.append(r)
            fw.chunks.append(n)
            fw.fresh_need.append(extend)
            chunk_left -= n
            rem_total -= total
            n_run += 1
            if n < extend:
                break  # it becomes the chunked request
        return fw.batch(rep, st, now)

    def _retract(self, st: State, dec: np.ndarray) -> None:
        rep = self.rep
        order = dec[np.lexsort((-(rep.known[dec] - rep.out[dec]), rep.out[dec]))[::-1]]  # (out, -isl) desc
        keep = list(order)
        victims, freed = [], 0
        while len(keep) > 1:
            v = keep.pop()
            victims.append(v)
            freed += int(rep.blocks[v])
            if (rep.free + freed) * rep.block >= len(keep) * SGLANG_RETRACT_STEPS:
                break
        kept = np.asarray(keep, dtype=_I)
        decoded = float(rep.out[kept].sum())
        self.ratio = min(1.0, (decoded + SGLANG_RETRACT_STEPS * len(kept)) / max(float(rep.osl[kept].sum()), 1.0))
        rep.preempt(st, np.sort(np.asarray(victims, dtype=_I)), front=False)

    def can_admit(self, st: State) -> bool:
        return bool(self.rep.waiting) and self.rep.running < self.rep.max_seqs

    def decode_steps(self, st: State, k_max: int) -> int:
        return 0 if self.can_admit(st) else decode_block_steps(self.rep, k_max)

    def on_decode_steps(self, k: int) -> None:
        self.ratio = max(self.ratio - k * SGLANG_DECAY, SGLANG_MIN_RATIO)


POLICIES = {"vllm": VLLM, "sglang": SGLang, "trtllm": TRTLLM, None: Generic}
