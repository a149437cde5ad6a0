"""Traffic over time: the request-level simulator (arrivals, the engine's scheduler stepping through
mixed batches, metrics), with step costs from sizer.cost.

May import: itself, sizer.cost, sizer.hardware, sizer.model and the shared top-level modules."""
