"""``ablbench sft``: LoRA fine-tuning on agent trajectories (the user's SFT arm), with PEFT.

Rules, in order:
1. Data (:mod:`sft.data`): trials of ablbench run folders (``<task>/<attempt>/result.json`` +
   ``trace.jsonl``) or harbor jobs (``<trial>/result.json`` + ``agent/trace.jsonl`` or
   ``agent/trajectory.json``); passed trials (reward >= 1) only unless asked otherwise. Each
   trajectory becomes the chat messages the agent sent: the start record's first request, then
   per turn the reply as the agent kept it in its history and the next user message. Trimmed
   context (the agent dropped old turns) splits a trajectory where the request changed, so every
   sample is a request the agent really sent.
2. Tokens (:mod:`sft.tokens`): the model's own chat template renders each sample; only the
   assistant replies (their text and end-of-turn token) carry loss. When a template is not
   prefix-stable (a later render rewrites an earlier turn), each reply becomes its own sample.
3. Split: whole tasks are held out for validation (seeded), never single trajectories.
4. Training (:mod:`sft.train`): LoRA adapters (``peft``), seeded; batches are length-grouped
   under a token budget with attention masks; logits only where the loss is taken; AdamW; the
   GPU and bf16 when present; torch threads = the CPUs this process may use. After every epoch
   the adapter, optimizer, RNG states and loss curve are saved: a rerun resumes there.
5. Outputs (:mod:`sft.merge`): the adapter, a merged HF folder and, with a base GGUF, a merged
   GGUF (same tensor names and metadata; the changed tensors rewritten through abliterate's GGUF
   writer pieces); ``sft.json`` records data files and hashes, the split, hyperparameters, the
   loss curve, the validation loss before and after, the seed and versions.
6. ``sft`` imports nothing from ``harness``: the caller passes what it needs from the agent
   (how a raw reply appears in the agent's history).
"""
