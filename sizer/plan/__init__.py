"""The search: every valid split ranked under memory and latency targets, why the others lose,
and capacity planning for a request rate.

May import: every folder above it (sim, cost, hardware, model) and the shared top-level modules."""
