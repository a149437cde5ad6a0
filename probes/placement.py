"""Where the ranks run: a pure function of the environment, the visible GPUs and the flags.

`decide(environ, gpus, world_size, backend)` returns a `Launch` -- spawned locally or started by
torchrun (any env:// launcher), the backend, the world, the nodes, this process's CUDA device --
or raises LaunchError (exit 2) saying why the run cannot start. It reads nothing else, so every
launcher a user may have is a row of a table test (tests/test_placement.py):

* torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT
  (torch.distributed.run docs); env:// rendezvous needs the last two.
* The CUDA device of a process is LOCAL_RANK % visible GPUs: the same as LOCAL_RANK on a plain
  node (8 processes, 8 GPUs), and device 0 under launchers that show each process its own GPU
  (CUDA_VISIBLE_DEVICES per task: SLURM --gpus-per-task, some Kubernetes operators).
* NCCL whenever a GPU is visible; gloo CPU ranks otherwise. An explicit `--backend nccl` without
  a GPU, or with more local ranks than GPUs, is refused: NCCL refuses two ranks on one GPU.
* A locally spawned CPU world is bounded by this machine (MAX_CPU_RANKS_PER_CORE ranks a core):
  each rank is a process with its own torch.
"""

from dataclasses import dataclass, field

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
RENDEZVOUS_VARS = ("MASTER_ADDR", "MASTER_PORT")
MAX_CPU_RANKS_PER_CORE = 4
DEFAULT_CPU_WORLD = 2


class LaunchError(RuntimeError):
    """The run cannot start as asked (no GPUs for NCCL, bad world size, half a torchrun env)."""

    exit_code = 2


@dataclass(frozen=True)
class Launch:
    """How this run's ranks are placed. `rank`, `local_rank` and `device_index` describe this
    process under torchrun; a spawned run places rank r on `device_for(r)`."""

    mode: str                 # "spawn" | "torchrun"
    backend: str              # "nccl" | "gloo"
    world_size: int
    local_world_size: int
    nodes: int
    gpus: int                 # CUDA devices this process sees
    rank: int | None = None
    local_rank: int | None = None
    device_index: int | None = None
    notes: tuple = field(default=())

    @property
    def torchrun(self) -> bool:
        return self.mode == "torchrun"

    @property
    def is_rank0(self) -> bool:
        return self.rank in (None, 0)

    def device_for(self, local_rank: int):
        """The CUDA index of local rank `local_rank` (None on CPU ranks)."""
        return local_rank % self.gpus if self.backend == "nccl" else None


def max_cpu_ranks(cpu_count: int) -> int:
    return MAX_CPU_RANKS_PER_CORE * max(1, cpu_count)


def _int_var(environ, name: str) -> int:
    text = environ.get(name, "")
    try:
        value = int(text)
    except ValueError:
        raise LaunchError(f"{name}={text!r} is not an integer (set by the launcher)") from None
    return value


def _torchrun(environ, gpus, world_size, backend, nccl_ok) -> Launch:
    missing = [k for k in RENDEZVOUS_VARS if not environ.get(k)]
    if missing:
        raise LaunchError(f"{' and '.join(missing)} not set: env:// rendezvous needs MASTER_ADDR "
                          "and MASTER_PORT (torchrun sets them; with another launcher export them)")
    rank, world, local = (_int_var(environ, k) for k in TORCHRUN_VARS)
    local_world = (_int_var(environ, "LOCAL_WORLD_SIZE") if environ.get("LOCAL_WORLD_SIZE")
                   else world)
    if world < 1 or not 0 <= rank < world or not 0 <= local < local_world or local_world > world:
        raise LaunchError(f"inconsistent launcher variables: RANK={rank} WORLD_SIZE={world} "
                          f"LOCAL_RANK={local} LOCAL_WORLD_SIZE={local_world}")
    if world_size is not None and world_size != world:
        raise LaunchError(f"--world-size {world_size}, but the launcher started {world} ranks "
                          "(under torchrun leave --world-size out)")
    notes = []
    if backend is None:
        backend = "nccl" if gpus >= 1 and nccl_ok else "gloo"
        if backend == "gloo" and gpus >= 1:
            notes.append("this torch has no NCCL: CPU ranks over gloo")
    if backend == "nccl":
        if gpus == 0:
            raise LaunchError("--backend nccl but this process sees no CUDA device "
                              "(check CUDA_VISIBLE_DEVICES)")
        if not nccl_ok:
            raise LaunchError("--backend nccl but this torch was built without NCCL")
        if gpus < local_world:
            notes.append(f"{gpus} visible GPU(s) for {local_world} local ranks: taking each "
                         "process to see its own GPUs (CUDA_VISIBLE_DEVICES per task); device = "
                         "LOCAL_RANK % visible GPUs")
    device = local % gpus if backend == "nccl" else None
    nodes = max(1, world // max(1, local_world))
    return Launch("torchrun", backend, world, local_world, nodes, gpus, rank, local, device,
                  tuple(notes))


def _spawn(gpus, world_size, backend, nccl_ok, cpu_count) -> Launch:
    notes = []
    if world_size is None:
        if gpus == 0:
            if backend != "gloo":
                raise LaunchError("no GPUs found; use --backend gloo --world-size N")
            world_size = DEFAULT_CPU_WORLD
        else:
            world_size = gpus
    if world_size < 1:
        raise LaunchError(f"--world-size must be >= 1, got {world_size}")
    if backend is None:
        if gpus >= world_size and nccl_ok:
            backend = "nccl"
        else:
            backend = "gloo"
            if gpus >= 1:
                why = ("this torch has no NCCL" if gpus >= world_size else
                       f"{gpus} GPU(s) visible for {world_size} ranks and NCCL needs one GPU "
                       f"per rank; --world-size {gpus} runs on the GPUs")
                notes.append(f"falling back to CPU ranks over gloo: {why}")
    if backend == "nccl":
        if gpus == 0:
            raise LaunchError("no GPUs found; use --backend gloo --world-size N")
        if not nccl_ok:
            raise LaunchError("--backend nccl but this torch was built without NCCL")
        if world_size > gpus:
            raise LaunchError(f"nccl needs one GPU per rank: {world_size} ranks, {gpus} GPUs "
                              "(NCCL refuses two ranks on one GPU)")
    elif world_size > max_cpu_ranks(cpu_count):
        raise LaunchError(f"--world-size {world_size}: at most {max_cpu_ranks(cpu_count)} CPU "
                          f"ranks here ({MAX_CPU_RANKS_PER_CORE} a core on {max(1, cpu_count)} "
                          "cores; each rank is a process)")
    return Launch("spawn", backend, world_size, world_size, 1, gpus, notes=tuple(notes))


def decide(environ, gpus: int, world_size: int | None = None, backend: str | None = None,
           nccl_ok: bool = True, cpu_count: int = 1) -> Launch:
    """The Launch for this process, or LaunchError. `environ` is os.environ or a dict; `gpus`
    the CUDA devices visible (probes.device.visible_gpus); `world_size`/`backend` the flags
    (None: not given); `nccl_ok` whether this torch has NCCL; `cpu_count` this machine's."""
    if backend not in (None, "gloo", "nccl"):
        raise LaunchError(f"unknown backend {backend!r} (use nccl or gloo)")
    present = [k for k in TORCHRUN_VARS if k in environ]
    if present and len(present) < len(TORCHRUN_VARS):
        absent = [k for k in TORCHRUN_VARS if k not in environ]
        raise LaunchError(f"{', '.join(present)} set but {', '.join(absent)} not: start with "
                          "torchrun, or unset them to spawn the ranks here")
    if present:
        return _torchrun(environ, gpus, world_size, backend, nccl_ok)
    return _spawn(gpus, world_size, backend, nccl_ok, cpu_count)


def process_group_timeout_s(run_timeout_s: float) -> float:
    """The process group's own timeout: longer than the run's deadline, so that NCCL's watchdog
    never kills a healthy rank that waits inside NCCL (a sub-group sweep it is not in, the pairs
    of the P2P matrix) before the run's --timeout decides; the deadline stops a real hang."""
    return max(2.0 * run_timeout_s, run_timeout_s + 600.0)
