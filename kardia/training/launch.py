"""Where training runs: in this process, or on several under ``accelerate launch``; and TRL's vLLM
server for server-mode rollouts (the paper profile).

``launch(stage, cfg)`` runs ``run_sft`` / ``run_grpo`` here when ``launch.num_processes`` is 1,
else as ``python -m kardia.training <stage> <config.json>`` on every rank of ``accelerate
launch`` (DeepSpeed ZeRO configs in ``configs/accelerate/``; on a machine without CUDA the ranks
are CPU processes in a gloo group, which is how CI runs this path).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from kardia.models import (
    POLICY_FILE,
    backbone_source,
    load_backbone,
    read_policy_info,
    rollout_backend,
    save_policy,
)
from kardia.training.arguments import DEFAULT_VLLM_URL
from kardia.training.grpo import run_grpo
from kardia.training.sft import run_sft

RUNNERS = {"sft": run_sft, "grpo": run_grpo}


@contextmanager
def serve(cmd: Sequence[str], health_url: str, *, env: dict | None = None,
          timeout_s: float = 600.0, poll_s: float = 1.0):  # fmt: skip
    """Run a server process for the duration of a block: wait until ``health_url`` answers 200,
    fail fast (with its exit code) if it dies first, terminate it afterwards."""
    proc = subprocess.Popen(list(cmd), env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with code {proc.returncode} before it was up")
            try:
                with urllib.request.urlopen(health_url, timeout=poll_s) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{health_url} did not answer within {timeout_s:.0f} s")
            time.sleep(poll_s)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def rollout_server(cfg: dict):
    """TRL's vLLM server (``trl vllm-serve``) on ``grpo.vllm_server_gpus`` for server-mode rollouts
    (the paper profile); a no-op in colocate mode or without CUDA + vLLM."""
    from urllib.parse import urlparse

    grpo = cfg["grpo"]
    gpus = grpo.get("vllm_server_gpus")
    if grpo.get("vllm_mode") != "server" or not gpus or rollout_backend() != "vllm":
        yield None
        return
    url = grpo.get("vllm_server_base_url") or DEFAULT_VLLM_URL
    parsed = urlparse(url)
    # one replica per GPU (data parallel): a 7B policy fits on one card
    cmd = ["trl", "vllm-serve", "--model", str(cfg["sft_dir"]), "--host", parsed.hostname or "127.0.0.1",
           "--port", str(parsed.port or 8001), "--data_parallel_size", str(len(str(gpus).split(",")))]  # fmt: skip
    with serve(cmd, f"{url.rstrip('/')}/health", env={"CUDA_VISIBLE_DEVICES": str(gpus)}) as proc:
        yield proc


def launch(stage: str, cfg: dict) -> dict:
    """Run ``stage`` here, or under ``accelerate launch`` when ``cfg['launch']`` asks for more
    than one process (the summary comes back through a JSON file)."""
    launch_cfg = cfg.get("launch") or {}
    n = int(launch_cfg.get("num_processes", 1))
    if n <= 1:
        return RUNNERS[stage](cfg)
    work = Path(".cache") / f"{stage}_launch"
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.json").write_text(json.dumps(cfg))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(n)]
    if launch_cfg.get("config_file"):
        cmd += ["--config_file", str(launch_cfg["config_file"])]
    elif not _has_cuda():
        # without a config accelerate spawns N ranks only for --multi_gpu (torchrun); on a CPU
        # machine they join a gloo group because the training args set use_cpu
        cmd += ["--multi_gpu"]
    cmd += ["-m", "kardia.training", stage, str(work / "config.json"), str(work / "summary.json")]
    env = dict(os.environ)
    if launch_cfg.get("gpus") is not None:  # e.g. the GPUs the vLLM server does not hold
        env["CUDA_VISIBLE_DEVICES"] = str(launch_cfg["gpus"])
    print("launching:", " ".join(cmd))
    subprocess.run(cmd, check=True, env=env)
    if stage == "sft":
        merge_unmerged(cfg)
    return json.loads((work / "summary.json").read_text())


def merge_unmerged(cfg: dict) -> Path:
    """After a multi-process SFT: fold the saved LoRA adapters into the backbone (one process)
    and write ``out_dir`` as ``save_policy`` would; full weights are moved as they are."""
    from peft import PeftModel

    out = Path(cfg["out_dir"])
    raw = out.with_name(out.name + ".unmerged")
    info = read_policy_info(raw)
    shutil.rmtree(out, ignore_errors=True)
    if not (raw / "adapter_config.json").exists():
        os.replace(raw, out)
        return out
    (raw / POLICY_FILE).unlink()
    base, tokenizer = load_backbone(  # the same start as create_policy: span tokens included
        backbone_source(cfg["policy"]), cfg["policy"], seed=0, backend="transformers",
        trainable=False, add_spans=cfg["policy"].get("span_tokens", "added") == "added",
    )  # fmt: skip
    save_policy(PeftModel.from_pretrained(base, str(raw)), tokenizer, out, info)
    shutil.rmtree(raw)
    return out


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv: list[str] | None = None) -> int:
    """``python -m kardia.training <sft|grpo> <config.json> [summary.json]`` (what ``launch``
    runs under accelerate on every rank; the main rank writes the summary)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3) or argv[0] not in RUNNERS:
        print(main.__doc__, file=sys.stderr)
        return 2
    summary = RUNNERS[argv[0]](json.loads(Path(argv[1]).read_text()))
    if len(argv) == 3 and int(os.environ.get("RANK", "0")) == 0:
        Path(argv[2]).write_text(json.dumps(summary, default=str))
    return 0
