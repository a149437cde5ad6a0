"""KV blocks one request holds in a replica's pool, per the engine's KV cache groups.

One pool of `total_blocks` blocks of `block` tokens. Every engine but vLLM (and vLLM on a model
whose layers all attend alike) is one group: a request that has `t` tokens allocated holds
ceil(t / block) blocks.

vLLM V1's hybrid KV cache manager (sizer/cost/kv_cache.py `vllm_kv_groups`: full-attention,
sliding-window and chunked-local groups drawing blocks from one shared pool) allocates in every
group, per request, the blocks of the tokens it computes and, before each allocation, frees the
blocks its sliding-window and chunked groups no longer attend to
(vllm-project/vllm commit 129ab7c60cbb, vllm/v1/core/single_type_kv_cache_manager.py,
`remove_skipped_blocks`, called by KVCacheManager.allocate_slots before it allocates):
  skipped tokens after `c` computed ones: sliding window W, max(0, c - W + 1)
  (SlidingWindowManager.get_num_skipped_tokens); chunked, chunk C, (c // C) x C
  (ChunkedLocalAttentionManager); full attention, none;
  blocks held in a group after scheduling n more: ceil((c + n) / block) - skipped // block.
So a prefill chunk of n tokens takes ceil(n / block) blocks in every group at once (the whole
chunk's KV is written before attention reads its window), and at the next step the windowed
groups fall back to about W / block + 1 blocks: the transient that vLLM's own worst case
(`max_memory_usage_bytes`, cdiv(W - 1 + max_num_batched_tokens, block) + 1) provisions for.

vLLM's full-sequence admission gate (`scheduler_reserve_full_isl`, default True since
vllm-project/vllm PR #37307, merged 2026-03; the per-group cap from PR #40946): a waiting or
preempted request is admitted only when the blocks of all its known tokens (prompt plus outputs
so far) fit the free blocks, counted per group by `get_num_blocks_to_allocate(...,
apply_admission_cap=True)` (vllm/v1/core/kv_cache_manager.py `allocate_slots`,
single_type_kv_cache_manager.py): a group needs cdiv(tokens, block) blocks, a sliding group at
most cdiv(min(W - 1 + in_flight, max_model_len), block) + 1 and a chunked one
cdiv(min(C + in_flight, max_model_len), block) (SlidingWindowSpec /
ChunkedLocalAttentionSpec.max_admission_blocks_per_request, in_flight = max_num_batched_tokens
with one batch in flight; vLLM counts two under async scheduling, not modelled here, as the pool
sizing above), minus the prefix-cache hit's blocks, plus those of the hit still in the free
queue (a preempted request's own blocks all are): `admission`.
"""

import numpy as np

from sizer.model.attention import CHUNKED, FULL, SLIDING

_I = np.int64


class KVLayout:
    """Per-request block accounting over an engine's KV groups (module docstring).

    `windows`: (kind, window) of each windowed group (sliding or chunked); `groups`: how many
    groups in all (full ones included)."""

    def __init__(self, block: int, total_blocks: int, groups: int = 1, windows=(), in_flight: int = 0,
                 max_len: int | None = None, order=()):
        self.block = max(1, int(block))
        self.total_blocks = int(total_blocks)
        self.groups = int(groups)
        self.windows = tuple((k, int(w)) for k, w in windows)
        self.hybrid = bool(self.windows)
        # every group in vLLM's group order (the order it frees them in): windowed groups first
        # unless told (the first layer of Gemma-3, gpt-oss and Llama 4 is windowed)
        self.order = tuple(order) if order else self.windows + ((FULL, 0),) * (self.groups - len(self.windows))
        # a windowed group never holds more than this while decoding (see decode_bound)
        self._caps = [-(-(w + self.block - 1) // self.block) for _, w in self.windows]
        # the admission gate's per-request cap of each windowed group (module docstring)
        big = max_len if max_len else 1 << 62
        self._admit_caps = [(-(-min(w - 1 + in_flight, big) // self.block) + 1) if k == SLIDING
                            else -(-min(w + in_flight, big) // self.block) for k, w in self.windows]

    @classmethod
    def of_groups(cls, block: int, total_blocks: int, kinds, in_flight: int = 0,
                  max_len: int | None = None) -> "KVLayout":
        """From the LayerAttention of each group (sizer.cost.kv_cache.vllm_kv_groups)."""
        return cls(block, total_blocks, len(kinds), [(a.kind, a.window) for a in kinds if a.kind != FULL],
                   in_flight, max_len, [(a.kind, a.window if a.kind != FULL else 0) for a in kinds])

    def fresh(self, tokens):
        """Blocks a request with nothing computed takes to schedule its first `tokens` (every
        group allocates the chunk)."""
        return self.groups * (-(-tokens // self.block))

    def _skipped_blocks(self, comp):
        out = 0
        for kind, w in self.windows:
            if kind == SLIDING:
                skip = np.maximum(comp - w + 1, 0)
            elif kind == CHUNKED:
                skip = comp // w * w
            else:
                continue
            out = out + skip // self.block
        return out

    def held(self, comp, total):
        """Blocks a request holds after scheduling up to `total` tokens with `comp` computed."""
        return self.groups * (-(-total // self.block)) - self._skipped_blocks(comp)

    def gross(self, comp, total):
        """Blocks taken from the free queue to schedule up to `total` tokens with `comp` already
        allocated: every group allocates the new block slots, whatever its window frees (vLLM
        frees skipped blocks to the free queue's tail and takes new ones from its head, so each
        new block still evicts one cached block: the prefix-cache eviction clock)."""
        b = self.block
        return self.groups * (-(-total // b) - -(-comp // b))

    def admission(self, hit, tokens):
        """Blocks vLLM's full-sequence gate needs free to admit a waiting request of `tokens`
        known tokens whose first `hit` (whole blocks) are prefix-cache hits still in the free
        queue (module docstring): a full group cdiv(tokens, block); a windowed group
        max(min(cdiv(tokens, block), cap) - hit blocks, 0) plus the hit blocks inside its window."""
        b = self.block
        need = -(-tokens // b)
        h = hit // b
        out = (self.groups - len(self.windows)) * need
        skipped = [0] * len(self.windows)
        if h:
            skipped = [int(s) // b for s in self._skipped_per_group(hit)]
        for cap, s in zip(self._admit_caps, skipped):
            out += max(min(need, cap) - h, 0) + h - s
        return out

    def _skipped_per_group(self, comp):
        out = []
        for kind, w in self.windows:
            out.append(max(comp - w + 1, 0) if kind == SLIDING else comp // w * w)
        return out

    def hit(self, comp: int, held: int, evicted: int, max_tokens: int) -> int:
        """Tokens of a preempted request's prefix-cache hit on resume: it had computed `comp`
        tokens and freed `held` blocks, of which the first `evicted` in free-queue order are gone.
        vLLM frees a request group by group in group order, each group's blocks last first
        (KVCacheCoordinator.free -> SingleTypeKVCacheManager.free, "tail blocks are freed
        first"), so the first group's tail goes first and the windowed groups (first in the
        order here) lose their window before a full group loses a block. The hit is the longest
        length every group can serve (HybridKVCacheCoordinator.find_longest_cache_hit iterates
        the groups until they agree), each from its surviving blocks (whole blocks only, at most
        `max_tokens` = known tokens - 1, `get_computed_blocks`):
          full: its first surviving blocks (FullAttentionManager, left to right);
          sliding W: a length p whose cdiv(W - 1, block) blocks before it all survive, scanned
            right to left (SlidingWindowManager), or its blocks from the sequence start;
          chunked C: the start of p's chunk, plus that chunk's surviving blocks from there
            (ChunkedLocalAttentionManager).
        A group none of whose blocks were evicted serves any length (the blocks its window
        freed just before the preemption are taken to survive with it); one that lost blocks has
        lost those freed earlier too (they are ahead in the FIFO free queue)."""
        b = self.block
        n = -(-comp // b)
        whole = comp // b
        wins = [i for i, (k, _) in enumerate(self.order) if k != FULL]
        base = {}
        for i in wins:
            kind, w = self.order[i]
            skip = max(comp - w + 1, 0) if kind == SLIDING else comp // w * w
            base[i] = n - skip // b
        full_blocks = n * (len(self.order) - len(wins))
        stale = max(int(held) - full_blocks - sum(base.values()), 0)  # blocks the next step would skip
        for j, i in enumerate(wins):
            base[i] += stale // len(wins) + (1 if j < stale % len(wins) else 0)
        spans, left = [], int(evicted)
        for i, (kind, w) in enumerate(self.order):
            h = base.get(i, n)
            ev = min(max(left, 0), h)
            left -= h
            if ev:
                spans.append((kind, w, n - h, min(n - ev, whole)))  # kind, window, first block, end
        m = min(max(int(max_tokens), 0) // b, whole)
        for _ in range(2 * len(self.order) + 2):
            m0 = m
            for kind, w, lo, hi in spans:
                if kind == FULL:
                    m = min(m, hi)
                elif kind == SLIDING:
                    p = min(m, hi)
                    m = p if p >= lo and (lo == 0 or p - lo >= -(-(w - 1) // b)) else 0
                else:
                    start = m * b // w * w // b
                    m = max(start, min(m, hi)) if start >= lo else start
            if m == m0:
                break
        return m * b

    def decode_bound(self, tokens):
        """An upper bound, non-decreasing in `tokens`, of what a decoding request holds at
        every length up to `tokens` (held(t - 1, t) for t <= tokens): full groups
        ceil(t / block); a windowed group of window W at most ceil((W + block - 1) / block)."""
        b = -(-tokens // self.block)
        if not self.hybrid:
            return b
        out = (self.groups - len(self.windows)) * b
        for cap in self._caps:
            out = out + np.minimum(b, cap)
        return out

    def worst(self, isl, osl, chunk: int):
        """The most blocks one request holds over its life when its prompt is computed in
        chunks of `chunk` tokens: the largest of its prefill chunks and its last decode step."""
        isl, osl = np.asarray(isl, dtype=_I), np.asarray(osl, dtype=_I)
        chunk = max(1, int(chunk))
        end = isl + osl - 1  # the last token is sampled, never computed
        peak = self.held(np.maximum(end - 1, 0), end)
        done = np.zeros_like(isl)
        while np.any(done < isl):  # every chunk of every prompt, one chunk index at a time
            upto = np.minimum(done + chunk, isl)
            peak = np.maximum(peak, np.where(done < isl, self.held(done, upto), 0))
            done = upto
        return peak
