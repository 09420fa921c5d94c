"""Tiny random models built from REAL transformers config classes, saved as HF folders.

Each family keeps its real module layout (o_proj / down_proj / linear_attn.out_proj / fused or
per-expert MoE / post-norms / ``model.language_model`` for multimodal Qwen3.5) at toy sizes,
with a small byte-level BPE tokenizer and a ChatML chat template, so abliteration code runs on
them exactly as on the real checkpoints.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

import torch

VOCAB = 384
HIDDEN = 64

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
#: Qwen3-style: a thinking model whose template opens a think block unless told not to.
THINKING_TEMPLATE = CHATML_TEMPLATE.replace(
    "{{ '<|im_start|>assistant\n' }}",
    "{{ '<|im_start|>assistant\n' }}{% if enable_thinking is defined and not enable_thinking %}"
    "{{ '<think>\n\n</think>\n\n' }}{% endif %}",
)

_CORPUS = [
    "List files in /tmp and show their sizes.",
    "You are an AI agent operating a Linux terminal. Reply with one JSON object.",
    "I'm sorry, but I cannot access your filesystem. As an AI assistant I can't run commands.",
    '{"analysis": "", "plan": "", "commands": [{"keystrokes": "ls -la\\n", "duration": 0.5}]}',
    "git status; grep -r error /var/log; tar czf backup.tgz /etc; chmod 600 key.pem",
    "The capital of France is Paris. Sure, let me run the command.",
]


@cache
def _tokenizer_json() -> str:
    """A byte-level BPE tokenizer trained on a few lines (deterministic, offline)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer)
    return tok.to_str()


def save_tokenizer(out: Path, thinking: bool = False) -> None:
    """Write the tiny tokenizer with a chat template into ``out``."""
    from transformers import PreTrainedTokenizerFast

    tmp = out / "tokenizer.json"
    tmp.write_text(_tokenizer_json())
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(tmp),
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tok.chat_template = THINKING_TEMPLATE if thinking else CHATML_TEMPLATE
    tok.save_pretrained(out)


def _common(**extra) -> dict:
    base = dict(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    return base | extra


def _llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM, LlamaConfig(**_common(tie_word_embeddings=False))


def _mistral():
    from transformers import MistralConfig, MistralForCausalLM

    return MistralForCausalLM, MistralConfig(**_common(sliding_window=None))


def _qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    return Qwen2ForCausalLM, Qwen2Config(**_common(tie_word_embeddings=True))


def _qwen3():
    from transformers import Qwen3Config, Qwen3ForCausalLM

    return Qwen3ForCausalLM, Qwen3Config(**_common(tie_word_embeddings=True))


def _qwen3_moe():
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    return Qwen3MoeForCausalLM, Qwen3MoeConfig(
        **_common(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, decoder_sparse_step=1,
                  mlp_only_layers=[3], norm_topk_prob=True)
    )


def _linear_attention_kwargs() -> dict:
    return dict(
        layer_types=["linear_attention", "linear_attention", "linear_attention", "full_attention"],
        linear_conv_kernel_dim=4, linear_key_head_dim=16, linear_value_head_dim=16,
        linear_num_key_heads=2, linear_num_value_heads=4,
    )


def _qwen3_next():
    from transformers import Qwen3NextConfig, Qwen3NextForCausalLM

    return Qwen3NextForCausalLM, Qwen3NextConfig(
        **_common(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                  shared_expert_intermediate_size=32, decoder_sparse_step=1, mlp_only_layers=[],
                  partial_rotary_factor=0.5, **_linear_attention_kwargs())
    )


def _qwen3_5():
    """Dense Qwen3.5 as shipped: a multimodal checkpoint, text layers under model.language_model."""
    from transformers import Qwen3_5Config, Qwen3_5ForConditionalGeneration

    text = _common(tie_word_embeddings=False, **_linear_attention_kwargs())
    vision = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=HIDDEN,
                  patch_size=4, spatial_merge_size=2, temporal_patch_size=2)
    return Qwen3_5ForConditionalGeneration, Qwen3_5Config(
        text_config=text, vision_config=vision, tie_word_embeddings=False
    )


def _gpt_oss():
    from transformers import GptOssConfig, GptOssForCausalLM

    # gpt-oss has hidden == intermediate, so a fused expert's layout cannot be told from its shape
    return GptOssForCausalLM, GptOssConfig(
        **_common(num_local_experts=4, num_experts_per_tok=2, intermediate_size=HIDDEN,
                  layer_types=["sliding_attention", "full_attention"] * 2, sliding_window=16,
                  tie_word_embeddings=False)
    )


def _gemma2():
    from transformers import Gemma2Config, Gemma2ForCausalLM

    return Gemma2ForCausalLM, Gemma2Config(
        **_common(query_pre_attn_scalar=16, sliding_window=16, tie_word_embeddings=True)
    )


def _gemma3():
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    return Gemma3ForCausalLM, Gemma3TextConfig(
        **_common(query_pre_attn_scalar=16, sliding_window=16, tie_word_embeddings=True)
    )


BUILDERS: dict[str, Callable] = {
    "llama": _llama, "mistral": _mistral, "qwen2": _qwen2, "qwen3": _qwen3, "qwen3_moe": _qwen3_moe,
    "qwen3_next": _qwen3_next, "qwen3_5": _qwen3_5, "gpt_oss": _gpt_oss, "gemma2": _gemma2, "gemma3": _gemma3,
}
FAMILIES = tuple(BUILDERS)
THINKING_FAMILIES = {"qwen3", "qwen3_moe", "qwen3_next", "qwen3_5"}


def build_tiny(family: str, out: Path, *, shards: int = 1, seed: int = 0, dtype=torch.float32) -> Path:
    """Save a tiny random ``family`` model (+ tokenizer, chat template) into ``out``; return ``out``.

    Norm weights are randomized too, so post-norm corrections and final norms are exercised.
    ``shards > 1`` writes a sharded checkpoint with ``model.safetensors.index.json``.
    """
    if family not in BUILDERS:
        raise ValueError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    cls, config = BUILDERS[family]()
    model = cls(config).to(dtype).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
            elif p.ndim == 1 and "bias" in name:
                p.normal_(0.0, 0.02)
    model.generation_config.eos_token_id = config.get_text_config().eos_token_id
    if shards > 1:
        total = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        model.save_pretrained(out, max_shard_size=max(total // shards, 1))
    else:
        model.save_pretrained(out)
    save_tokenizer(out, thinking=family in THINKING_FAMILIES)
    (out / "tiny_model.json").write_text(json.dumps({"family": family, "seed": seed, "shards": shards}))
    return out
