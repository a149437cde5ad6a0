"""Pipeline-parallel schedules: fill-run-drain (GPipe forward) over micro-batches.

Micro-batch i is at stage j at clock i + j (GPipe, Huang et al. 2019, Fig. 2): m micro-batches
over p stages take m + p - 1 clocks, and the bubble (idle share of stage-clocks) is
(p - 1) / (m + p - 1). In decode, serving engines keep p micro-batches in flight (vLLM v1's
batch queue of max_concurrent_batches = p, v1/engine/core.py step_with_batch_queue; SGLang's
pp_max_micro_batch_size = max_running_requests / p; TensorRT-LLM's max batch per micro-batch,
trtllm-bench dividing its 4096 by p), so a token of one sequence passes all p stages once per
step: TPOT = p x stage time, with no bubble when the batch splits into at least p micro-batches.

What a pipeline pays beyond that (sizer/cost/estimate.py chunk_clock and pp_costs): the engine's
cap on running sequences is shared by the micro-batches, so each is 1/p of the batch and
re-reads its stage's weights p times a round; every micro-batch is its own scheduled forward
with its own host overhead; the p micro-batches move in lockstep, so one carrying a prompt
chunk sets every stage's clock for the round; and the slowest stage (the last holds the final
norm, LM head and sampler) sets the clock for all.
"""

from dataclasses import dataclass

MAX_JSON_CELLS = 4096  # (micro-batch, stage) cells listed in to_json


@dataclass(frozen=True)
class Schedule:
    stages: int
    microbatches: int
    clock_s: float  # one stage's time for one micro-batch (the slowest stage's)

    @property
    def clocks(self) -> int:
        return self.microbatches + self.stages - 1

    @property
    def makespan_s(self) -> float:
        return self.clocks * self.clock_s

    @property
    def bubble_fraction(self) -> float:
        """Idle share of all stage-clocks: (p - 1) / (m + p - 1)."""
        return (self.stages - 1) / self.clocks

    def cells(self) -> list[dict]:
        """Every (micro-batch, stage) slot with its clock and start/end times (for Gantt charts)."""
        return [{"microbatch": i, "stage": j, "clock": i + j,
                 "start_s": (i + j) * self.clock_s, "end_s": (i + j + 1) * self.clock_s}
                for i in range(self.microbatches) for j in range(self.stages)]

    def busy_stages(self, clock: int) -> list[int]:
        return sorted(c["stage"] for c in self.cells() if c["clock"] == clock)

    def to_json(self) -> dict:
        """The schedule's numbers, with every cell when there are at most MAX_JSON_CELLS (a
        Gantt chart's worth): a 1e9-token prefill in 256-token chunks has 4e6 micro-batches,
        whose cells took minutes and gigabytes to print (issue #16)."""
        n = self.microbatches * self.stages
        return {"stages": self.stages, "microbatches": self.microbatches, "clocks": self.clocks,
                "clock_s": self.clock_s, "makespan_s": self.makespan_s,
                "bubble_fraction": self.bubble_fraction,
                "schedule": self.cells() if n <= MAX_JSON_CELLS else [],
                "schedule_cells_omitted": 0 if n <= MAX_JSON_CELLS else n}


def microbatches_for(batch: int, stages: int) -> int:
    """Micro-batches a batch is cut into: one per stage when the batch allows (no bubble in
    steady decode), else one per sequence."""
    return max(1, min(int(batch), int(stages)))
