"""Batched generation from a policy: HF ``generate`` everywhere, vLLM where a GPU has it.

Prompts are chat message lists (system, user, assistant, …, user); the reply is decoded with
``skip_special_tokens=True`` exactly as GRPO decodes its rollouts, so the span markers (ordinary
added tokens) survive and the chat control tokens do not.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from kardia.models import gpu_memory_utilization, load_policy, rollout_backend


def fold_system(messages: list[dict]) -> list[dict]:
    """Move a leading system message into the first user turn, for chat templates (Gemma's) that
    reject the system role."""
    if not messages or messages[0].get("role") != "system":
        return list(messages)
    system, rest = messages[0]["content"], list(messages[1:])
    if rest and rest[0].get("role") == "user":
        rest[0] = {"role": "user", "content": f"{system}\n\n{rest[0]['content']}"}
        return rest
    return [{"role": "user", "content": system}, *rest]


def supports_system_role(tokenizer) -> bool:
    """Whether the tokenizer's chat template renders a system message (Gemma's raises)."""
    try:
        tokenizer.apply_chat_template(
            [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], tokenize=False
        )
    except Exception:  # jinja TemplateError: "System role not supported"
        return False
    return True


def for_template(prompts: Sequence[list[dict]], tokenizer) -> list[list[dict]]:
    """The prompts as the tokenizer's chat template accepts them: system messages folded into
    the first user turn when it has no system role (as the training rows are)."""
    if supports_system_role(tokenizer):
        return [list(p) for p in prompts]
    return [fold_system(p) for p in prompts]


def hf_generate(
    model,
    tokenizer,
    prompts: Sequence[list[dict]],
    *,
    max_new_tokens: int = 160,
    batch_size: int = 32,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> list[str]:
    """Generate one reply per prompt with ``model.generate`` (left padding, KV cache).

    Prompts are sorted by length so each batch pads little; replies come back in input order.
    """
    import time

    import torch

    if not prompts:
        return []
    prompts = for_template(prompts, tokenizer)
    texts = [
        tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    torch.manual_seed(seed)
    out: list[str | None] = [None] * len(texts)
    started, batches = time.perf_counter(), -(-len(order) // batch_size)
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(model.device)
            with torch.no_grad():
                gen = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=do_sample,
                    temperature=temperature if do_sample else None,
                    top_p=None,
                    top_k=None,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
            new = gen[:, enc["input_ids"].shape[1] :]
            for i, text in zip(
                idx, tokenizer.batch_decode(new, skip_special_tokens=True), strict=True
            ):
                out[i] = text.strip()
            if progress:  # plain lines: notebook widgets do not reach the terminal
                k = start // batch_size + 1
                spent = time.perf_counter() - started
                print(
                    f"generate: batch {k}/{batches} ({start + len(idx)}/{len(texts)} prompts), "
                    f"{spent:.0f} s, ~{spent / k * (batches - k) / 60:.1f} min left",
                    flush=True,
                )
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out  # type: ignore[return-value]


def free_accelerator_memory() -> None:
    """Give the memory of dead models back to the GPU (PyTorch's allocator keeps it cached), so a
    vLLM engine started next in the same process finds it free. A no-op without CUDA."""
    import gc

    gc.collect()
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def vllm_generate(
    model_path: str,
    prompts: Sequence[list[dict]],
    *,
    gpu_memory_utilization: float,
    max_new_tokens: int = 512,
    temperature: float = 0.0,
    seed: int = 0,
    max_model_len: int | None = None,
) -> list[str]:
    """Generate with a vLLM engine on the local GPU(s) (``LLM.chat`` applies the chat template).
    The engine takes ``gpu_memory_utilization`` of the GPU (``policy.gpu_memory_utilization``)
    and is torn down afterwards: a stage may generate for several systems, or right after
    training, in one process."""
    from vllm import LLM, SamplingParams

    free_accelerator_memory()
    llm = LLM(
        model=str(model_path),
        seed=seed,
        gpu_memory_utilization=gpu_memory_utilization,
        max_model_len=max_model_len,
    )
    try:
        params = SamplingParams(
            max_tokens=max_new_tokens, temperature=temperature, seed=seed, skip_special_tokens=True
        )
        outputs = llm.chat(for_template(prompts, llm.get_tokenizer()), params, use_tqdm=True)
        return [o.outputs[0].text.strip() for o in outputs]
    finally:
        del llm
        free_accelerator_memory()


def generate_from(
    path: str,
    policy: dict,
    prompts: Sequence[list[dict]],
    *,
    max_new_tokens: int,
    batch_size: int = 32,
    seed: int = 0,
    backend: str | None = None,
) -> list[str]:
    """Greedy replies of the policy saved at ``path``: vLLM when the machine has it, else HF."""
    if (backend or rollout_backend()) == "vllm":
        return vllm_generate(path, prompts, max_new_tokens=max_new_tokens, seed=seed,
                             gpu_memory_utilization=gpu_memory_utilization(policy))  # fmt: skip
    model, tokenizer = load_policy(path, policy, trainable=False)
    return hf_generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                       batch_size=batch_size, seed=seed)  # fmt: skip
