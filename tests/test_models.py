"""Model factory: the tiny policy round trip, and backend selection without a GPU."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from kardia.models import (
    CHAT_TEMPLATE,
    SPAN_MARKERS,
    load_tokenizer,
    rollout_backend,
    tiny_model,
    train_tokenizer,
    training_backend,
)
from kardia.spans import parse_spans, render_spans

CORPUS = [
    "I failed my driving test again and I feel so embarrassed.",
    render_spans("They feel ashamed.", "Failing twice stings.", "embarrassed", "That stings."),
    "Thanks, that helps a lot.",
] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(CORPUS, vocab_size=600)


def test_span_markers_are_single_ordinary_tokens(tokenizer):
    for marker in SPAN_MARKERS:
        ids = tokenizer(marker, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and ids[0] not in tokenizer.all_special_ids


def test_markers_survive_decoding_without_special_tokens(tokenizer):
    text = render_spans("u", "r", "sad", "resp")
    ids = tokenizer(text + "<|im_end|>")["input_ids"]
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    assert "<|im_end|>" not in decoded and parse_spans(decoded).complete


def test_round_trip_save_reload(tokenizer, tmp_path):
    import torch

    model = tiny_model(tokenizer, hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1,
                       intermediate_size=64)  # fmt: skip
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    again = load_tokenizer(tmp_path)
    assert again.get_vocab() == tokenizer.get_vocab() and again.chat_template == CHAT_TEMPLATE
    text = "Something odd happened " + SPAN_MARKERS[0]
    assert again(text)["input_ids"] == tokenizer(text)["input_ids"]
    from transformers import Qwen2ForCausalLM

    reloaded = Qwen2ForCausalLM.from_pretrained(tmp_path)
    ids = torch.tensor([tokenizer("hello there")["input_ids"]])
    assert torch.allclose(model(ids).logits, reloaded(ids).logits)
    assert model.config.vocab_size == len(tokenizer)


def test_chat_template_ends_with_the_generation_prompt(tokenizer):
    prompt = tokenizer.apply_chat_template(
        [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}],
        tokenize=False, add_generation_prompt=True,
    )  # fmt: skip
    assert prompt == "<|im_start|>system\ns<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n" \
        "<|im_start|>assistant\n"  # fmt: skip


def test_tiny_model_is_seeded(tokenizer):
    import torch

    a, b = (tiny_model(tokenizer, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                       intermediate_size=64, seed=3) for _ in range(2))  # fmt: skip
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_backends_without_a_gpu_are_the_plain_ones():
    assert training_backend() == "transformers"
    assert rollout_backend() == "hf"


@pytest.mark.parametrize("error", ["NotImplementedError('no GPU')", "ImportError('broken')"])
def test_an_unsloth_that_raises_on_import_means_the_plain_path(tmp_path, error):
    # A real package named unsloth that raises on import, as the real one does without a GPU;
    # CUDA is reported present so that selection gets as far as importing it.
    pkg = tmp_path / "unsloth"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(f"raise {error}\n")
    code = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(tmp_path)!r})
        torch.cuda.is_available = lambda: True
        from kardia.models import _backend_with_reason
        print(_backend_with_reason())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("('transformers', 'unsloth unavailable")
