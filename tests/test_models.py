"""Model factory: the tiny policy round trip, and backend selection without a GPU."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

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


def test_backends_without_a_gpu_are_the_plain_ones(no_cuda):
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


# --- the policy factory -------------------------------------------------------------------------

TINY = {"vocab_size": 600, "hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1,
        "intermediate_size": 64, "max_positions": 256}  # fmt: skip


def test_the_tiny_policy_needs_a_corpus():
    from kardia.models import create_policy

    with pytest.raises(ValueError, match="corpus"):
        create_policy({"backbone": "tiny", "tiny": TINY})


@pytest.mark.parametrize(
    ("policy", "match"),
    [({"backbone": ""}, "backbone is empty"), ({}, "backbone is empty"),
     ({"backbone": "tiny", "finetune": "dora"}, "finetune must be one of"),
     ({"backbone": "tiny", "span_tokens": "special"}, "span_tokens must be one of"),
     ({"backbone": "tiny", "train_layers": 0}, "train_layers must be"),
     ({"backbone": "tiny", "train_layers": "6"}, "train_layers must be")],
)  # fmt: skip
def test_a_bad_policy_section_raises(policy, match):
    from kardia.models import create_policy

    with pytest.raises(ValueError, match=match):
        create_policy(policy, corpus=CORPUS)


def test_create_policy_tiny_sizes_the_model_from_the_policy():
    from kardia.models import count_parameters, create_policy

    model, tokenizer = create_policy({"backbone": "tiny", "tiny": TINY}, corpus=CORPUS, seed=0)
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 2
    assert model.config.vocab_size == len(tokenizer) <= 600 + len(SPAN_MARKERS)
    counts = count_parameters(model)
    assert counts["trainable"] == counts["parameters"] > 0


@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory, tokenizer):
    """A saved tiny policy: a local folder that can stand in for a real backbone (no hub)."""
    from kardia.models import save_policy

    path = tmp_path_factory.mktemp("policy") / "tiny"
    model = tiny_model(tokenizer, hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1,
                       intermediate_size=64, max_positions=256)  # fmt: skip
    save_policy(model, tokenizer, path, {"stage": "test", "tokenizer": "tiny", "backbone": "tiny"})
    return path


def test_qlora_without_cuda_raises_before_loading_anything(saved_tiny, monkeypatch, no_cuda):
    from kardia.models import create_policy, load_backbone

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a local folder; never the hub
    policy = {"backbone": str(saved_tiny), "finetune": "qlora"}
    with pytest.raises(ValueError, match="CUDA"):
        create_policy(policy, backend="transformers")
    with pytest.raises(ValueError, match="CUDA"):
        load_backbone(str(saved_tiny), policy, seed=0, backend="transformers")


def test_a_local_backbone_loads_through_transformers(saved_tiny, monkeypatch):
    from kardia.models import create_policy

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer = create_policy({"backbone": str(saved_tiny)}, backend="transformers")
    assert model.config.hidden_size == 32 and tokenizer.pad_token is not None


def test_lora_on_the_tiny_policy_trains_only_the_adapters():
    from kardia.models import count_parameters, create_policy

    policy = {"backbone": "tiny", "finetune": "lora", "tiny": TINY,
              "lora": {"r": 4, "alpha": 8}}  # fmt: skip
    model, _ = create_policy(policy, corpus=CORPUS)
    assert hasattr(model, "peft_config") and hasattr(model, "merge_and_unload")
    counts = count_parameters(model)
    assert 0 < counts["trainable"] < counts["parameters"]
    assert model.peft_config["default"].r == 4


def test_save_policy_merges_lora_into_a_plain_reloadable_policy(tmp_path):
    import torch

    from kardia.models import create_policy, load_policy, save_policy

    policy = {"backbone": "tiny", "finetune": "lora", "tiny": TINY, "lora": {"r": 4}}
    model, tokenizer = create_policy(policy, corpus=CORPUS, seed=0)
    torch.manual_seed(0)
    with torch.no_grad():  # LoRA B starts at zero: give the adapters an effect to merge
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)
    ids = torch.tensor([tokenizer("Something odd happened")["input_ids"]])
    model.eval()
    with torch.no_grad():
        expected = model(ids).logits
    save_policy(model, tokenizer, tmp_path, {"tokenizer": "tiny", "backbone": "tiny"})
    assert (tmp_path / "kardia_policy.json").exists()
    assert not (tmp_path / "adapter_config.json").exists()
    reloaded, again = load_policy(tmp_path, {"backbone": "tiny"}, trainable=False)
    assert not hasattr(reloaded, "peft_config")
    assert again.get_vocab() == tokenizer.get_vocab()
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, expected, atol=1e-5)
    # trainable=True applies the policy's adapters afresh on top of the merged weights
    fresh, _ = load_policy(tmp_path, policy, trainable=True)
    assert hasattr(fresh, "peft_config")


def test_read_policy_info_needs_the_policy_file(tmp_path):
    from kardia.models import read_policy_info

    with pytest.raises(FileNotFoundError, match="kardia_policy.json"):
        read_policy_info(tmp_path)


def test_backend_report_on_a_machine_without_cuda(no_cuda):
    from kardia.models import backend_report

    report = backend_report()
    assert report["training"] == "transformers" and report["rollout"] == "hf"
    assert report["training_reason"] == "no CUDA device"


def test_qlora_on_the_tiny_policy_is_refused_not_turned_into_lora():
    from kardia.models import create_policy

    with pytest.raises(ValueError, match="qlora"):
        create_policy({"backbone": "tiny", "finetune": "qlora", "tiny": {"vocab_size": 300}},
                      corpus=CORPUS)  # fmt: skip


def _plain_tokenizer():
    """A BPE tokenizer that has never seen the span markers (as a real backbone's)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from kardia.models import CHAT_TEMPLATE, EOS_TURN, PAD

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=400, special_tokens=[PAD, "<|im_start|>", EOS_TURN], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))  # fmt: skip
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS_TURN)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def test_added_span_tokens_are_single_ordinary_tokens_started_from_their_pieces():
    import torch

    from kardia.models import SPAN_MARKERS, add_span_tokens

    tok = _plain_tokenizer()
    pieces = {m: tok(m, add_special_tokens=False)["input_ids"] for m in SPAN_MARKERS}
    assert all(len(p) > 1 for p in pieces.values())  # plain text before
    model = tiny_model(tok, hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1,
                       intermediate_size=64, max_positions=256)  # fmt: skip
    before = model.get_input_embeddings().weight.detach().clone()
    ids = add_span_tokens(model, tok)
    assert len(ids) == 8 and model.get_input_embeddings().weight.shape[0] == len(tok)
    emb = model.get_input_embeddings().weight
    for m, i in zip(SPAN_MARKERS, ids, strict=True):
        assert tok(m, add_special_tokens=False)["input_ids"] == [i]
        assert torch.allclose(emb[i], before[pieces[m]].mean(0))
    text = render_spans("They feel low.", "It hurts.", "sad", "I'm sorry.")
    enc = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(enc, skip_special_tokens=True) == text  # ordinary: they survive decoding
    assert add_span_tokens(model, tok) == []  # already there: nothing to do


def test_train_layers_trains_the_top_blocks_and_stops_the_backward_pass_there(tokenizer):
    import torch

    from kardia.models import create_policy

    policy = {"backbone": "tiny", "finetune": "full", "train_layers": 1,
              "tiny": {"vocab_size": 600, "hidden_size": 32, "num_layers": 3, "num_heads": 2,
                       "num_kv_heads": 1, "intermediate_size": 64}}  # fmt: skip
    model, tok = create_policy(policy, corpus=CORPUS, seed=0)
    layers = model.model.layers
    assert not any(p.requires_grad for block in layers[:2] for p in block.parameters())
    assert all(p.requires_grad for p in layers[2].parameters())
    x = torch.tensor([tok("I feel so embarrassed.")["input_ids"]])
    model(input_ids=x, labels=x).loss.backward()
    assert all(p.grad is None for block in layers[:2] for p in block.parameters())
    assert layers[2].self_attn.q_proj.weight.grad is not None
    assert model.lm_head.weight.grad is not None  # the tied matrix learns through the head
    with pytest.raises(ValueError, match="train_layers"):
        create_policy({**policy, "train_layers": 9}, corpus=CORPUS)


def test_lora_with_train_layers_puts_adapters_on_the_top_blocks_only():
    from kardia.models import create_policy

    policy = {"backbone": "tiny", "finetune": "lora", "train_layers": 1,
              "tiny": {"vocab_size": 600, "hidden_size": 32, "num_layers": 3, "num_heads": 2,
                       "num_kv_heads": 1, "intermediate_size": 64}}  # fmt: skip
    model, _ = create_policy(policy, corpus=CORPUS, seed=0)
    adapted = {n.split(".layers.")[1].split(".")[0] for n, p in model.named_parameters()
               if "lora_" in n}  # fmt: skip
    assert adapted == {"2"}


def test_a_bad_dtype_raises():
    from kardia.models import _dtype

    assert _dtype({}) == "auto"
    with pytest.raises(ValueError, match="policy.dtype"):
        _dtype({"dtype": "fp8"})


def test_mixed_precision_follows_the_hardware_and_keeps_the_weights(monkeypatch, no_cuda):
    import torch

    from kardia import models
    from kardia.models import create_policy
    from kardia.training.arguments import device_args as _device_args

    tiny = {"backbone": "tiny", "tiny": {"vocab_size": 600, "hidden_size": 32, "num_layers": 2,
                                         "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64}}  # fmt: skip
    for native in (True, False):
        monkeypatch.setattr(models, "native_bf16", lambda native=native: native)
        assert models.mixed_precision({"mixed_precision": "auto"}) is native
        assert _device_args({"mixed_precision": "auto"})["bf16"] is native
    assert models.mixed_precision({"mixed_precision": "bf16"}) and not models.mixed_precision({})
    assert not models.mixed_precision({"mixed_precision": None})  # YAML's `no` reads as False
    with pytest.raises(ValueError, match="policy.mixed_precision must be auto, bf16 or no"):
        models.mixed_precision({"mixed_precision": "fp16"})
    model, _ = create_policy(tiny, corpus=CORPUS, seed=0)
    assert next(model.parameters()).dtype == torch.float32  # trained weights stay fp32
    assert models.for_generation(model, {"mixed_precision": "no"}) is model
    cast = models.for_generation(model, {"mixed_precision": "bf16"})
    assert {p.dtype for p in cast.parameters()} == {torch.bfloat16}


def test_native_bf16_reads_the_cpu_capability(monkeypatch):
    import torch

    from kardia.models import native_bf16

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert native_bf16() is False
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert native_bf16() is True


def test_a_policy_loaded_for_generation_goes_to_the_gpu_when_there_is_one(monkeypatch):
    # models load on the CPU and hf_generate follows model.device: without the move, checkpoint
    # scoring and the raw backbone would generate on the CPU of a GPU machine
    import torch

    from kardia.models import for_generation

    class Model(torch.nn.Linear):
        device = torch.device("cpu")

        def to(self, *args, **kwargs):
            self.moved = args
            return self

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert for_generation(Model(2, 2), {"mixed_precision": "no"}).moved == ("cuda",)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not hasattr(for_generation(Model(2, 2), {"mixed_precision": "no"}), "moved")


def test_the_backend_is_what_loaded_the_model_not_what_the_machine_prefers(monkeypatch):
    from kardia.models import BACKEND_ATTR, create_policy, loaded_backend, training_backend

    monkeypatch.setenv("KARDIA_TRAINING_BACKEND", "unsloth")  # as a GPU machine with Unsloth answers
    assert training_backend() == "unsloth"
    tiny = {"backbone": "tiny", "tiny": {"vocab_size": 600, "hidden_size": 32, "num_layers": 1,
                                         "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64}}  # fmt: skip
    model, _ = create_policy(tiny, corpus=CORPUS, seed=0)  # Unsloth never loads a tiny policy
    assert loaded_backend(model) == "transformers"
    setattr(model, BACKEND_ATTR, "unsloth")  # what load_backbone marks on Unsloth's models
    assert loaded_backend(model) == "unsloth"


def test_one_gpu_memory_knob_for_every_vllm_engine(monkeypatch):
    from kardia import generation
    from kardia.models import gpu_memory_utilization

    assert gpu_memory_utilization({}) == 0.3 and gpu_memory_utilization({"gpu_memory_utilization": 0.5}) == 0.5
    with pytest.raises(ValueError, match="gpu_memory_utilization must be in"):
        gpu_memory_utilization({"gpu_memory_utilization": 1.5})
    seen = {}
    monkeypatch.setattr(generation, "vllm_generate", lambda path, prompts, **kw: seen.update(kw) or ["r"])
    assert generation.generate_from("models/x", {"gpu_memory_utilization": 0.42}, [[]], max_new_tokens=4,
                                    backend="vllm") == ["r"]  # fmt: skip
    assert seen["gpu_memory_utilization"] == 0.42
    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    assert "gpu_memory_utilization" in params["policy"] and "vllm_gpu_memory_utilization" not in params["grpo"]
