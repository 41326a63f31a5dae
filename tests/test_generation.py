"""Generation helpers: system-message folding, system-role detection, batched HF generation."""

from __future__ import annotations

import pytest

from kardia.generation import fold_system, hf_generate, supports_system_role
from kardia.models import tiny_model, train_tokenizer
from kardia.spans import render_spans

SYSTEM = {"role": "system", "content": "You are kind."}
USER = {"role": "user", "content": "I lost my keys."}
ASSISTANT = {"role": "assistant", "content": "Oh no."}

CORPUS = [
    "I lost my keys again and I am late for work.",
    "My sister is getting married next week and I am so happy.",
    render_spans("They are stressed.", "Being late hurts.", "anxious", "That sounds stressful."),
    "You are kind. Thanks, that helps a lot.",
] * 20


def test_fold_system_moves_the_system_message_into_the_first_user_turn():
    messages = [SYSTEM, USER, ASSISTANT]
    folded = fold_system(messages)
    assert folded == [{"role": "user", "content": "You are kind.\n\nI lost my keys."}, ASSISTANT]
    assert messages == [SYSTEM, USER, ASSISTANT]  # the input is left alone


def test_fold_system_without_a_following_user_turn_becomes_a_user_turn():
    assert fold_system([SYSTEM]) == [{"role": "user", "content": "You are kind."}]
    assert fold_system([SYSTEM, ASSISTANT]) == \
        [{"role": "user", "content": "You are kind."}, ASSISTANT]  # fmt: skip


def test_fold_system_without_a_system_message_changes_nothing():
    messages = [USER, ASSISTANT]
    assert fold_system(messages) == messages and fold_system(messages) is not messages
    assert fold_system([]) == []


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(CORPUS, vocab_size=600)


@pytest.fixture(scope="module")
def model(tokenizer):
    import torch

    model = tiny_model(tokenizer, hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1,
                       intermediate_size=64, max_positions=256, seed=1)  # fmt: skip
    # The default init (std 0.02) makes every prompt's greedy reply the same (often empty); wide
    # random weights make replies depend on the prompt, so a mix-up of replies would show.
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    return model.eval()


def test_the_tiny_chat_template_supports_the_system_role(tokenizer):
    assert supports_system_role(tokenizer)


def test_a_template_that_rejects_the_system_role_is_detected(tokenizer):
    # Gemma's template raises on a system message; this one does the same.
    gemma_like = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    )
    original = tokenizer.chat_template
    try:
        tokenizer.chat_template = gemma_like
        assert tokenizer.apply_chat_template([USER], tokenize=False)  # a user turn renders
        assert not supports_system_role(tokenizer)
        # and the folded prompt renders where the raw one cannot
        assert "You are kind." in tokenizer.apply_chat_template(fold_system([SYSTEM, USER]),
                                                                tokenize=False)  # fmt: skip
    finally:
        tokenizer.chat_template = original


PROMPTS = [
    [SYSTEM, {"role": "user", "content": "My sister is getting married next week."}],
    [{"role": "user", "content": "keys"}],
    [SYSTEM, USER, ASSISTANT, {"role": "user", "content": "And I am late for work again."}],
    [{"role": "user", "content": "Thanks, that helps a lot."}],
]


def test_hf_generate_returns_one_reply_per_prompt_in_input_order(model, tokenizer):
    replies = hf_generate(model, tokenizer, PROMPTS, max_new_tokens=6, batch_size=3,
                          progress=False)  # fmt: skip
    assert len(replies) == len(PROMPTS) and all(isinstance(r, str) for r in replies)
    assert len(set(replies)) == len(replies)  # distinct, so a shuffle would show
    # Reversed input: the batches are the same (prompts are sorted by length inside), so each
    # prompt must get the same reply back at its own position.
    again = hf_generate(model, tokenizer, PROMPTS[::-1], max_new_tokens=6, batch_size=3,
                        progress=False)  # fmt: skip
    assert again == replies[::-1]
    # A prompt on its own (no padding) gets the reply it got in the padded batch.
    alone = [hf_generate(model, tokenizer, [p], max_new_tokens=6, progress=False)[0]
             for p in PROMPTS]  # fmt: skip
    assert alone == replies


def test_hf_generate_is_deterministic_greedy(model, tokenizer):
    first = hf_generate(model, tokenizer, PROMPTS, max_new_tokens=8, progress=False)
    assert hf_generate(model, tokenizer, PROMPTS, max_new_tokens=8, progress=False) == first
    assert hf_generate(model, tokenizer, PROMPTS, max_new_tokens=8, seed=5,
                       progress=False) == first  # fmt: skip
    assert hf_generate(model, tokenizer, [], max_new_tokens=8) == []


def test_hf_generate_decodes_without_control_tokens(model, tokenizer):
    for reply in hf_generate(model, tokenizer, PROMPTS, max_new_tokens=12, progress=False):
        assert "<|im_end|>" not in reply and "<|im_start|>" not in reply
        assert "<|endoftext|>" not in reply


@pytest.mark.parametrize("training", [True, False])
def test_hf_generate_restores_padding_side_and_training_mode(model, tokenizer, training):
    model.train(training)
    tokenizer.padding_side = "right"
    hf_generate(model, tokenizer, PROMPTS[:2], max_new_tokens=2, progress=False)
    assert tokenizer.padding_side == "right" and model.training is training
    model.eval()


def test_hf_generate_restores_state_when_generation_fails(model, tokenizer):
    model.train()
    tokenizer.padding_side = "right"
    with pytest.raises(Exception):  # noqa: B017 - whatever generate raises on a bad budget
        hf_generate(model, tokenizer, PROMPTS[:2], max_new_tokens=-1, progress=False)
    assert tokenizer.padding_side == "right" and model.training
    model.eval()


def test_generation_folds_the_system_message_for_a_template_without_one(tokenizer, model):
    # dev and test prompts keep their system message; Gemma-style templates reject it
    from kardia.generation import for_template

    gemma_like = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    assert for_template([[SYSTEM, USER]], tokenizer) == [[SYSTEM, USER]]  # ChatML keeps it
    original = tokenizer.chat_template
    try:
        tokenizer.chat_template = gemma_like
        assert for_template([[SYSTEM, USER]], tokenizer) == [fold_system([SYSTEM, USER])]
        assert len(hf_generate(model, tokenizer, [[SYSTEM, USER]], max_new_tokens=4,
                               progress=False)) == 1  # fmt: skip
    finally:
        tokenizer.chat_template = original
