"""The KV cache a disaggregated deployment moves per request, from the prefill ranks that
computed it to the decode ranks that will read it, and how long that takes on the link between
them (issue #18 item 1).

Who sends what to whom follows the connectors that do it:
- GQA / MHA, heads sharded by TP. A rank of TP size t keeps KV heads
  [r K / t, (r + 1) K / t) when t <= K, or the single head r K // t when t > K (replicated):
  vLLM's `_physical_head_range` (vllm/distributed/kv_transfer/kv_connector/utils.py at
  18157ec2, also the rank layout of QKVParallelLinear). A decode rank receives exactly its own
  heads: with decode TP >= prefill TP from the one prefill rank d // (D/P) that holds them
  (`get_target_remote_ranks`, tp_ratio > 0), with prefill TP > decode TP from its P/D prefill
  ranks d P/D ... d P/D + P/D - 1, each sending its heads (tp_ratio < 0); heads replicated on
  the prefill side are read once (HeteroTPTransferConfig, same file). SGLang's Mooncake
  connector slices the same way (python/sglang/srt/disaggregation/mooncake/conn.py at
  d012942e, `send_kvcache_slice`: heads_per_decode_rank, src/dst head offsets).
- MLA: the latent (kv_lora_rank + rope dim per layer and token) is the same on every TP rank
  ("MLA is always replicated as the hidden dim can't be split", vLLM `replicates_kv_cache`),
  so every decode rank receives the whole latent, from one prefill rank: SGLang reads it from
  the first of its target prefill ranks and sends dummy requests to the others ("For MLA
  models, we can retrieve KVCache from only one prefill rank", disaggregation/common/conn.py;
  `send_kvcache` copies whole pages when is_mla_backend). Decode TP d therefore moves d
  copies; decode with attention data-parallel (TP 1 per DP rank) moves one.
- Pipeline stages: a decode stage receives its layers from the prefill stage(s) that hold
  them (TensorRT-LLM's cache layout transformation converts TP to PP layouts this way,
  docs/source/blogs/tech_blog/blog5_Disaggregated_Serving_in_TensorRT-LLM.md, Figure 8).
- Windowed layers send only the tokens they keep (LayerAttention.kv_tokens: the last W of a
  sliding window, as vLLM's NixlConnector transfers only a local-attention layer's window
  blocks, `block_window_per_layer`); linear-attention layers hold no per-token KV.

Time: every (prefill rank, decode rank) pair moves its share at once over its own path
(sizer/hardware/topology.py Topology.path: NVLink inside a node or NVLink domain, the NIC
otherwise), so the transfer lasts as long as its busiest endpoint: the decode rank that
receives the most, or the prefill rank that sends the most (a prefill rank serving D/P decode
ranks sends D/P slices). Each endpoint is priced as one send_recv of its bytes on its slowest
pair (sizer/cost/collectives.py: latency + bytes / the path's point-to-point bandwidth); a NIC
shared by the node (per-node NICs) carries every rank of the node that crosses it. The whole
request's KV is on the TTFT path: vLLM's NixlConnector pulls it after the prefill finishes, and
TensorRT-LLM overlaps one request's transfer with other requests' compute, not with its own
(blog5, "Overlap Optimization"). SGLang sends chunk by chunk, which hides all but the last
chunk's KV for prompts longer than one chunk; not modelled (sizer's figure is the upper bound).
"""

from dataclasses import dataclass

import numpy as np

from sizer.model.attention import FULL, LINEAR
from sizer.model.precision import kv_bytes_per_element
from sizer.model.split import Split, stage_layers


def rank_heads(tp: int, kv_heads: int, rank: int) -> range:
    """KV heads rank `rank` of a TP group of `tp` keeps (module docstring)."""
    if tp <= kv_heads:
        per = kv_heads // tp
        return range(rank * per, (rank + 1) * per)
    h = rank * kv_heads // tp
    return range(h, h + 1)


def source_ranks(prefill_tp: int, decode_tp: int, rank: int) -> list[int]:
    """The prefill TP ranks decode rank `rank` reads from, in order (vLLM
    get_target_remote_ranks): one when decode TP >= prefill TP, P/D of them otherwise."""
    if decode_tp >= prefill_tp:
        return [rank // (decode_tp // prefill_tp)]
    ratio = prefill_tp // decode_tp
    return [rank * ratio + i for i in range(ratio)]


@dataclass(frozen=True)
class Route:
    """One prefill rank's share of one decode rank's KV: (stage, TP rank) on each side and, per
    attention kind, the bytes one token costs over the layers and heads this pair moves."""

    prefill: tuple
    decode: tuple
    kinds: tuple  # ((LayerAttention, bytes per token), ...)

    def bytes(self, tokens) -> np.ndarray:
        t = np.asarray(tokens, dtype=float)
        return sum((per_token * kept_tokens(att, t) for att, per_token in self.kinds), np.zeros_like(t))


def kept_tokens(att, tokens) -> np.ndarray:
    """LayerAttention.kv_tokens over an array of sequence lengths."""
    t = np.asarray(tokens, dtype=float)
    if att.kind == FULL:
        return t
    if att.kind == LINEAR:
        return np.zeros_like(t)
    return np.minimum(t, float(att.window))


@dataclass(frozen=True)
class KVTransfer:
    """Every route of one request's KV from a prefill replica to a decode replica."""

    prefill: Split
    decode: Split
    routes: tuple
    mla: bool

    def _sum(self, tokens, key) -> dict:
        out: dict = {}
        for r in self.routes:
            k = key(r)
            out[k] = out.get(k, 0.0) + r.bytes(tokens)
        return out

    def bytes_per_request(self, tokens) -> np.ndarray:
        """Bytes on the wire for a request of `tokens` tokens, over all decode ranks."""
        return sum((r.bytes(tokens) for r in self.routes), np.zeros_like(np.asarray(tokens, dtype=float)))

    def decode_rank_bytes(self, tokens) -> dict:
        """(stage, TP rank) of the decode replica -> bytes it receives."""
        return self._sum(tokens, lambda r: r.decode)

    def prefill_rank_bytes(self, tokens) -> dict:
        """(stage, TP rank) of the prefill replica -> bytes it sends."""
        return self._sum(tokens, lambda r: r.prefill)

    @property
    def sources_per_decode_rank(self) -> int:
        seen: dict = {}
        for r in self.routes:
            seen.setdefault(r.decode, set()).add(r.prefill)
        return max((len(v) for v in seen.values()), default=0)

    def rule(self) -> str:
        p, d = self.prefill.tp, self.decode.tp
        if self.mla:
            return (f"MLA latent replicated on every TP rank: each of the {d} decode TP rank{'s' if d > 1 else ''} "
                    "receives the whole latent from one prefill rank (SGLang, vLLM connectors)")
        if d >= p:
            return f"decode TP{d} >= prefill TP{p}: each decode rank reads its KV heads from one prefill rank"
        return f"prefill TP{p} > decode TP{d}: each decode rank gathers its KV heads from {p // d} prefill ranks"


def kv_transfer(model, prefill: Split, decode: Split, kv_dtype: str) -> KVTransfer:
    """The routes of one request's KV (module docstring). `kv_dtype` is the resolved cache
    format (sizer.cost.memory.Precision.kv); prefill and decode must share it, as the
    connectors require (vLLM's NIXL compatibility hash covers the cache dtype)."""
    elem = kv_bytes_per_element(kv_dtype)
    per_head = (model.head_dim + model.v_head_dim) * elem
    latent = (model.kv_lora_rank + model.qk_rope_head_dim) * elem if model.is_mla else 0.0
    k_heads = model.num_kv_heads
    p_stages, d_stages = stage_layers(model, prefill.pp), stage_layers(model, decode.pp)
    routes = []
    for ds, d_layers in enumerate(d_stages):
        for ps, p_layers in enumerate(p_stages):
            lo, hi = max(d_layers.start, p_layers.start), min(d_layers.stop, p_layers.stop)
            if lo >= hi:
                continue
            groups = [(a, n) for a, n in model.attention_groups(range(lo, hi)) if a.kind != LINEAR]
            if not groups:
                continue
            for d in range(decode.tp):
                sources = source_ranks(prefill.tp, decode.tp, d)
                if model.is_mla:
                    routes.append(Route((ps, sources[0]), (ds, d), tuple((a, n * latent) for a, n in groups)))
                    continue
                need = list(rank_heads(decode.tp, k_heads, d))
                by_source: dict = {}
                for h in need:
                    src = next((p for p in sources if h in rank_heads(prefill.tp, k_heads, p)),
                               next(p for p in range(prefill.tp) if h in rank_heads(prefill.tp, k_heads, p)))
                    by_source[src] = by_source.get(src, 0) + 1
                for src, heads in by_source.items():
                    routes.append(Route((ps, src), (ds, d), tuple((a, n * heads * per_head) for a, n in groups)))
    return KVTransfer(prefill, decode, tuple(routes), model.is_mla)


def transfer_time(kvt: KVTransfer, tokens, topology, prefill_gpu: dict, decode_gpu: dict,
                  profile=None) -> np.ndarray:
    """Seconds to move one request's KV (module docstring, "Time"). `prefill_gpu` and
    `decode_gpu` map (stage, TP rank) of the sending and receiving replica to its GPU index in
    `topology`, which holds both pools."""
    from .collectives import collective_time

    t = np.asarray(tokens, dtype=float)
    if not kvt.routes:
        return np.zeros_like(t)
    net = topology.inter_node
    shared_nic = net is not None and net.per_node

    def crosses(a, b) -> bool:
        return topology.node_of(a) != topology.node_of(b)

    def endpoint(side, gpu_of, other_of) -> np.ndarray:
        load: dict = {}
        pairs: dict = {}
        for r in kvt.routes:
            me, peer = (r.prefill, r.decode) if side == "prefill" else (r.decode, r.prefill)
            a, b = gpu_of[me], other_of[peer]
            load[me] = load.get(me, 0.0) + r.bytes(t)
            pairs.setdefault(me, set()).add((a, b) if side == "prefill" else (b, a))
        if shared_nic:  # one NIC per node: every rank of the node that crosses it shares it
            per_node: dict = {}
            for me, ps in pairs.items():
                if any(crosses(a, b) for a, b in ps):
                    node = topology.node_of(gpu_of[me])
                    per_node[node] = per_node.get(node, 0.0) + load[me]
            for me, ps in pairs.items():
                if any(crosses(a, b) for a, b in ps):
                    load[me] = per_node[topology.node_of(gpu_of[me])]
        worst = np.zeros_like(t)
        for me, ps in pairs.items():
            for a, b in {path_key(a, b): (a, b) for a, b in ps}.values():
                key = (path_key(a, b), np.asarray(load[me], dtype=float).tobytes())
                if key not in memo:  # the same path class and bytes cost the same for every pair
                    memo[key] = np.asarray(collective_time("send_recv", load[me], (a, b), topology, profile).time_s,
                                           dtype=float)
                worst = np.maximum(worst, memo[key])
        return worst

    memo: dict = {}

    def path_key(a, b) -> tuple:
        return crosses(a, b), tuple(id(lk) for lk in topology.path(a, b))

    return np.maximum(endpoint("prefill", prefill_gpu, decode_gpu), endpoint("decode", decode_gpu, prefill_gpu))
