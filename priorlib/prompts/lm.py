"""A frozen causal LM with soft and/or deep prompts: loss on answer tokens, cached greedy decoding."""
from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from .. import arch
from ..batching import IGNORE
from ..hooks import Trace
from .deep import DeepPrompt, DeepPromptConfig
from .soft import SoftPrompt, SoftPromptConfig



class PromptedLM(nn.Module):
    """Wraps a frozen ``*ForCausalLM``; only the prompt tensors are parameters of this module.

    The model is held by reference (not registered as a submodule), so ``parameters()`` and
    ``state_dict()`` hold prompts only, and the model is shared, never copied.
    """

    def __init__(self, model: nn.Module, soft: SoftPrompt | None = None, deep: DeepPrompt | None = None,
                 bos_ids: tuple[int, ...] = ()):
        super().__init__()
        if soft is None and deep is None:
            raise ValueError("PromptedLM needs a soft prompt, a deep prompt, or both")
        if deep is not None and deep.config.mode.value == "carry" and soft is None:
            raise ValueError("deep mode 'carry' needs the token-level soft prompt")
        if soft is not None and deep is not None and soft.n_tokens != deep.n_tokens and deep.config.mode.value == "carry":
            raise ValueError("carry mode needs the same n_tokens for soft and deep prompts")
        object.__setattr__(self, "model", model)  # not a submodule: frozen and shared
        self.soft = soft
        self.deep = deep
        self.bos_ids = tuple(int(i) for i in bos_ids)  # put in front of everything (see batching.bos_ids)
        model.requires_grad_(False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, model: nn.Module, *, method: str = "soft", n_tokens: int = 20, deep_layers=(-3, -2, -1),
              deep_mode: str = "cut", token_prompt: bool = True, soft_init: torch.Tensor | None = None,
              deep_init: dict[int, torch.Tensor] | None = None, bos_ids: tuple[int, ...] = ()) -> "PromptedLM":
        """``bos_ids``: the model's BOS token(s), which then sit at position 0, before the soft prompt."""
        d = arch.d_model(model)
        if method == "soft":
            return cls(model, SoftPrompt(SoftPromptConfig(n_tokens), d, soft_init), bos_ids=bos_ids)
        if method == "deep":
            cfg = DeepPromptConfig(n_tokens, tuple(deep_layers), deep_mode, token_prompt)
            soft = SoftPrompt(SoftPromptConfig(n_tokens), d, soft_init) if token_prompt else None
            return cls(model, soft, DeepPrompt(cfg, model, deep_init), bos_ids=bos_ids)
        raise ValueError(f"method must be 'soft' or 'deep', got {method!r}")

    @property
    def n_prefix(self) -> int:
        """Positions in front of the text at the input: the BOS token(s), then the soft prompt."""
        return len(self.bos_ids) + (self.soft.n_tokens if self.soft is not None else 0)

    # ------------------------------------------------------------------ prompt tensors
    def prompt_tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        if self.soft is not None:
            out["soft"] = self.soft.weight
        if self.deep is not None:
            for i in self.deep.layer_ids:
                out[f"deep.{i}"] = self.deep.block(i)
        return out

    @torch.no_grad()
    def load_prompt_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        mine = self.prompt_tensors()
        if set(mine) != set(tensors):
            raise ValueError(f"prompt tensors {sorted(tensors)} do not match this model's {sorted(mine)}")
        for k, v in tensors.items():
            mine[k].copy_(v)

    # ------------------------------------------------------------------ forward
    def attached(self):
        if self.deep is None:
            return nullcontext()
        return self.deep.attached(self.model, start=len(self.bos_ids))  # "carry" goes after the BOS row(s)

    def input_embeds(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``[BOS] + soft prompt + text``: ``[B, P + T, d]``."""
        emb = arch.embed(self.model)
        x = emb(input_ids)  # [B, T, d]
        if self.soft is not None:
            x = self.soft.prepend(x)  # [B, n + T, d]
        if self.bos_ids:
            bos = emb(torch.tensor(self.bos_ids, device=input_ids.device))  # [b, d]
            x = torch.cat([bos.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1), x], dim=1)
        return x

    def hidden(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Final-normed hidden states ``[B, P + T, d]`` (right padding needs no mask: attention is causal)."""
        with self.attached():
            return arch.backbone(self.model)(inputs_embeds=self.input_embeds(input_ids), use_cache=False).last_hidden_state

    def answer_loss(self, input_ids: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Summed cross-entropy over answer tokens and their count.

        ``labels [B, T]`` is ``-100`` except at answer tokens. Hidden state ``P + t - 1`` predicts token
        ``t``; the LM head runs only on those rows, flattened to 2-D (a 3-D strided slice would make
        the head copy its weight per sequence).
        """
        return self.loss_from_hidden(self.hidden(input_ids), labels)

    def loss_from_hidden(self, h: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The answer-token loss given final-normed hidden states ``h [B, P + T, d]``."""
        logits, target = self.answer_logits(h, labels)
        return F.cross_entropy(logits, target, reduction="sum"), len(target)

    def answer_logits(self, h: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits [N, V] float32, targets [N])`` at the N answer tokens of ``labels``."""
        B, L, d = h.shape
        b, t = (labels != IGNORE).nonzero(as_tuple=True)
        if len(b) == 0:
            raise ValueError("batch has no answer tokens")
        if (t == 0).any():
            raise ValueError("an answer token at position 0 has no context to be predicted from")
        rows = h.reshape(B * L, d).index_select(0, b * L + self.n_prefix + t - 1)  # [N, d]
        return arch.lm_head(self.model)(rows).float(), labels[b, t]

    @torch.no_grad()
    def answer_scores(self, input_ids: torch.Tensor, labels: torch.Tensor) -> tuple[float, int, int]:
        """``(summed loss, answer tokens, tokens whose greedy prediction is the gold token)`` under
        teacher forcing: the token accuracy counts each answer token given the gold ones before it."""
        logits, target = self.answer_logits(self.hidden(input_ids), labels)
        loss = F.cross_entropy(logits, target, reduction="sum")
        return float(loss), len(target), int((logits.argmax(-1) == target).sum())

    # ------------------------------------------------------------------ frozen-prefix cache
    def lower_layers_frozen_below(self) -> int:
        """Index of the lowest layer whose input depends on a prompt. Everything below it is a pure
        function of the text: with deep prompts only ("cut", no token prompt) it is the lowest deep layer."""
        if self.soft is not None or self.deep is None:
            return 0
        return min(self.deep.layer_ids)

    @torch.no_grad()
    def frozen_states(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Input of layer :meth:`lower_layers_frozen_below`, ``[B, T, d]``: compute once, reuse every epoch."""
        k = self.lower_layers_frozen_below()
        with Trace(self.model, [f"layers.{k}.resid_pre"], stop=True) as tr:
            tr.run(inputs_embeds=self.input_embeds(input_ids))  # the text, after the BOS token if any
        return tr[f"layers.{k}.resid_pre"]

    def hidden_from_states(self, states: torch.Tensor) -> torch.Tensor:
        """Final-normed hidden states from cached :meth:`frozen_states`, running only the top layers."""
        k = self.lower_layers_frozen_below()
        if k == 0:
            raise ValueError("a token-level prompt reaches every layer: nothing below it can be cached")
        B, T, _ = states.shape
        window = arch.sliding_window(self.model)
        if window is not None and T > window:
            raise ValueError(f"cached deep prompts build a plain causal mask; {T} positions exceed the model's "
                             f"sliding window of {window}")
        pos = torch.arange(T, device=states.device)[None]  # [1, T]
        mask = None  # sdpa: causal by itself (right padding never reaches a real token)
        if self.model.config._attn_implementation != "sdpa":
            tri = torch.ones(T, T, dtype=torch.bool, device=states.device).tril()
            mask = torch.where(tri, 0.0, torch.finfo(states.dtype).min).to(states.dtype)[None, None]
        h = states
        with self.attached():
            rope: dict = {}  # one (cos, sin) per rotary embedding, shared by the layers that use it
            for i, layer in enumerate(arch.layers(self.model)[k:], start=k):
                kind = arch.rope_kind(self.model, i)
                if kind not in rope:
                    rope[kind] = arch.rope_for(self.model, i)(states, pos)
                h = layer(h, attention_mask=mask, position_ids=pos, position_embeddings=rope[kind])
                h = h[0] if isinstance(h, tuple) else h
        return arch.final_norm(self.model)(h)

    def decode_cache(self):
        """An empty key/value cache for :meth:`generate` and :meth:`generate_batch` (see ``decoding.PromptCache``).

        HF sizes each attention type's mask from the first layer of that type. Where a deep "cut" layer
        shares its type with a layer holding no block, that size must leave the block out, else the other
        layer gets a mask wider than its keys. Where every layer of a type holds the block, HF's own
        sizing (extra columns masked at the end, which each deep layer trims) is kept as it is.
        """
        from .decoding import PromptCache
        front = self.deep.cached_in_front() if self.deep is not None else {}
        types = getattr(self.model.config, "layer_types", None) or ["full_attention"] * arch.n_layers(self.model)
        mixed = {t for i, t in enumerate(types) if i not in front}  # types with a layer that holds no block
        return PromptCache(self.model.config, {i: k for i, k in front.items() if types[i] in mixed})

    def decode_mask(self, keep: torch.Tensor | None, pos: torch.Tensor, n_query: int, dtype: torch.dtype):
        """The backbone's ``attention_mask`` for a decoding call: ``keep [B, K]`` (the text's 2-D mask, None:
        no padding) while the ``K`` columns fit in the sliding window (HF builds the layers' masks from it,
        and counting columns is then the same as counting positions); past the window, one 4-D mask per
        layer type, by position (``decoding.masks_by_position``). ``pos [B, K]``: each column's position."""
        window = arch.sliding_window(self.model)
        if window is None or pos.shape[1] <= window:
            return keep
        from .decoding import masks_by_position
        if keep is None:
            keep = torch.ones(pos.shape, dtype=torch.long, device=pos.device)
        return masks_by_position(self.model.config, keep, pos, n_query, window, dtype)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, max_new_tokens: int = 16, stop_ids=()) -> list[int]:
        """Greedy continuation of one sequence ``[T]`` with a key/value cache."""
        body, head = arch.backbone(self.model), arch.lm_head(self.model)
        dev = input_ids.device
        stop = set(int(s) for s in stop_ids)
        out_ids: list[int] = []
        cache = self.decode_cache()
        with self.attached():
            x = self.input_embeds(input_ids[None])  # [1, P + T, d]
            pos = x.shape[1]
            cols = torch.arange(pos, device=dev)[None]  # [1, P + T]: every column's position
            h = body(inputs_embeds=x, attention_mask=self.decode_mask(None, cols, pos, x.dtype), cache=cache,
                     use_cache=True, position_ids=cols).last_hidden_state
            for _ in range(max_new_tokens):
                nxt = int(head(h[:, -1]).argmax(-1))
                if nxt in stop:
                    break
                out_ids.append(nxt)
                x = arch.embed(self.model)(torch.tensor([[nxt]], device=dev))
                cols = torch.arange(pos + 1, device=dev)[None]  # [1, pos + 1]
                h = body(inputs_embeds=x, attention_mask=self.decode_mask(None, cols, 1, x.dtype), cache=cache,
                         use_cache=True, position_ids=torch.tensor([[pos]], device=dev)).last_hidden_state
                pos += 1
        return out_ids

    @torch.no_grad()
    def generate_batch(self, seqs: list[torch.Tensor], max_new_tokens: int = 16, stop_ids=(),
                       pad_id: int = 0) -> list[list[int]]:
        """Greedy continuations of several sequences at once, equal to :meth:`generate` on each.

        Rows are laid out ``[prompt | padding | tokens]``: padding sits *between* the prompt and the
        text, masked out, and positions count only real rows, so every real position sees exactly what
        it would see alone, and no query is left with nothing to attend to. A sliding window counts
        positions too (:meth:`decode_mask`), so a short row beside a long one keeps its BOS and prompt.
        """
        return self.score_and_generate(seqs, None, max_new_tokens, stop_ids, pad_id)[1]

    @torch.no_grad()
    def score_and_generate(self, seqs: list[torch.Tensor], targets: list[torch.Tensor] | None,
                           max_new_tokens: int = 16, stop_ids=(), pad_id: int = 0):
        """Teacher-forced answer scores and greedy continuations from one prefill.

            scores, outs = lm.score_and_generate(prompts, answers, max_new_tokens=24, stop_ids=[eos])
            loss_sum, n_tokens, n_right = scores   # as answer_scores over [prompt + answer]; None without targets

        Rows are laid out ``[prompt | padding | text | target | padding]`` (see :meth:`generate_batch`):
        one forward over every row's text and gold target gives the target tokens' logits (attention is
        causal, so the text's keys are those of the text alone); the target's columns are then dropped
        from the key/value cache and greedy decoding continues from the end of the text. The evaluation
        that scores the held-out set and decodes it so pays for one forward over the prompts, not two.
        """
        body, head, emb = arch.backbone(self.model), arch.lm_head(self.model), arch.embed(self.model)
        dev = seqs[0].device
        B, L, P = len(seqs), max(len(x) for x in seqs), self.n_prefix
        A = max(len(y) for y in targets) if targets is not None else 0
        ids = torch.full((B, L + A), pad_id, dtype=torch.long, device=dev)
        mask = torch.zeros((B, P + L + A), dtype=torch.long, device=dev)
        mask[:, :P] = 1
        for b, x in enumerate(seqs):
            ids[b, L - len(x):L] = x
            mask[b, P + L - len(x):P + L] = 1
            if targets is not None:
                ids[b, L:L + len(targets[b])] = targets[b]
                mask[b, P + L:P + L + len(targets[b])] = 1
        pos = (mask.cumsum(1) - 1).clamp(min=0)  # [B, P + L + A]: right padding repeats the last position
        stop = torch.tensor(sorted(int(s) for s in stop_ids) or [-1], device=dev)
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        out = torch.full((B, max_new_tokens), -1, dtype=torch.long, device=dev)
        scores = None
        cache = self.decode_cache()
        with self.attached():
            x = self.input_embeds(ids)  # [B, P + L + A, d]
            K = x.shape[1]
            h = body(inputs_embeds=x, attention_mask=self.decode_mask(mask, pos, K, x.dtype), position_ids=pos,
                     cache=cache, use_cache=True).last_hidden_state  # [B, K, d]
            if targets is not None:
                rows_b = torch.cat([torch.full((len(y),), b, device=dev) for b, y in enumerate(targets)])
                rows_t = torch.cat([torch.arange(len(y), device=dev) for y in targets])
                gold = torch.cat([y.to(dev) for y in targets])  # [N]
                logits = head(h.reshape(B * K, -1).index_select(0, rows_b * K + P + L - 1 + rows_t)).float()  # [N, V]
                scores = (float(F.cross_entropy(logits, gold, reduction="sum")), len(gold),
                          int((logits.argmax(-1) == gold).sum()))
                for layer in cache.layers:  # back to the end of the text: drop the targets' keys
                    layer.crop(-A)
                mask, pos, h = mask[:, :P + L], pos[:, :P + L], h[:, :P + L]
            nxt_pos = pos[:, -1:] + 1  # [B, 1]
            for t in range(max_new_tokens):
                nxt = head(h[:, -1]).argmax(-1)  # [B]
                done |= torch.isin(nxt, stop)
                if done.all():
                    break
                out[:, t] = torch.where(done, -1, nxt)
                mask = torch.cat([mask, torch.ones(B, 1, dtype=mask.dtype, device=dev)], 1)  # [B, K]
                pos = torch.cat([pos, nxt_pos], 1)  # [B, K]
                h = body(inputs_embeds=emb(nxt[:, None]), attention_mask=self.decode_mask(mask, pos, 1, x.dtype),
                         position_ids=nxt_pos, cache=cache, use_cache=True).last_hidden_state
                nxt_pos = nxt_pos + 1
        return scores, [[int(t) for t in row if t >= 0] for row in out.tolist()]
