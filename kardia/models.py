"""Model factory: the embedded-default tiny policy, and which training backend a machine gets.

The tiny policy (SPEC §5) needs no download: a byte-level BPE tokenizer trained on the train
split, the span markers as *ordinary* added tokens (GRPO decodes with
``skip_special_tokens=True``, which would erase special ones), a ChatML-style chat template, and
a randomly initialised small Qwen2-style decoder. Heavy libraries are imported inside functions.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path

from kardia.spans import span_markers

# Control tokens are special (skipped when decoding); span markers are not.
PAD, BOS_TURN, EOS_TURN = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPAN_MARKERS = tuple(span_markers("kardia"))
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def dialogue_texts(records: Iterable[dict]) -> Iterable[str]:
    """Every message content of the given dialogues: the tokenizer's training corpus."""
    for rec in records:
        for m in rec["messages"]:
            yield m["content"]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096):
    """A byte-level BPE tokenizer trained on ``texts``, with the chat control tokens as special
    tokens and the eight span markers added as ordinary tokens (one id each)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS_TURN, EOS_TURN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte stays encodable
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS_TURN)
    fast.add_tokens(list(SPAN_MARKERS))  # ordinary added tokens: they survive decoding
    fast.chat_template = CHAT_TEMPLATE
    return fast


def load_tokenizer(path: str | Path):
    """Reload a saved tokenizer as trained (``AutoTokenizer`` may swap the pre-tokenizer of a
    local Qwen2 folder in transformers 5.17; see STACK.md)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(path))


def tiny_model(
    tokenizer,
    *,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 512,
    max_positions: int = 2048,
    seed: int = 0,
):
    """A randomly initialised Qwen2-style decoder sized for ``tokenizer`` (seeded)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(config)


def training_backend() -> str:
    """``unsloth`` when CUDA is present and Unsloth imports, else ``transformers``.

    Unsloth must be imported before trl/transformers to patch them; without a GPU its import
    raises ``NotImplementedError`` (not ImportError), and a broken install may raise anything,
    so every failure means the plain path — and the reason is returned for the stage's log.
    """
    return _backend_with_reason()[0]


def _backend_with_reason() -> tuple[str, str]:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return "transformers", "torch missing"
    if not torch.cuda.is_available():
        return "transformers", "no CUDA device"
    try:
        importlib.import_module("unsloth")
    except Exception as exc:  # NotImplementedError, ImportError, CUDA/driver errors
        return "transformers", f"unsloth unavailable: {type(exc).__name__}: {exc}"[:200]
    return "unsloth", "CUDA present and unsloth imported"


def rollout_backend() -> str:
    """``vllm`` when CUDA is present and vLLM imports, else ``hf`` (``model.generate``)."""
    try:
        import torch

        if not torch.cuda.is_available():
            return "hf"
        importlib.import_module("vllm")
    except Exception:  # vLLM's CPU wheel imports but cannot build an engine: CUDA decides
        return "hf"
    return "vllm"
