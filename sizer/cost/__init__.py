"""What one step and one deployment cost: memory per GPU (and each engine's memory rules),
per-op compute, collectives, the step time, pipeline schedules and the steady-state estimate.

May import: itself, sizer.hardware, sizer.model and the shared top-level modules."""
