"""Disaggregated prefill/decode serving in the simulator (issue #18 item 1): two pools of
replicas, each running the engine's own scheduler (sizer/sim/scheduler.py), joined by a KV
transfer queue, on the same event loop (sizer/sim/loop.py) and step costs as aggregated
serving.

A request's life:
1. it arrives at a prefill replica (the router over the prefill pool) and is scheduled there
   like any request whose output is one token: chunked prefill under the token budget, the
   first token sampled when the prompt is computed. The prefill pool has a request state of its
   own in which every output length is 1, so its schedulers admit, reserve and preempt for the
   prompt only;
2. its KV stays in the prefill replica's blocks until it has been sent (vLLM's NixlConnector
   frees a prefill request's blocks only once the decode side has read them,
   `request_finished` / `_reqs_to_send`), so a backed-up decode pool stalls the prefill pool;
3. it waits for a decode replica (the router over the decode pool) to admit it: the decode
   replica's admission is limited by its KV memory and its sequence cap, in arrival order: the
   prompt's blocks (plus the first decode token's) must be free beside what its running requests
   and the transfers already admitted hold, and requests it preempted resume first (vLLM
   allocates the remote prompt's blocks on admission, `get_num_new_matched_tokens`, for
   requests in its WAITING queue, where preempted ones are prepended); under whole-sequence
   admission (TensorRT-LLM, generic) the whole sequence must fit its reservations; SGLang
   pre-allocates the prompt only when it and SGLANG_RESERVED_DECODE_TOKENS more fit beside
   that many tokens kept for each running or transferring request (DecodePreallocQueue);
4. the transfer (sizer/cost/kv_transfer.py) runs on the prefill replica's send side and the
   decode replica's receive side, one request at a time on each DP rank (a lockstep group of
   g DP ranks has g of each): it starts when both are free;
5. when the KV has landed the first token is delivered (TTFT: prefill queue + prefill + decode
   admission + transfer; the first token travels with the KV as in SGLang and TensorRT-LLM) and
   the request joins the decode replica's running batch at its next step, with its prompt's KV
   computed; it takes osl - 1 decode steps. A request preempted there recomputes on the decode
   replica, as the engines do.
Requests of one output token finish when their KV lands.
"""

import heapq
import math
from collections import deque

import numpy as np

from sizer.errors import InfeasibleError, InputError
from .arrivals import Traffic
from .loop import EPS, Loop
from .replica import DONE, RUNNING, Replica, State
from .run import Deployment

_I = np.int64
# SGLang's decode pre-allocation keeps this many tokens per running, transferring and waiting
# request for their coming decode steps, and admits a request when its prompt plus as many
# fit beside them (python/sglang/srt/disaggregation/decode.py at 278e503a,
# DecodePreallocQueue._allocatable_tokens; --num-reserved-decode-tokens, default 512)
SGLANG_RESERVED_DECODE_TOKENS = 512


class PrefillReplica(Replica):
    """A replica of the prefill pool: a request leaves it when its first token is sampled,
    keeping its KV blocks until the transfer has sent them."""

    on_prefilled = None  # set by the loop: (replica, ids, t) -> None

    def finish(self, st: State, pos: np.ndarray, t: float) -> int:
        ids = self.ids[pos].copy()
        held = self.blocks[pos].copy()
        super().finish(st, pos, t)
        self.free -= int(held.sum())  # still holding the KV until it is sent
        self.on_prefilled(self, ids, held, t)
        return 0  # no request finished: it moves on to the decode pool


class DecodeReplica(Replica):
    """A replica of the decode pool: admits prefilled requests by its KV memory, receives their
    KV and runs them."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.pending: deque = deque()  # prefilled, waiting to be admitted
        self.ready: list = []  # KV landed, joining at the next step
        self.incoming = 0  # admitted, KV in transfer or ready (counts against max_num_seqs)

    @property
    def load(self) -> int:
        return len(self.waiting) + len(self.ids) + len(self.pending) + self.incoming

    def record(self, t: float, forwards: int, seqs: int) -> None:
        """As Replica.record, the requests waiting for admission counted as waiting."""
        self.samples.append((t, forwards, seqs, self.total_blocks - self.free, len(self.waiting) + len(self.pending),
                             len(self.ids)))

    def inject(self, st: State, rids: list, now: float) -> None:
        """Requests whose KV landed join the running arrays: prompt computed, first token out."""
        r = np.asarray(rids, dtype=_I)
        n, k = len(self.ids), len(r)
        st.status[r] = RUNNING
        st.pos[r] = np.arange(n, n + k)
        add = np.zeros((6, k), dtype=_I)
        add[0], add[1], add[2], add[3], add[4] = r, st.isl[r], st.isl[r] + 1, 1, st.osl[r]
        add[5] = self.kv.held(st.isl[r], st.isl[r] + 1)  # allocated at admission
        self.m = np.concatenate([self.m, add], axis=1)
        self._views()
        self.last = np.concatenate([self.last, np.full(k, now)])
        self.fly = np.concatenate([self.fly, np.zeros(k, dtype=bool)])
        self.incoming -= k


class Transfers:
    """The KV transfer queue as a pseudo-replica of the loop: a heap of transfers in flight,
    woken at the earliest end."""

    def __init__(self, idx: int):
        self.idx = idx
        self.wake_at = None
        self.heap: list = []
        self.waiting, self.ids = (), ()


class DisaggLoop(Loop):
    """Loop over prefill replicas, decode replicas and the transfer queue (module docstring)."""

    def __init__(self, st: State, pst: State, prefills, decodes, router, concurrency, transfer_s,
                 prefill_group: int, decode_group: int):
        self.prefills, self.decodes = prefills, decodes
        self.xfers = Transfers(len(prefills) + len(decodes))
        super().__init__(st, list(prefills) + list(decodes) + [self.xfers], router, concurrency)
        self.pst = pst
        self.transfer_s = transfer_s  # per request id
        self.send_free = [[0.0] * prefill_group for _ in prefills]
        self.recv_free = [[0.0] * decode_group for _ in decodes]
        n = st.n
        self.prefilled_t, self.admitted_t = np.full(n, np.nan), np.full(n, np.nan)
        self.xfer_start_t, self.landed_t = np.full(n, np.nan), np.full(n, np.nan)
        self.source = np.full(n, -1, dtype=_I)
        self.held = np.zeros(n, dtype=_I)
        for rep in prefills:
            rep.on_prefilled = self._prefilled
        self._now = 0.0

    @property
    def measured_replicas(self) -> list:
        return list(self.decodes)

    def state_of(self, rep):
        return self.pst if isinstance(rep, PrefillReplica) else self.st

    def route(self):
        return self._pick(self.prefills, "prefill")

    def _route_decode(self):
        return self._pick(self.decodes, "decode")

    # -- prefill done -> decode admission -> transfer -> decode --------------------------------
    def _prefilled(self, rep, ids, held, t) -> None:
        st = self.st
        st.start_t[ids] = self.pst.start_t[ids]  # queueing ends at the first prefill forward
        self.prefilled_t[ids] = t
        self.source[ids] = rep.idx
        self.held[ids] = held
        woken = set()
        for r in ids.tolist():
            dec = self._route_decode()
            st.replica[r] = dec.idx
            dec.pending.append(r)
            woken.add(dec.idx)
        for i in woken:  # the decode scheduler admits at its next step boundary
            dec = self.reps[i]
            self._cut_plan(dec, t)
            self._wake_idle(dec, t)

    def _admit(self, dec: DecodeReplica, now: float) -> None:
        """Admit pending requests in order while the decode replica's KV and sequence cap allow
        (module docstring, step 3); requests it preempted resume first."""
        st = self.st
        if dec.waiting:  # vLLM prepends preempted requests to WAITING; SGLang resumes retracted ones first
            return
        sglang = dec.policy.__class__.__name__ == "SGLang"
        while dec.pending:
            r = dec.pending[0]
            if dec.running + dec.incoming >= dec.max_seqs:
                return
            # the prompt's KV arrives computed: windowed groups keep only its window (vLLM
            # allocates the remote tokens past the skipped ones, allocate_new_computed_blocks)
            blocks = int(dec.kv.held(int(st.isl[r]), int(st.isl[r]) + 1))
            if blocks > dec.free:
                return
            if sglang and (dec.free * dec.block - SGLANG_RESERVED_DECODE_TOKENS * (dec.running + dec.incoming)
                           < int(st.isl[r]) + SGLANG_RESERVED_DECODE_TOKENS):
                return
            if dec.policy.reserves:
                full = int(dec.blocks_for(int(st.isl[r] + st.osl[r])))
                if dec.reserved + full > dec.total_blocks:
                    return
                dec.reserved += full
            dec.pending.popleft()
            dec.free -= blocks
            dec.incoming += 1
            self.admitted_t[r] = now
            self._send(r, dec, now)

    def _send(self, r: int, dec: DecodeReplica, now: float) -> None:
        p = int(self.source[r]) - self.prefills[0].idx
        d = dec.idx - self.decodes[0].idx
        send, recv = self.send_free[p], self.recv_free[d]
        i, j = int(np.argmin(send)), int(np.argmin(recv))
        start = max(now, send[i], recv[j])
        end = start + float(self.transfer_s[r])
        send[i] = recv[j] = end
        self.xfer_start_t[r] = start
        heapq.heappush(self.xfers.heap, (end, r, dec.idx))
        self._push(self.xfers, self.xfers.heap[0][0])

    def _land(self, now: float) -> int:
        """Transfers that ended by `now`: free the prefill side's blocks, deliver the first
        token, hand the request to its decode replica. Returns requests finished (osl = 1)."""
        st, done = self.st, 0
        woken_pre, woken_dec = set(), set()
        heap = self.xfers.heap
        while heap and heap[0][0] <= now + EPS:
            end, r, di = heapq.heappop(heap)
            pre = self.reps[int(self.source[r])]
            pre.free += int(self.held[r])
            woken_pre.add(pre.idx)
            self.landed_t[r] = end
            st.first_t[r] = end
            st.out[r] = 1
            dec = self.reps[di]
            if st.osl[r] <= 1:  # nothing to decode: done when its KV (and token) arrived
                st.finish_t[r], st.status[r] = end, DONE
                st.completions[r] += 1
                dec.free += int(dec.kv.held(int(st.isl[r]), int(st.isl[r]) + 1))
                if dec.policy.reserves:
                    dec.reserved -= int(dec.blocks_for(int(st.isl[r] + st.osl[r])))
                dec.incoming -= 1
                done += 1
                woken_dec.add(di)
                continue
            dec.ready.append(r)
            woken_dec.add(di)
        for i in woken_pre:
            self._wake_idle(self.reps[i], now)
        for i in woken_dec:
            rep = self.reps[i]
            self._cut_plan(rep, now)
            self._wake_idle(rep, now)
        if heap:
            self._push(self.xfers, heap[0][0])
        return done

    def _wake_idle(self, rep, now) -> None:
        if len(rep.inflight) < rep.pp and rep.stage_free[0] <= now + EPS:
            self._push(rep, now)

    # -- the loop's hooks ------------------------------------------------------------------------
    def _wake(self, rep, now) -> int:
        if rep is self.xfers:
            return self._land(now)
        return super()._wake(rep, now)

    def _start(self, rep, now) -> None:
        """A decode replica between forwards: landed requests join, pending ones are admitted
        (only here, so a fused stretch of decode steps never sees its free blocks change)."""
        if isinstance(rep, DecodeReplica) and (rep.pp > 1 or not rep.inflight):
            if rep.ready:
                rep.inject(self.st, rep.ready, now)
                rep.ready = []
            self._admit(rep, now)
        super()._start(rep, now)

    def _next_wake(self, rep, now):
        t = super()._next_wake(rep, now)
        if isinstance(rep, DecodeReplica) and rep.ready and t is None:
            return now
        return t

    def stages(self, first: int) -> dict:
        from . import metrics

        sl = slice(first, None)
        pst_stats = metrics.replica_stats(self.prefills)
        return {"prefill_s": metrics.block(self.prefilled_t[sl] - self.st.start_t[sl]),
                "decode_admission_wait_s": metrics.block(self.admitted_t[sl] - self.prefilled_t[sl]),
                "kv_transfer_queue_s": metrics.block(self.xfer_start_t[sl] - self.admitted_t[sl]),
                "kv_transfer_s": metrics.block(self.landed_t[sl] - self.xfer_start_t[sl]),
                "prefill_batch": pst_stats["batch"], "prefill_kv_utilization": pst_stats["kv_utilization"],
                "prefill_forwards": pst_stats["forwards"]}


class DisaggDeployment:
    """A prefill pool and a decode pool (sizer.cost.disagg.Pools) of one model under one engine,
    ready to simulate: each pool a Deployment on its own GPUs, and the KV transfer between them.
    `simulate` and `find_rate` (sizer/sim/run.py) take it as they take a Deployment."""

    def __init__(self, model, gpu, pools, *, engine=None, weight_dtype=None, kv_dtype="auto", fraction=None,
                 max_num_seqs=None, max_num_batched_tokens=None, cuda_graphs=None, topology=None,
                 profile=None, context=None, router="round-robin", prefix_caching=None, reserve_full_isl=None):
        from sizer.cost.disagg import TransferModel, check_pools, placements
        from sizer.cost.memory import resolve_precision
        from sizer.hardware.topology import default_topology

        check_pools(model, pools)
        self.model, self.gpu, self.pools = model, gpu, pools
        topo = topology or default_topology(gpu, pools.gpus)
        p_topo, d_topo, _, _ = placements(topo, pools)
        kw = dict(engine=engine, weight_dtype=weight_dtype, kv_dtype=kv_dtype, fraction=fraction,
                  max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                  cuda_graphs=cuda_graphs, profile=profile, context=context, router=router,
                  prefix_caching=prefix_caching, reserve_full_isl=reserve_full_isl)
        self.roles = {}
        for role, split, sub in (("prefill", pools.prefill, p_topo), ("decode", pools.decode, d_topo)):
            try:
                self.roles[role] = Deployment(model, gpu, split, topology=sub if split.gpus > 1 else None, **kw)
            except InfeasibleError as exc:
                raise InputError(f"the {role} pool does not fit: {exc}") from None
        self.prefill, self.decode = self.roles["prefill"], self.roles["decode"]
        self.engine, self.router = self.decode.engine, router
        self.transfer = TransferModel(model, pools, topo, resolve_precision(model, weight_dtype, kv_dtype).kv, profile)
        self.estimate_kw = dict(weight_dtype=weight_dtype, kv_dtype=kv_dtype, engine=engine, fraction=fraction,
                                max_batch=max_num_seqs, max_num_tokens=max_num_batched_tokens, cuda_graphs=cuda_graphs,
                                topology=topo, profile=profile)
        self._transfer_cache: dict = {}

    @property
    def split(self):
        return self.decode.split

    def check(self, wl) -> None:
        longest = int(np.max(wl.isl + wl.osl))
        if longest > self.decode.kv_tokens:
            raise InfeasibleError(f"a request of {longest} tokens does not fit the KV cache of one decode replica "
                                  f"({self.decode.kv_tokens} tokens)")
        prompt = int(np.max(wl.isl)) + 1
        if prompt > self.prefill.kv_tokens:
            raise InfeasibleError(f"a prompt of {prompt - 1} tokens does not fit the KV cache of one prefill replica "
                                  f"({self.prefill.kv_tokens} tokens)")
        if self.engine == "trtllm" and prompt - 1 > self.prefill.max_num_batched_tokens:
            raise InfeasibleError(f"a prompt of {prompt - 1} tokens exceeds TensorRT-LLM's max_num_tokens "
                                  f"{self.prefill.max_num_batched_tokens} (context chunking is off by default)")

    def transfer_times(self, isl: np.ndarray) -> np.ndarray:
        lengths, inverse = np.unique(np.asarray(isl), return_inverse=True)
        key = tuple(int(x) for x in lengths) if len(lengths) <= 64 else None
        times = self._transfer_cache.get(key) if key is not None else None
        if times is None:
            times = np.atleast_1d(self.transfer.time_s(lengths))
            if key is not None:
                self._transfer_cache[key] = times
        return times[inverse]

    def loop(self, st: State, wl, traffic: Traffic) -> DisaggLoop:
        pst = State(wl, st.first_measured)
        pst.osl = np.ones_like(pst.osl)  # the prefill pool serves every request up to its first token
        pre_costs, dec_costs = self.prefill.costs(wl), self.decode.costs(wl)
        base = self.prefill.replicas
        prefills = [self.prefill.replica(i, pre_costs, PrefillReplica) for i in range(base)]
        decodes = [self.decode.replica(base + i, dec_costs, DecodeReplica) for i in range(self.decode.replicas)]
        return DisaggLoop(st, pst, prefills, decodes, self.router, traffic.concurrency, self.transfer_times(wl.isl),
                          self.prefill.group, self.decode.group)

    def to_json(self) -> dict:
        x = self.transfer.kvt
        return {"mode": "disaggregated", "engine": self.engine or "none", "router": self.router,
                "prefill": {**self.pools.pool_json("prefill"), **self.prefill.to_json()},
                "decode": {**self.pools.pool_json("decode"), **self.decode.to_json()},
                "kv_transfer": {"rule": x.rule(), "sources_per_decode_rank": x.sources_per_decode_rank},
                "replicas": self.decode.replicas, "max_model_len": self.decode.context}

    def steady_state_rps(self, traffic: Traffic) -> float:
        """Requests/s of sizer estimate --disagg's steady state for the traffic's mean lengths."""
        from sizer.cost.disagg import estimate_disagg
        from .run import _mean_lengths

        isl, osl = _mean_lengths(traffic)
        est = estimate_disagg(self.model, self.gpu, self.pools, isl=max(1, round(isl)), osl=max(1, round(osl)),
                              **self.estimate_kw)
        rps = est.doc["requests_per_s"]
        return rps if math.isfinite(rps) else 1.0
