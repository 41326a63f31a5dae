"""Model factory: the policy a stage trains, and which backend a machine gets.

``policy.backbone`` names one of three things:

* ``tiny`` — a byte-level BPE tokenizer trained on the train split, the span markers as
  *ordinary* added tokens (GRPO decodes with ``skip_special_tokens=True``, which would erase
  special ones), a ChatML-style chat template and a randomly initialised small Qwen2-style decoder
  sized by ``policy.tiny`` (the smoke profile's policy; still params.yaml's default until the
  SmolLM2 setting meets issue 12's targets);
* a packaged backbone (``kardia.backbone.PACKAGED``: ``smollm2-135m-instruct``): a pretrained
  chat model from a PyPI wheel, built into ``models/backbones/<name>`` by the ``backbone`` stage;
* any local path or hub id of a real backbone.

Real backbones load through Unsloth (LoRA/QLoRA) when CUDA is present, through transformers
(+ PEFT LoRA, or full fine-tuning) otherwise. With ``policy.span_tokens: added`` the eight span
markers become ordinary added tokens of the SFT starting point (one id each instead of ~7 pieces:
shorter sequences, and a marker cannot be half-written), their embeddings initialised to the mean
of the pieces' and trained (with LoRA through PEFT's ``trainable_token_indices``); ``text`` keeps
them as plain multi-token text. Decoded text is identical either way. Heavy libraries are
imported lazily.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from kardia.backbone import DEFAULT_ROOT, resolve_backbone
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


def _num_layers(model) -> int:
    return int(model.config.num_hidden_layers)


def freeze_below(model, top: int):
    """Train only the top ``top`` decoder blocks, the final norm and the (tied) embedding matrix;
    the blocks below stay as pretrained. The embedding lookup's output is detached, so the
    backward pass stops at the lowest trained block instead of running through the whole model
    to reach the input embeddings (on 2 CPU cores, most of a step); the tied matrix still learns
    through the output head, the new span-marker rows included. ``top`` covering every block
    keeps the full backward pass (plain full fine-tuning)."""
    n = _num_layers(model)
    if not 1 <= top <= n:
        raise ValueError(f"policy.train_layers must be between 1 and {n} (or null), got {top}")
    if top == n:
        return model
    layers = model.get_decoder().layers
    for p in model.parameters():
        p.requires_grad_(False)
    for block in list(layers)[n - top :]:
        for p in block.parameters():
            p.requires_grad_(True)
    for p in model.get_decoder().norm.parameters():
        p.requires_grad_(True)
    model.get_output_embeddings().weight.requires_grad_(True)
    model.get_input_embeddings().register_forward_hook(lambda _m, _i, out: out.detach())
    return model


def backend_report() -> dict[str, str]:
    """Which training and rollout backends this machine gets, and why (for the stage logs)."""
    backend, why = _backend_with_reason()
    return {"training": backend, "training_reason": why, "rollout": rollout_backend()}


def training_backend() -> str:
    """``unsloth`` when CUDA is present and Unsloth imports, else ``transformers``.

    Unsloth must be imported before trl/transformers to patch them; without a GPU its import
    raises ``NotImplementedError`` (not ImportError), and a broken install may raise anything,
    so every failure means the plain path — and the reason is returned for the stage's log.
    """
    return _backend_with_reason()[0]


def _backend_with_reason() -> tuple[str, str]:
    forced = os.environ.get("KARDIA_TRAINING_BACKEND")  # e.g. plain TRL on a GPU, to compare
    if forced in ("transformers", "unsloth"):
        return forced, "KARDIA_TRAINING_BACKEND"
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return "transformers", "torch missing"
    if not torch.cuda.is_available():
        return "transformers", "no CUDA device"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # set by accelerate launch on every rank
        return "transformers", "multi-process run: TRL + PEFT under DeepSpeed (Unsloth is 1-GPU)"
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


# --- the factory ------------------------------------------------------------------------------

FINETUNE = ("full", "lora", "qlora")
BACKEND_ATTR = "kardia_backend"  # set on a model Unsloth loaded (see loaded_backend)
GPU_MEMORY_UTILIZATION = 0.3  # policy.gpu_memory_utilization when unset (TRL's colocate default)
POLICY_FILE = "kardia_policy.json"  # written next to every saved policy: how to reload it


def _check_policy(policy: dict) -> None:
    if not policy.get("backbone"):
        raise ValueError("policy.backbone is empty: use 'tiny' or a local path / hub id")
    if policy.get("finetune", "full") not in FINETUNE:
        raise ValueError(f"policy.finetune must be one of {FINETUNE}, got {policy['finetune']!r}")
    if policy.get("span_tokens", "added") not in SPAN_TOKENS:
        raise ValueError(f"policy.span_tokens must be one of {SPAN_TOKENS}, "
                         f"got {policy['span_tokens']!r}")  # fmt: skip
    top = policy.get("train_layers")
    if top is not None and (not isinstance(top, int) or isinstance(top, bool) or top < 1):
        raise ValueError(f"policy.train_layers must be a positive integer or null, got {top!r}")


def create_policy(
    policy: dict, *, corpus: Iterable[str] | None = None, seed: int = 0, backend: str | None = None
):
    """The SFT starting point named by ``policy`` (params.yaml's ``policy`` section).

    ``tiny`` trains a tokenizer on ``corpus`` (the train split's texts) and builds a fresh decoder;
    anything else is loaded from a local path or the hub. Returns ``(model, tokenizer)`` with
    LoRA/QLoRA applied when ``policy.finetune`` asks for it.
    """
    _check_policy(policy)
    backend = backend or training_backend()
    if policy["backbone"] == "tiny":
        if corpus is None:
            raise ValueError("the tiny policy needs a corpus to train its tokenizer on")
        sizes = dict(policy.get("tiny") or {})
        tokenizer = train_tokenizer(corpus, vocab_size=sizes.pop("vocab_size", 4096))
        model = tiny_model(tokenizer, seed=seed, **sizes)
        return _adapt(model, policy), tokenizer
    return load_backbone(backbone_source(policy), policy, seed=seed, backend=backend,
                          add_spans=policy.get("span_tokens", "added") == "added")  # fmt: skip


def backbone_source(policy: dict) -> str:
    """Where ``policy.backbone`` loads from: a packaged backbone's built folder, else itself."""
    return resolve_backbone(policy["backbone"], policy.get("backbones_dir") or DEFAULT_ROOT)


SPAN_TOKENS = ("added", "text")
LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def add_span_tokens(model, tokenizer) -> list[int]:
    """Add the span markers as ordinary tokens (one id each), grow the embeddings and start each
    new row at the mean of the rows of the pieces the marker was split into before (so a marker
    begins where the model already understood it). Returns the new ids (empty if present)."""
    import torch

    new = [m for m in SPAN_MARKERS if m not in tokenizer.get_vocab()]
    if not new:
        return []
    pieces = {m: tokenizer(m, add_special_tokens=False)["input_ids"] for m in new}
    tokenizer.add_tokens(new)  # ordinary added tokens: they survive skip_special_tokens
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    emb = model.get_input_embeddings().weight
    ids = tokenizer.convert_tokens_to_ids(new)
    with torch.no_grad():
        for m, i in zip(new, ids, strict=True):
            emb[i] = emb[pieces[m]].mean(0)
    out = model.get_output_embeddings()
    if out is not None and out.weight.data_ptr() != emb.data_ptr():  # untied head: same start
        with torch.no_grad():
            for m, i in zip(new, ids, strict=True):
                out.weight[i] = out.weight[pieces[m]].mean(0)
    return ids


def load_policy(path: str | Path, policy: dict, *, seed: int = 0, backend: str | None = None,
                trainable: bool = True, fast_inference: bool = False):  # fmt: skip
    """Reload a policy saved by ``save_policy`` (the SFT model GRPO starts from, or a checkpoint
    to evaluate). With ``trainable`` the ``policy.finetune`` adapters are applied afresh."""
    path = Path(path)
    info = read_policy_info(path)
    backend = backend or training_backend()
    if info.get("tokenizer") == "tiny":
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(path))
        tokenizer = load_tokenizer(path)
        return (_adapt(model, policy) if trainable else for_generation(model, policy)), tokenizer
    return load_backbone(
        str(path), policy, seed=seed, backend=backend, trainable=trainable,
        fast_inference=fast_inference,
    )  # fmt: skip


def read_policy_info(path: str | Path) -> dict:
    """What ``save_policy`` recorded about a saved policy (backbone, tokenizer kind, run id)."""
    f = Path(path) / POLICY_FILE
    if not f.exists():
        raise FileNotFoundError(
            f"{path} is not a saved Kardia policy (no {POLICY_FILE}); run the stage that makes it"
        )
    return json.loads(f.read_text())


def load_policy_tokenizer(path: str | Path):
    """The tokenizer of a saved policy, loaded the way it was saved (the tiny one as trained)."""
    if read_policy_info(path).get("tokenizer") == "tiny":
        return load_tokenizer(path)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def save_policy(model, tokenizer, path: str | Path, info: dict) -> Path:
    """Save a full (adapter-merged) policy and its tokenizer, plus ``info`` as
    ``kardia_policy.json``; vLLM and ``load_policy`` can both read the folder."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "save_pretrained_merged"):  # Unsloth: merges LoRA into 16-bit weights
        model.save_pretrained_merged(str(path), tokenizer, save_method="merged_16bit")
    else:
        if hasattr(model, "merge_and_unload"):  # PEFT
            model = model.merge_and_unload()
        model.save_pretrained(str(path))
        tokenizer.save_pretrained(str(path))
    (path / POLICY_FILE).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return path


def count_parameters(model) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"parameters": total, "trainable": trainable}


def native_bf16() -> bool:
    """Whether this machine multiplies bf16 matrices in hardware: a CUDA GPU with bf16, or a CPU
    with AMX or AVX512-BF16 (oneDNN uses them). Elsewhere (e.g. AVX2-only CPUs) bf16 is emulated
    and slower than fp32."""
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private: may move
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def mixed_precision(policy: dict) -> bool:
    """``policy.mixed_precision``: ``auto`` (bf16 where ``native_bf16()``), ``bf16`` or ``no``.
    With bf16 the weights stay in ``policy.dtype`` (fp32 by default, so small updates are not
    rounded away) and training runs its matrix products under bf16 autocast; a policy loaded for
    generation only is cast to bf16 (decoding reads every weight once per token)."""
    value = policy.get("mixed_precision", "no")
    value = "no" if value is False or value is None else value
    if value not in ("auto", "bf16", "no"):
        raise ValueError(f"policy.mixed_precision must be auto, bf16 or no, got {value!r}")
    return value == "bf16" or (value == "auto" and native_bf16())


def for_generation(model, policy: dict):
    """``model`` where and how it generates: on the GPU when there is one (models load on the CPU,
    and ``hf_generate`` follows ``model.device``), in bf16 under ``mixed_precision``."""
    import torch

    if torch.cuda.is_available() and model.device.type != "cuda":
        model = model.to("cuda")
    if mixed_precision(policy) and next(model.parameters()).dtype == torch.float32:
        return model.to(torch.bfloat16)
    return model


def gpu_memory_utilization(policy: dict) -> float:
    """``policy.gpu_memory_utilization``: the share of GPU memory a vLLM engine may take, the one
    knob for TRL's colocated engine, Unsloth's ``fast_inference`` engine and ``vllm_generate``."""
    value = float(policy.get("gpu_memory_utilization") or GPU_MEMORY_UTILIZATION)
    if not 0 < value <= 1:
        raise ValueError(f"policy.gpu_memory_utilization must be in (0, 1], got {value}")
    return value


def _dtype(policy: dict):
    """``policy.dtype``: ``auto`` (the checkpoint's), ``float32`` or ``bfloat16``: the dtype the
    weights are stored and updated in (``mixed_precision`` chooses what the products run in)."""
    import torch

    name = policy.get("dtype") or "auto"
    if name == "auto":
        return "auto"
    if name not in ("float32", "bfloat16"):
        raise ValueError(f"policy.dtype must be auto, float32 or bfloat16, got {name!r}")
    return getattr(torch, name)


def _lora_settings(policy: dict) -> dict:
    lora = {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"}
    lora.update(policy.get("lora") or {})
    return lora


def _refuse_qlora(policy: dict) -> None:
    if policy.get("finetune") == "qlora":  # 4-bit weights exist only on the Unsloth path
        raise ValueError(
            "policy.finetune 'qlora' needs CUDA and Unsloth (4-bit weights); "
            "use 'lora' or 'full' here"
        )


def _adapt(model, policy: dict, tokenizer=None):
    """Apply PEFT LoRA when ``policy.finetune`` is lora (the plain transformers path); the span
    markers' embedding rows, when they are added tokens, train beside the adapters."""
    finetune = policy.get("finetune", "full")
    top = policy.get("train_layers")
    if finetune == "full":
        if top is not None:
            freeze_below(model, int(top))
        return model
    _refuse_qlora(policy)
    from peft import LoraConfig, get_peft_model

    lora = _lora_settings(policy)
    extra = {}
    target = lora["target_modules"]
    if top is not None:  # adapters on the top blocks only (PEFT needs the module names then)
        n = _num_layers(model)
        extra["layers_to_transform"] = list(range(max(n - int(top), 0), n))
        if target == "all-linear":
            target = list(LINEAR_MODULES)
    if tokenizer is not None and all(m in tokenizer.get_vocab() for m in SPAN_MARKERS):
        extra["trainable_token_indices"] = tokenizer.convert_tokens_to_ids(list(SPAN_MARKERS))
    config = LoraConfig(
        r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
        target_modules=target, task_type="CAUSAL_LM", **extra,
    )  # fmt: skip
    return get_peft_model(model, config)


def loaded_backend(model) -> str:
    """The backend that actually loaded ``model``: ``unsloth`` only for a model Unsloth's
    ``FastLanguageModel`` made (a tiny policy on a GPU machine is plain transformers, whatever
    ``training_backend()`` prefers)."""
    return getattr(model, BACKEND_ATTR, "transformers")


def load_backbone(name: str, policy: dict, *, seed: int, backend: str, trainable: bool = True,
                  fast_inference: bool = False, add_spans: bool = False):  # fmt: skip
    """A real backbone (a folder or hub id) as a policy: through Unsloth or transformers (+ PEFT)
    as ``backend`` says, the span markers added when ``add_spans``, adapters when ``trainable``."""
    finetune = policy.get("finetune", "full")
    max_len = int(policy.get("max_seq_length", 2048))
    if backend == "unsloth":
        from unsloth import FastLanguageModel  # must precede trl/transformers (it patches them)

        lora = _lora_settings(policy)
        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=name,
            max_seq_length=max_len,
            load_in_4bit=finetune == "qlora",
            full_finetuning=finetune == "full",
            fast_inference=fast_inference,  # Unsloth's vLLM engine for GRPO rollouts
            max_lora_rank=lora["r"],
            gpu_memory_utilization=gpu_memory_utilization(policy),  # its vLLM engine's share
        )
        setattr(model, BACKEND_ATTR, "unsloth")
        if add_spans:
            add_span_tokens(model, tokenizer)
        if trainable and finetune != "full":
            target = lora["target_modules"]
            if target == "all-linear":
                target = list(LINEAR_MODULES)
            model = FastLanguageModel.get_peft_model(
                model, r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                target_modules=target, use_gradient_checkpointing="unsloth", random_state=seed,
            )  # fmt: skip
    else:
        if trainable:
            _refuse_qlora(policy)  # before a large download
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=_dtype(policy))
        if add_spans:
            add_span_tokens(model, tokenizer)
        if trainable:
            model = _adapt(model, policy, tokenizer)
        else:
            model = for_generation(model, policy)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
