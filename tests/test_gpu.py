"""What only a CUDA machine can show (``scripts/gpu_check`` runs these; skipped elsewhere): a
policy loaded for generation sits on the GPU and generates there, and SFT trains there in bf16."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]  # fmt: skip

TINY = {"vocab_size": 600, "hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1,
        "intermediate_size": 64, "max_positions": 512}  # fmt: skip
POLICY = {"backbone": "tiny", "finetune": "full", "history_exchanges": 0, "max_seq_length": 256,
          "tiny": TINY, "mixed_precision": "bf16"}  # fmt: skip


def test_a_saved_policy_generates_on_the_gpu(data_dir, tmp_path):
    from kardia.data import read_splits
    from kardia.generation import hf_generate
    from kardia.models import load_policy
    from kardia.prompts import prompt_rows
    from kardia.training.sft import run_sft

    cfg = {"seed": 0, "policy": POLICY, "data_dir": str(data_dir), "out_dir": str(tmp_path / "sft"),
           "work_dir": str(tmp_path / "work"),
           "sft": {"learning_rate": 5e-3, "batch_size": 4, "max_steps": 2, "warmup_steps": 0}}  # fmt: skip
    summary = run_sft(cfg)
    assert summary["machine"]["bf16"] and "x" in summary["machine"]["device"]  # "1 x <GPU name>"
    model, tokenizer = load_policy(tmp_path / "sft", POLICY, trainable=False)
    assert model.device.type == "cuda" and next(model.parameters()).dtype == torch.bfloat16
    rows = prompt_rows(read_splits(data_dir, "turns")["dev"], limit=2)
    assert len(hf_generate(model, tokenizer, [r["prompt"] for r in rows], max_new_tokens=8, progress=False)) == 2
