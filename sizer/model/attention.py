"""What each decoder layer attends to: one representation of a layer's attention kind.

A layer is full attention (every earlier token), sliding-window attention over the last W tokens
(Mistral, Gemma 2/3, gpt-oss), chunked local attention over its own chunk of C tokens (Llama 4's
RoPE layers), or linear attention / a state-space layer with a fixed-size state and no per-token
KV (Qwen3-Next's `linear_attention` layers). `rope` says whether the layer applies rotary
position embeddings (Llama 4's NoPE layers do not). Memory (sizer/cost/memory.py), the engines'
KV managers (sizer/cost/kv_cache.py), step time and the simulator all read this one tuple.

Config dialects, each read as the architecture's Hugging Face config class reads it
(transformers v4.56, `models/<arch>/configuration_<arch>.py`):
- `layer_types`: a list with one of "full_attention" / "sliding_attention" /
  "chunked_attention" / "linear_attention" per layer (gpt-oss, Gemma 3, Qwen3-Next);
- `sliding_window` + `sliding_window_pattern` P (Gemma 3): layer i slides unless (i+1) % P == 0;
- Gemma 2: even layers slide (`is_sliding = not bool(layer_idx % 2)`, modeling_gemma2.py);
- `use_sliding_window` + `max_window_layers` (Qwen2/Qwen3): layers i >= max_window_layers slide;
- Mistral/Mixtral: a non-null `sliding_window` applies to every layer;
- `attention_chunk_size` + `no_rope_layers` / `no_rope_layer_interval` (Llama 4): layers with
  RoPE use chunked attention, NoPE layers (`no_rope_layers[i] == 0`, by default every 4th) are
  full attention (vllm/model_executor/models/llama4.py: `use_chunked_local_attn = not nope`).
"""

from dataclasses import dataclass

from sizer.errors import InputError

FULL, SLIDING, CHUNKED, LINEAR = "full", "sliding", "chunked", "linear"
KINDS = (FULL, SLIDING, CHUNKED, LINEAR)


@dataclass(frozen=True)
class LayerAttention:
    """One layer's attention: kind, its window W or chunk C in tokens (0 for full), RoPE or not."""

    kind: str = FULL
    window: int = 0
    rope: bool = True

    def label(self) -> str:
        what = {FULL: "full", SLIDING: f"sliding window {self.window:,}",
                CHUNKED: f"chunked {self.window:,}", LINEAR: "linear (no per-token KV)"}[self.kind]
        return what + ("" if self.rope else ", no RoPE")

    def kv_tokens(self, context: int) -> int:
        """Tokens of one sequence of `context` tokens this layer keeps in its KV cache: all of
        them (full), the last W (sliding), at most one chunk (chunked: a query never looks
        before its chunk's start), none (linear: a fixed state, not per-token KV)."""
        if self.kind == FULL:
            return context
        if self.kind == LINEAR:
            return 0
        return min(context, self.window)

    def decode_keys(self, context: int) -> float:
        """Keys one new token reads at KV length `context`: all (full), min(context, W)
        (sliding), the tokens of its own chunk (chunked: (context - 1) % C + 1, which over the
        C positions of a chunk averages (C + 1) / 2, the figure used once context > C)."""
        if self.kind == FULL:
            return float(context)
        if self.kind == LINEAR:
            return 0.0
        if self.kind == SLIDING or context <= self.window:
            return float(min(context, self.window))
        return (self.window + 1) / 2.0


FULL_LAYER = LayerAttention()

_TYPE_NAMES = {"full_attention": FULL, "global_attention": FULL, "attention": FULL, "full": FULL,
               "sliding_attention": SLIDING, "sliding_window_attention": SLIDING, "local": SLIDING,
               "sliding": SLIDING, "chunked_attention": CHUNKED, "chunked": CHUNKED,
               "linear_attention": LINEAR, "mamba": LINEAR, "linear": LINEAR}


def layer_attention(cfg: dict, arch: str, layers: int, path: str) -> tuple:
    """The LayerAttention of each of `layers` layers from a validated config dict (see the
    module docstring for the dialects). InputError on a window the layers need but lack."""
    window = cfg.get("sliding_window")
    types = cfg.get("layer_types")
    if types:
        if len(types) != layers:
            raise InputError(f"{path}: layer_types has {len(types)} entries for {layers} layers")
        kinds = []
        for t in types:
            kind = _TYPE_NAMES.get(str(t).lower())
            if kind is None:
                raise InputError(f"{path}: layer_types entry {t!r} is not an attention kind "
                                 f"sizer knows ({', '.join(sorted(_TYPE_NAMES))})")
            kinds.append(kind)
        if SLIDING in kinds and not window:
            raise InputError(f"{path}: layer_types has sliding layers but no sliding_window")
        chunk = cfg.get("attention_chunk_size")
        if CHUNKED in kinds and not chunk:
            raise InputError(f"{path}: layer_types has chunked layers but no attention_chunk_size")
        return tuple(_intern(k, window if k == SLIDING else chunk if k == CHUNKED else 0, True)
                     for k in kinds)
    if cfg.get("attention_chunk_size"):  # Llama 4
        rope = _llama4_rope_layers(cfg, layers, path)
        chunk = cfg["attention_chunk_size"]
        return tuple(_intern(CHUNKED, chunk, True) if r else _intern(FULL, 0, False) for r in rope)
    if not window or cfg.get("use_sliding_window") is False:
        return (FULL_LAYER,) * layers
    if arch == "gemma2":
        return tuple(_intern(SLIDING, window, True) if i % 2 == 0 else FULL_LAYER
                     for i in range(layers))
    if cfg.get("sliding_window_pattern"):
        p = cfg["sliding_window_pattern"]
        return tuple(FULL_LAYER if (i + 1) % p == 0 else _intern(SLIDING, window, True)
                     for i in range(layers))
    if cfg.get("max_window_layers") is not None and arch not in ("mistral", "mixtral"):
        start = cfg["max_window_layers"]  # Qwen2-style: layers at or above it use the window
        return tuple(_intern(SLIDING, window, True) if i >= start else FULL_LAYER
                     for i in range(layers))
    return (_intern(SLIDING, window, True),) * layers


def _llama4_rope_layers(cfg: dict, layers: int, path: str) -> list:
    """Llama4TextConfig: `no_rope_layers[i]` is 1 where layer i uses RoPE; an empty list means
    every `no_rope_layer_interval`-th layer (default 4) is NoPE."""
    given = cfg.get("no_rope_layers")
    if given:
        if len(given) != layers:
            raise InputError(f"{path}: no_rope_layers has {len(given)} entries for {layers} layers")
        return [bool(v) for v in given]
    interval = cfg.get("no_rope_layer_interval") or 4
    return [(i + 1) % interval != 0 for i in range(layers)]


_INTERNED: dict = {}


def _intern(kind: str, window: int, rope: bool) -> LayerAttention:
    """One shared object per distinct kind, so a 10,000-layer tuple holds a few objects."""
    key = (kind, int(window or 0), rope)
    if key not in _INTERNED:
        _INTERNED[key] = FULL_LAYER if key == (FULL, 0, True) else LayerAttention(*key)
    return _INTERNED[key]


def group_counts(kinds: tuple, layers: range) -> list:
    """[(LayerAttention, count)] of the layers in `layers`, in order of first appearance."""
    counts: dict = {}
    for k in kinds[layers.start:layers.stop] if kinds else ():
        counts[k] = counts.get(k, 0) + 1
    if not kinds:
        counts[FULL_LAYER] = len(layers)
    return list(counts.items())
