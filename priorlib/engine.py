"""The engine's version: part of every run's identity (its store key) and of every cached artifact's key,
bumped whenever a change would alter what is computed. 2: evaluation on whole contexts (no answer-guided cropping), generation stops at a
newline, SQuAD v1.1's F1 rule for empty answers, deep blocks' lr scaled to their layer (DeepLR), the
plateau rule and its learning curve, BOS-safe deep carry, Gemma's sliding window in decoding.
3: compiled decoder layers by default (priorlib.compiled: inductor's fused kernels round bf16 differently
from eager mode), and no greedy decoding at step 0 unless ``generate_initial`` (the untrained prompt's
EM/F1 leave the default metrics).

It lives alone so that anything (the config, the artifact cache) can import it without a cycle.
"""

ENGINE_VERSION = 3
