"""NCCL's rules, checked where NCCL is not: a wrapper over torch.distributed for CPU runs.

gloo forgives what NCCL does not: a tensor on the wrong device, a non-contiguous view, a dtype
NCCL has no type for -- and ranks that issue different collectives on one group, which NCCL
answers with a hang until the watchdog fires. `install(device)` wraps every torch.distributed
call the probes make so that, in a gloo or fake-process-group run,

* every tensor handed to a collective or P2P op is on the rank's `device`, contiguous, and of a
  dtype in NCCL_DTYPES (ProcessGroupNCCL.cpp: check_gpu_single_tensor -- "Tensors must be
  CUDA and dense" / contiguous -- and the ncclDataType map), else StrictError;
* each call is appended to the recorder's `events`: ("coll", group ranks, op, signature) or
  ("p2p", [(send|recv, peer, elements), ...]).

`same_sequences(logs)` then checks that every member of every group issued the same sequence
of collectives there, and `lockstep(logs)` replays all ranks' logs under NCCL's blocking
semantics (a collective completes when every member of its group is at it; sends and receives
when their peers are) and names the first rank and call where the run would hang.

PROBES_STRICT=1 turns the checks on in every rank of a real run (probes/launch.py), and
PROBES_TRACE_DIR=DIR makes each rank write its events to DIR/rank<N>.json at the end.
"""

import json
import os

import torch
import torch.distributed as dist

NCCL_DTYPES = {torch.int8, torch.uint8, torch.int32, torch.int64, torch.float16, torch.float32,
               torch.float64, torch.bfloat16, torch.bool,
               getattr(torch, "float8_e4m3fn", torch.uint8), getattr(torch, "float8_e5m2", torch.uint8)}

# name -> positions (in args) of the tensors the call hands to the backend
COLLECTIVES = {"all_reduce": (0,), "all_gather_into_tensor": (0, 1), "all_gather_single": (0, 1),
               "reduce_scatter_tensor": (0, 1), "reduce_scatter_single": (0, 1),
               "all_to_all_single": (0, 1), "broadcast": (0,), "barrier": ()}
P2P = {"send": "send", "recv": "recv"}
OBJECT_COLLECTIVES = ("gather_object", "all_gather_object")


class StrictError(RuntimeError):
    """A distributed call NCCL would refuse (or hang on)."""


def _group_ranks(group) -> tuple:
    if group is None or group is dist.group.WORLD:
        return tuple(range(dist.get_world_size()))
    return tuple(dist.get_process_group_ranks(group))


def check_tensor(t, device, where: str) -> None:
    """Raise StrictError unless `t` is a dense, contiguous tensor on `device` of an NCCL dtype."""
    if not isinstance(t, torch.Tensor):
        raise StrictError(f"{where}: not a tensor ({type(t).__name__})")
    if t.device != torch.device(device):
        raise StrictError(f"{where}: tensor on {t.device}, the rank's device is {device}")
    if t.layout != torch.strided or not t.is_contiguous():
        raise StrictError(f"{where}: tensor is not dense and contiguous (shape {tuple(t.shape)}, "
                          f"stride {t.stride()})")
    if t.dtype not in NCCL_DTYPES:
        raise StrictError(f"{where}: dtype {t.dtype} has no NCCL type")


def _signature(name, args, kwargs):
    """What must agree across the members of a group for this call."""
    if name == "all_reduce":
        return [name, str(args[0].dtype), args[0].numel()]
    if name in ("all_gather_into_tensor", "all_gather_single"):
        return ["all_gather", str(args[1].dtype), args[1].numel()]
    if name in ("reduce_scatter_tensor", "reduce_scatter_single"):
        return ["reduce_scatter", str(args[0].dtype), args[0].numel()]
    if name == "broadcast":
        return [name, str(args[0].dtype), args[0].numel(), kwargs.get("src", args[1] if len(args) > 1 else None)]
    if name == "all_to_all_single":
        return [name, str(args[1].dtype)]  # split sizes differ by rank by design
    return [name]


class Recorder:
    """The wrappers' state: the rank's device, the events, the originals to restore."""

    def __init__(self, device, record: bool = True):
        self.device, self.record, self.events, self.saved = torch.device(device), record, [], {}

    def _log(self, event):
        if self.record:
            self.events.append(event)

    def wrap_collective(self, name, positions, fn):
        def call(*args, **kwargs):
            for i in positions:
                if i < len(args):
                    check_tensor(args[i], self.device, f"{name} argument {i}")
            group = kwargs.get("group")
            if group is None and name == "all_to_all_single" and len(args) > 4:
                group = args[4]
            self._log(["coll", list(_group_ranks(group)), *_signature(name, args, kwargs)])
            return fn(*args, **kwargs)
        return call

    def wrap_p2p(self, kind, fn):
        def call(tensor, peer=None, group=None, *args, **kwargs):
            check_tensor(tensor, self.device, kind)
            self._log(["p2p", [[kind, int(peer), tensor.numel()]]])
            return fn(tensor, peer, group, *args, **kwargs)
        return call

    def wrap_batch(self, fn):
        def call(p2p_op_list):
            ops = []
            for op in p2p_op_list:
                check_tensor(op.tensor, self.device, "batch_isend_irecv")
                kind = "send" if getattr(op.op, "__name__", "") == "isend" else "recv"
                peer = op.peer if op.peer is not None else \
                    dist.get_global_rank(op.group, op.group_peer)
                ops.append([kind, int(peer), op.tensor.numel()])
            self._log(["p2p", ops])
            return fn(p2p_op_list)
        return call

    def wrap_new_group(self, fn):
        def call(ranks=None, *args, **kwargs):
            self._log(["coll", list(range(dist.get_world_size())), "new_group",
                       sorted(ranks) if ranks is not None else None])
            return fn(ranks, *args, **kwargs)
        return call

    def wrap_object(self, name, fn):
        def call(*args, **kwargs):
            self._log(["coll", list(_group_ranks(kwargs.get("group"))), name])
            return fn(*args, **kwargs)
        return call

    def dump(self, folder: str, rank: int) -> None:
        with open(os.path.join(folder, f"rank{rank}.json"), "w", encoding="utf-8") as fh:
            json.dump(self.events, fh)


def install(device, record: bool = True) -> Recorder:
    """Wrap torch.distributed's calls (see the module docstring); `uninstall` undoes it."""
    rec = Recorder(device, record)
    for name, positions in COLLECTIVES.items():
        fn = getattr(dist, name, None)
        if fn is not None:
            rec.saved[name] = fn
            setattr(dist, name, rec.wrap_collective(name, positions, fn))
    for name, kind in P2P.items():
        rec.saved[name] = getattr(dist, name)
        setattr(dist, name, rec.wrap_p2p(kind, rec.saved[name]))
    rec.saved["batch_isend_irecv"] = dist.batch_isend_irecv
    dist.batch_isend_irecv = rec.wrap_batch(dist.batch_isend_irecv)
    rec.saved["new_group"] = dist.new_group
    dist.new_group = rec.wrap_new_group(dist.new_group)
    for name in OBJECT_COLLECTIVES:
        rec.saved[name] = getattr(dist, name)
        setattr(dist, name, rec.wrap_object(name, rec.saved[name]))
    return rec


def uninstall(rec: Recorder) -> None:
    for name, fn in rec.saved.items():
        setattr(dist, name, fn)


def from_environment(device):
    """install(device) when PROBES_STRICT is set (recording when PROBES_TRACE_DIR is)."""
    if not os.environ.get("PROBES_STRICT"):
        return None
    return install(device, record=bool(os.environ.get("PROBES_TRACE_DIR")))


def load_logs(folder: str) -> dict:
    logs = {}
    for name in os.listdir(folder):
        if name.startswith("rank") and name.endswith(".json"):
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                logs[int(name[4:-5])] = json.load(fh)
    return logs


def same_sequences(logs: dict) -> list[str]:
    """Problems: a group whose members issued different collective sequences on it."""
    per_group = {}
    for rank, events in logs.items():
        for e in events:
            if e[0] == "coll":
                per_group.setdefault(tuple(e[1]), {}).setdefault(rank, []).append(tuple(
                    map(lambda v: tuple(v) if isinstance(v, list) else v, e[2:])))
    problems = []
    for group, seqs in sorted(per_group.items()):
        missing = [r for r in group if r not in seqs and r in logs]
        if missing:
            problems.append(f"group {list(group)}: rank(s) {missing} issue nothing on it")
        ranks = sorted(seqs)
        ref = seqs[ranks[0]]
        for r in ranks[1:]:
            if seqs[r] != ref:
                i = next((k for k, (a, b) in enumerate(zip(ref, seqs[r])) if a != b),
                         min(len(ref), len(seqs[r])))
                a = ref[i] if i < len(ref) else "(nothing)"
                b = seqs[r][i] if i < len(seqs[r]) else "(nothing)"
                problems.append(f"group {list(group)} call {i}: rank {ranks[0]} issues {a}, "
                                f"rank {r} issues {b}")
                break
    return problems


def lockstep(logs: dict) -> list[str]:
    """Replay every rank's events with NCCL's blocking semantics; [] when the run completes,
    else one line naming the calls the stuck ranks wait in (the hang)."""
    heads = {r: 0 for r in logs}

    def head(r):
        return logs[r][heads[r]] if heads[r] < len(logs[r]) else None

    while True:
        moved = False
        for r in logs:  # collectives: every member at the same call on the same group
            e = head(r)
            if e is None or e[0] != "coll":
                continue
            members = e[1]
            if all(m in logs and head(m) is not None and head(m)[0] == "coll"
                   and head(m)[1] == members for m in members):
                sigs = {m: head(m)[2:] for m in members}
                if any(s != sigs[members[0]] for s in sigs.values()):
                    return [f"group {members}: ranks disagree on the call: "
                            + "; ".join(f"rank {m}: {s}" for m, s in sorted(sigs.items()))]
                for m in members:
                    heads[m] += 1
                moved = True
        ready = {r for r in logs if head(r) is not None and head(r)[0] == "p2p"}
        changed = True
        while changed:  # P2P: the largest set of batches whose every op has its counterpart
            changed = False
            for r in list(ready):
                for kind, peer, n in head(r)[1]:
                    want = ["recv" if kind == "send" else "send", r, n]
                    if peer not in ready or want not in head(peer)[1]:
                        ready.discard(r)
                        changed = True
                        break
        for r in ready:
            heads[r] += 1
            moved = True
        if all(head(r) is None for r in logs):
            return []
        if not moved:
            stuck = [f"rank {r} waits in {head(r)}" for r in sorted(logs) if head(r) is not None]
            return ["hang: " + "; ".join(stuck[:6]) + (" ..." if len(stuck) > 6 else "")]
