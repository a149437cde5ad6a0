"""The discrete-event loop: arrivals, a router over DP replicas, forwards through pipelines.

Events are request arrivals (in time order) and replica wake-ups (a forward leaves the pipeline,
or stage 0 frees while the pipeline has room). A replica's scheduler runs only between forwards,
as an engine's does: a request that arrives mid-forward waits for the next one. Arrivals at the
same instant are all queued before any replica schedules (so `--rate inf` offers every request
to the first scheduling pass).

Pipeline parallelism (vLLM's batch queue of PP micro-batches, `max_concurrent_batches`): stage
0 takes a new micro-batch as soon as it is free and fewer than PP micro-batches are in flight;
the scheduler skips requests already in flight (vLLM schedules 0 new tokens for them). Every
stage of a micro-batch takes its clock (the slowest stage's time for that shape) and a stage
works on one micro-batch at a time, so stage j starts when the micro-batch left stage j - 1 and
stage j finished the previous one (a flow shop). With PP = 1 this is one forward at a time.

Fast path (PP = 1): when every running request is decoding and the engine's policy says no
request can be admitted or preempted before the next completion, up to that many decode forwards
are fused into one `Plan`: their clocks come from one vectorised lookup as the KV grows by a
token per step, and the state is updated once. A plan is cut at the first step boundary after a
request arrives at the replica, where the engine would schedule it.

Client concurrency (vLLM `--max-concurrency`, closed-loop benchmarks): at most N requests are
outstanding; the next one is released when one finishes (or at its arrival time if later).
"""

import heapq
import math
from dataclasses import dataclass

import numpy as np

from sizer.errors import InfeasibleError
from .replica import DONE, WAITING

EPS = 1e-12
ROUTERS = ("round-robin", "least-loaded")


@dataclass
class Plan:
    """k fused decode-only forwards of the same requests, ending at ends[0..k-1]."""

    ids: np.ndarray
    ends: np.ndarray

    @property
    def k(self) -> int:
        return len(self.ends)


class Loop:
    def __init__(self, state, replicas, router: str = "round-robin", concurrency=None):
        self.st, self.reps = state, replicas
        self.router = router
        self.concurrency = concurrency
        self.heap: list = []
        self.seq = 0
        self._turn: dict = {}  # round-robin position per replica list (_pick)

    @property
    def measured_replicas(self) -> list:
        """The replicas whose forwards SimResult's batch and KV statistics describe."""
        return self.reps

    def stages(self, first: int) -> dict | None:
        """What a simulation measured beyond the requests' timestamps (None here)."""
        return None

    # -- routing ----------------------------------------------------------------------------
    def route(self):
        return self._pick(self.reps, "replicas")

    def _pick(self, reps, turn: str):
        """The replica of `reps` an arrival goes to: least loaded, or the next in turn (each
        list `turn` keeps its own round-robin position)."""
        if len(reps) == 1:
            return reps[0]
        if self.router == "least-loaded":
            return min(reps, key=lambda r: (r.load, r.idx))
        i = self._turn.get(turn, 0)
        self._turn[turn] = i + 1
        return reps[i % len(reps)]

    # -- replica events ---------------------------------------------------------------------
    def _push(self, rep, t) -> None:
        if rep.wake_at is not None and rep.wake_at <= t:
            return
        rep.wake_at = t
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, rep.idx))

    def _next_wake(self, rep, now):
        t = rep.inflight[0][0] if rep.inflight else math.inf
        if len(rep.inflight) < rep.pp and rep.stage_free[0] > now + EPS and rep.load:
            t = min(t, rep.stage_free[0])
        return None if math.isinf(t) else t

    def state_of(self, rep):
        """The request state a replica's scheduler reads and writes (one for every replica
        here; a disaggregated prefill pool keeps its own, sizer/sim/disagg.py)."""
        return self.st

    def _poke(self, rep, now) -> None:
        """A request arrived at rep: cut a fused plan at the next step boundary when the engine
        would admit it there (it heads the queue and fits), and wake an idle replica now."""
        if len(rep.waiting) == 1 and rep.policy.can_admit(self.state_of(rep)):  # else it waits anyway
            self._cut_plan(rep, now)
        if len(rep.inflight) < rep.pp and rep.stage_free[0] <= now + EPS:
            self._push(rep, now)

    def _cut_plan(self, rep, now) -> None:
        """End a fused stretch of decode forwards at the first step boundary after `now`."""
        if rep.inflight and isinstance(rep.inflight[0][1], Plan) and rep.inflight[0][0] > now + EPS:
            plan = rep.inflight[0][1]
            k = int(np.searchsorted(plan.ends, now - EPS, side="left")) + 1
            if k < plan.k:
                plan.ends = plan.ends[:k]
                rep.inflight[0] = (float(plan.ends[-1]), plan)
                rep.stage_free[0] = float(plan.ends[-1])
                rep.wake_at = None
                self._push(rep, float(plan.ends[-1]))

    def _wake(self, rep, now) -> int:
        done = 0
        while rep.inflight and rep.inflight[0][0] <= now + EPS:
            _, item = rep.inflight.popleft()
            done += self._complete_plan(rep, item) if isinstance(item, Plan) else rep.complete(self.state_of(rep), item, now)
        self._start(rep, now)
        t = self._next_wake(rep, now)
        if t is not None:
            self._push(rep, t)
        return done

    def _start(self, rep, now) -> None:
        st = self.state_of(rep)
        while len(rep.inflight) < rep.pp and rep.stage_free[0] <= now + EPS:
            if rep.pp == 1 and rep.running and not rep.inflight and self._plan(rep, now):
                return
            batch = rep.policy.schedule(st, now)
            if batch is None:
                return
            b = batch.decode
            clock = rep.costs.time(b, batch.ctx_sum / b if b else 0.0, batch.prefill, batch.prompt)
            end = now
            for j in range(rep.pp):
                end = max(end, rep.stage_free[j]) + clock
                rep.stage_free[j] = end
            rep.inflight.append((end, batch))

    def _plan(self, rep, now) -> bool:
        """Fuse the coming pure-decode forwards into one Plan when nothing can change before
        the first request finishes (module docstring)."""
        n = rep.running
        if n > rep.max_tokens:
            return False
        k_max = int((rep.osl - rep.out).min())
        if k_max < 2 or not np.array_equal(rep.comp + 1, rep.known):
            return False
        k = rep.policy.decode_steps(self.state_of(rep), k_max)
        if k < 2:
            return False
        steps = np.arange(1, k + 1, dtype=float)
        clocks = rep.costs.decode_times(n, float(rep.comp.mean()) + steps)
        ends = now + np.cumsum(clocks)
        rep.stage_free[0] = float(ends[-1])
        rep.inflight.append((float(ends[-1]), Plan(rep.ids, ends)))
        return True

    def _complete_plan(self, rep, plan: Plan) -> int:
        """Apply k fused decode forwards (the running set has not changed since the plan)."""
        st, k = self.state_of(rep), plan.k
        rep.comp += k
        rep.known += k
        rep.out += k
        st.add_gaps(rep.ids, plan.ends[0] - rep.last)
        if k > 1:
            m = len(rep.ids) if not st.first_measured else int(np.count_nonzero(rep.ids >= st.first_measured))
            if m:
                st.itl.append((np.diff(plan.ends), m))
        rep.last[:] = plan.ends[-1]
        need = rep.kv.held(rep.comp - 1, rep.comp) - rep.blocks  # the last step's allocation
        if not rep.kv.hybrid:
            np.maximum(need, 0, out=need)
        rep.blocks += need
        rep.free -= int(need.sum())
        rep.allocated += int(rep.kv.gross(rep.comp - k, rep.comp).sum())  # every group's new blocks
        rep.policy.on_decode_steps(k)
        rep.record(float(plan.ends[-1]), k, len(rep.ids))
        fin = np.flatnonzero(rep.out >= rep.osl)
        return rep.finish(st, fin, float(plan.ends[-1])) if len(fin) else 0

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> float:
        st = self.st
        arrival = st.arrival
        n, nxt, outstanding, now = st.n, 0, 0, 0.0
        conc = self.concurrency
        while True:
            t_rep = self.heap[0][0] if self.heap else math.inf
            if nxt < n and (conc is None or outstanding < conc):
                t_arr = max(float(arrival[nxt]), now)
            else:
                t_arr = math.inf
            if math.isinf(t_arr) and math.isinf(t_rep):
                break
            if t_arr <= t_rep:
                now = t_arr
                rep = self.route()
                st.release_t[nxt] = now
                st.status[nxt] = WAITING
                st.replica[nxt] = rep.idx
                rep.waiting.append(nxt)
                nxt += 1
                outstanding += 1
                self._poke(rep, now)
            else:
                t, _, i = heapq.heappop(self.heap)
                rep = self.reps[i]
                if rep.wake_at != t:
                    continue  # superseded by an earlier wake-up
                rep.wake_at = None
                now = t
                outstanding -= self._wake(rep, now)
        left = int(np.sum(st.status != DONE))
        if left:
            raise InfeasibleError(f"{left} of {n} requests could never be scheduled (each needs more KV "
                                  "or tokens than one forward can give)")
        return now

