"""`python -m probes.smoke`: a one-GPU self-check, for the first time the probes meet a GPU.

Run it on a lent GPU, or on the user's node before a long calibrate: every CUDA/NCCL branch the
probes take is exercised once on GPU 0 of the visible ones (CUDA_VISIBLE_DEVICES picks another):

  device       name, capability, memory, L2, driver, torch / CUDA / NCCL versions
  nccl_group   a one-rank NCCL process group, joined with device_id= (probes/launch.py)
  <op>         all_reduce, all_gather, reduce_scatter, all_to_all, send_recv once each on CUDA
               tensors, with nccl-tests' data check (probes/coll.py: 0 wrong elements)
  events       CUDA events around a GEMM: positive, and within the host's wall time
  graph        a captured graph of in-place adds replayed twice (the value is exact), and a
               captured all_reduce replayed (probes/device.py capture)
  gemm_bf16    a bf16 GEMM against fp32
  gemm_fp8     torch._scaled_mm at decode M=1 and M=16 against its dequantised inputs
  copy         the copy kernel of the bandwidth probe: equal bytes, GB/s
  calibrate    `python -m probes.calibrate --quick --world-size 1` (about 30 s): exit 0 and a
               profile that sizer loads

One line per check ('ok', 'FAIL' or 'skip', the check, what it saw), then one JSON line. Exit 0
when nothing failed, 1 otherwise; 2 with one line on stderr and nothing on stdout when no CUDA
device is visible. (`--device cpu` runs the same checks on a CPU gloo rank, for the tests.)
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import torch
import torch.distributed as dist

from . import coll
from .args import Parser, seconds
from .device import CudaDevice, visible_gpus
from .launch import init_rank
from .placement import Launch


class Checks:
    """Runs checks, prints a line for each, remembers the verdicts."""

    def __init__(self, out=None):
        self.out, self.results = out or sys.stdout, {}

    def run(self, name, fn):
        try:
            status, detail = fn()
        except Exception as exc:  # noqa: BLE001 -- a failing check is a line, not a traceback
            status, detail = "FAIL", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        self.results[name] = status
        self.out.write(f"{status:<5} {name:<15} {detail}\n")
        self.out.flush()
        return status

    @property
    def failed(self) -> bool:
        return any(s == "FAIL" for s in self.results.values())


def _rel_err(got, ref) -> float:
    return float((got.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-30))


def check_device(ctx):
    props = ctx.dev.properties()
    if ctx.device.type != "cuda":
        return "ok", f"cpu ({os.cpu_count()} cores), torch {torch.__version__}"
    l2 = props.get("l2_bytes")
    return "ok", (f"{props['name']} sm_{props['capability']}, {props['memory_bytes'] / 2**30:.0f} GiB, "
                  f"L2 {l2 / 2**20:.0f} MiB" if l2 else f"{props['name']}, L2 unknown") + \
        f"; torch {torch.__version__}, CUDA {torch.version.cuda}, NCCL {ctx.dev.nccl_version()}"


def check_collective(ctx, op):
    if op == "send_recv" and ctx.backend == "gloo":
        return "skip", "gloo cannot send to itself (NCCL can)"
    c = coll.Coll(op, 1, 0, None, [0], ctx.device)
    count = c.count(1 << 16)
    wrong = c.check(count)
    ctx.sync()
    return ("ok" if wrong == 0 else "FAIL"), f"{count} float32 elements, {wrong} wrong"


def check_events(ctx):
    n = 2048 if ctx.device.type == "cuda" else 256
    a = torch.randn(n, n, device=ctx.device)
    b = torch.randn(n, n, device=ctx.device)
    (a @ b).sum().item()  # warm-up (cuBLAS handle, clocks)
    ctx.sync()
    timer = ctx.timer()
    wall0 = time.perf_counter()
    timer.start()
    for _ in range(5):
        a @ b
    t = timer.stop()
    wall = time.perf_counter() - wall0
    ok = math.isfinite(t) and 0 < t <= 1.5 * wall + 1e-3
    return ("ok" if ok else "FAIL"), f"5 GEMMs {n}^3: {t * 1e3:.3f} ms by the timer, {wall * 1e3:.3f} ms wall"


def check_graph(ctx):
    if not ctx.dev.supports_graphs:
        return "skip", "no CUDA graphs on a CPU rank"
    x = torch.zeros(1, device=ctx.device)
    replay = ctx.dev.capture(lambda: x.add_(1.0), 10, warmup=1)
    x.zero_()
    replay()
    replay()
    ctx.sync()
    adds = float(x.item())
    t = torch.ones(1024, device=ctx.device)
    ar = ctx.dev.capture(lambda: dist.all_reduce(t), 1, warmup=1)
    t.fill_(3.0)
    ar()
    ctx.sync()
    summed = float(t[0].item())  # one rank: the sum is the value
    ok = adds == 20.0 and summed == 3.0
    return ("ok" if ok else "FAIL"), f"2 replays of 10 adds = {adds:g} (20); captured all_reduce = {summed:g} (3)"


def check_gemm_bf16(ctx):
    if ctx.device.type != "cuda":
        return "skip", "bf16 GEMMs are timed on GPUs only"
    a = torch.randn(512, 1024, device=ctx.device)
    b = torch.randn(1024, 768, device=ctx.device)
    err = _rel_err(a.bfloat16() @ b.bfloat16(), a @ b)
    return ("ok" if err < 2e-2 else "FAIL"), f"512x1024x768: max rel err {err:.1e} vs fp32 (< 2e-2)"


def check_gemm_fp8(ctx):
    from .compute import FP8_USE_FAST_ACCUM, fp8_supported

    if not fp8_supported(ctx.dev):
        return "skip", "no fp8 GEMM here (needs sm_89+ and torch._scaled_mm)"
    errs = []
    for m in (1, 16):
        a = torch.randn(m, 1024, device=ctx.device).to(torch.float8_e4m3fn)
        b = torch.randn(768, 1024, device=ctx.device).to(torch.float8_e4m3fn).t()
        one = torch.ones((), device=ctx.device, dtype=torch.float32)
        out = torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16,
                               use_fast_accum=FP8_USE_FAST_ACCUM)
        errs.append(_rel_err(out, a.float() @ b.float()))
    ok = max(errs) < 2e-2
    return ("ok" if ok else "FAIL"), (f"M=1 and M=16 (x1024x768): max rel err {max(errs):.1e} "
                                      f"(< 2e-2), use_fast_accum={FP8_USE_FAST_ACCUM}")


def check_copy(ctx):
    size = (256 << 20) if ctx.device.type == "cuda" else (16 << 20)
    x = torch.randint(0, 255, (size,), dtype=torch.uint8, device=ctx.device)
    y = torch.empty_like(x)
    y.copy_(x)
    ctx.sync()
    timer = ctx.timer()
    timer.start()
    for _ in range(3):
        y.copy_(x)
    t = timer.stop() / 3
    same = bool(torch.equal(x, y))
    return ("ok" if same else "FAIL"), f"{size >> 20} MiB: equal={same}, {2 * size / t / 1e9:.0f} GB/s (read + write)"


def check_calibrate(device: str, timeout_s: float):
    with tempfile.TemporaryDirectory(prefix="probes-smoke-") as tmp:
        out = os.path.join(tmp, "profile.json")
        cmd = [sys.executable, "-m", "probes.calibrate", "--quick", "--world-size", "1",
               "--phases", "compute,forward", "--out", out, "--timeout", f"{timeout_s:g}"]
        if device == "cpu":
            cmd += ["--backend", "gloo"]
        t0 = time.monotonic()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s + 60)
        secs = time.monotonic() - t0
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return "FAIL", f"exit {done.returncode} after {secs:.0f} s: {last[:200]}"
        from sizer.hardware.profile import load_profile

        hbm = load_profile(out).compute_value("hbm_bytes_per_s")
        if not hbm:
            return "FAIL", f"{secs:.0f} s; the profile has no HBM fit"
        return "ok", f"{secs:.0f} s; the profile loads in sizer, HBM fit {hbm / 1e9:.0f} GB/s"


def parse_args(argv=None):
    p = Parser(prog="python -m probes.smoke", description=__doc__.splitlines()[0])
    p.add_argument("--no-calibrate", action="store_true", help="skip the 30-second calibration")
    p.add_argument("--timeout", type=seconds, default=180.0,
                   help="deadline of the calibration step in seconds (default 180)")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and visible_gpus() == 0:
        sys.stderr.write("smoke: error: no CUDA device visible (torch "
                         f"{torch.__version__}, built with CUDA {torch.version.cuda}; "
                         f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})\n")
        return 2
    backend = "nccl" if args.device == "cuda" else "gloo"
    checks = Checks()
    launch = Launch("spawn", backend, 1, 1, 1, visible_gpus() if backend == "nccl" else 0)
    checks.run("device", lambda: check_device(_local_ctx(backend)))
    ctx = None
    with tempfile.TemporaryDirectory(prefix="probes-smoke-") as tmp:
        def join():
            nonlocal ctx
            ctx = init_rank(launch, 0, 0, "file://" + os.path.join(tmp, "rdzv"), 60.0)
            ver = ctx.dev.nccl_version() if backend == "nccl" else None
            return "ok", f"one-rank {backend} group on {ctx.device}" + (f" (NCCL {ver})" if ver else "")

        if checks.run("nccl_group" if backend == "nccl" else "gloo_group", join) == "ok":
            for op in coll.OPS:
                checks.run(op, lambda op=op: check_collective(ctx, op))
            checks.run("graph", lambda: check_graph(ctx))
        local = ctx or _local_ctx(backend)
        checks.run("events", lambda: check_events(local))
        checks.run("gemm_bf16", lambda: check_gemm_bf16(local))
        checks.run("gemm_fp8", lambda: check_gemm_fp8(local))
        checks.run("copy", lambda: check_copy(local))
        if dist.is_initialized():
            dist.destroy_process_group()
    if args.no_calibrate:
        checks.results["calibrate"] = "skip"
        sys.stdout.write(f"{'skip':<5} {'calibrate':<15} --no-calibrate\n")
    else:
        checks.run("calibrate", lambda: check_calibrate(args.device, args.timeout))
    sys.stdout.write(json.dumps({"smoke": "fail" if checks.failed else "ok",
                                 "checks": checks.results}) + "\n")
    return 1 if checks.failed else 0


def _local_ctx(backend: str):
    """A rank context on GPU 0 (or the CPU) for the checks that need no process group."""
    from .launch import RankContext

    dev = CudaDevice(0) if backend == "nccl" else None
    device = dev.torch_device if dev else torch.device("cpu")
    return RankContext(0, 1, 0, backend, device, 1, dev)


if __name__ == "__main__":
    sys.exit(main())
