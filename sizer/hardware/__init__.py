"""What it runs on: the GPU catalog, link classes, node topologies (presets and `nvidia-smi topo -m`
files), rank placement, hardware profiles from probes.calibrate and the time model's defaults.

May import: itself, sizer.model and the shared top-level modules."""
