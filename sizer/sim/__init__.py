"""Traffic over time: the request-level simulator (arrivals, the engine's scheduler stepping through
mixed batches, metrics), with step costs from sizer.cost.

May import: itself, sizer.cost, sizer.hardware, sizer.model and the shared top-level modules."""

from .arrivals import Lengths, Traffic, generate, parse_lengths
from .run import Deployment, RateSearch, SimResult, find_rate, simulate
from .traces import read_trace

__all__ = ["Deployment", "Lengths", "RateSearch", "SimResult", "Traffic", "find_rate", "generate",
           "parse_lengths", "read_trace", "simulate"]
