"""Evaluation on the test split (SPEC §2.3): every system's replies, scored per item.

Systems come from ``params.yaml`` (``evaluate.systems``), each a name and a kind:

* ``backbone`` — the policy before any training: ``policy.backbone`` as loaded from its path or
  hub id, or for ``tiny`` the same seeded random decoder the SFT stage starts from;
* ``policy``   — a policy a stage saved (``models/sft``, ``models/grpo``);
* ``openai``   — any model behind an OpenAI-compatible endpoint (GPT-4o-style baselines), sent the
  same chat prompts, system message included.

Every reply is scored by the *evaluation* judge (``eval_judge``, GPT-5-mini in the paper) and by
the *training* judge (``judge``), so the report can say how far the two agree. A judge sees the
reply a user would see: the response span, or for a reply without one the whole text with any
span markup removed — a raw backbone or an external model is judged on what it says, and its
format compliance is a separate metric.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from kardia.client import ChatClient
from kardia.data import read_splits
from kardia.emotions import emotion_matches, normalize_emotion
from kardia.generation import generate_from, hf_generate, vllm_generate
from kardia.human_ratings import ieval_situations
from kardia.judges import check_failure_rate
from kardia.metrics import bootstrap_ci, dialogue_of
from kardia.models import (
    backbone_source,
    create_policy,
    dialogue_texts,
    for_generation,
    gpu_memory_utilization,
    load_backbone,
    rollout_backend,
    training_backend,
)
from kardia.offline_judge import DEFAULT_HEADS
from kardia.prompts import prompt_rows, spread
from kardia.rubric import DIMENSIONS, Judgement, JudgeRequest, prompt_history, rubric_score
from kardia.spans import parse_spans
from kardia.system_prompt import system_prompt
from kardia.text import MARKUP

SYSTEM_KINDS = ("backbone", "policy", "openai")
GENERATION_NAMESPACE = "kardia-eval-generation-v1"  # cache namespace of external systems' replies
# judge keys that change the judgements (the rest are how requests are sent)
JUDGE_IDENTITY = ("kind", "base_url", "model", "response_format")


def test_rows(
    turns: Sequence[dict], *, n: int | None, seed: int, history_exchanges: int | None,
    prompt_style: str = "full", keep_opening: bool = False, first_turn_share: float | None = None,
) -> list[dict]:  # fmt: skip
    """The test turns every system answers: a seeded sample of ``n`` (all when ``n`` is None),
    prompts shaped as in training, each with a stable ``item_id`` (``dialogue_id:turn``).

    ``first_turn_share`` reserves that share of the sample for dialogues' first turns (where
    the emotion must be read from the opening alone), so both kinds are measured with enough
    items; None samples all turns alike."""
    rows = prompt_rows(turns, history_exchanges=history_exchanges, prompt_style=prompt_style,
                       keep_opening=keep_opening)  # fmt: skip
    for row, turn in zip(rows, turns, strict=True):
        row["item_id"] = f"{turn['dialogue_id']}:{turn['turn']}"
        row["difficulty"] = turn.get("difficulty")
    return spread(rows, n, seed, first_turn_share)


NO_PROFILE = "(not given)"  # the profile line of a prompt whose user has none


def human_written_rows(root: str | Path, *, n: int | None, seed: int,
                       prompt_style: str = "full") -> list[dict]:  # fmt: skip
    """The human-written test set: situations people wrote for EmpatheticDialogues (as rated in
    iEval, ``kardia.human_ratings.ieval_situations``), each a single-turn prompt shaped like a
    built dialogue's first turn (the same system message, with no profile, then the person's
    own opening message); a seeded sample of ``n`` (all when None)."""
    rows = [
        {
            "item_id": s["item_id"],
            "prompt": [
                {
                    "role": "system",
                    "content": system_prompt(NO_PROFILE, s["situation"], prompt_style),
                },
                {"role": "user", "content": s["opening"]},
            ],  # fmt: skip
            "completion": None,
            "emotion": s["emotion"],
            "person": "",
            "situation": s["situation"],
            "turn": 0,
            "difficulty": None,
        }
        for s in ieval_situations(root)
    ]
    return spread(rows, n, seed)


def visible_reply(text: str) -> str:
    """What the user would read: the response span, else the text without span markup."""
    spans = parse_spans(text)
    if spans.response is not None:
        return spans.response
    return " ".join(MARKUP.sub(" ", text).split())


def check_systems(systems: Mapping[str, Mapping], human_eval_against: str | None = None) -> None:
    """Refuse a malformed ``evaluate.systems`` before anything is generated, including a
    human-evaluation kit that names a system (or lacks ``kardia-r1``) that will not be there."""
    if not systems:
        raise ValueError("evaluate.systems is empty: name at least one system")
    for name, spec in systems.items():
        kind = (spec or {}).get("kind")
        if kind not in SYSTEM_KINDS:
            raise ValueError(f"evaluate.systems.{name}.kind is {kind!r}; expected {SYSTEM_KINDS}")
        need = {"policy": ("path",), "openai": ("base_url", "model")}.get(kind, ())
        missing = [k for k in need if not spec.get(k)]
        if missing:
            raise ValueError(f"evaluate.systems.{name} ({kind}) needs {', '.join(missing)}")
    if human_eval_against is not None:
        absent = [s for s in ("kardia-r1", human_eval_against) if s not in systems]
        if absent:
            raise ValueError(f"the human-evaluation kit compares kardia-r1 with "
                             f"{human_eval_against!r}; evaluate.systems lacks {', '.join(absent)}")  # fmt: skip


def generate_system(
    spec: Mapping,
    rows: Sequence[dict],
    *,
    policy: dict,
    data_dir: str | Path,
    max_new_tokens: int,
    batch_size: int = 32,
    seed: int = 0,
) -> tuple[list[str], list[bool]]:
    """One greedy reply per row from the system ``spec``, and per row whether it could not be
    generated (an external call that failed every retry: its reply is empty and counted)."""
    prompts = [r["prompt"] for r in rows]
    kind = spec["kind"]
    if kind == "openai":
        return _openai_generate(spec, prompts, max_new_tokens=max_new_tokens, seed=seed)
    gen = {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "seed": seed}
    if kind == "policy":

        texts = generate_from(str(spec["path"]), policy, prompts, **gen)
    else:
        texts = _backbone_generate(policy, data_dir, prompts, gen)
    return texts, [False] * len(texts)


def _backbone_generate(policy: dict, data_dir, prompts, gen: dict) -> list[str]:

    backbone, seed = policy["backbone"], gen["seed"]
    if backbone != "tiny":
        backbone = backbone_source(policy)  # a packaged backbone's built folder
    if backbone != "tiny" and rollout_backend() == "vllm":
        return vllm_generate(backbone, prompts, max_new_tokens=gen["max_new_tokens"], seed=seed,
                             gpu_memory_utilization=gpu_memory_utilization(policy))  # fmt: skip
    if backbone == "tiny":  # the decoder the sft stage starts from: same seed, same tokenizer
        import torch

        torch.manual_seed(seed)
        corpus = dialogue_texts(read_splits(data_dir, "dialogues")["train"])
        model, tokenizer = create_policy({**policy, "finetune": "full"}, corpus=corpus, seed=seed)
        model = for_generation(model, policy)  # on the GPU where there is one, as the others
    else:  # the pretrained backbone as published, for inference (no adapters)
        model, tokenizer = load_backbone(backbone, policy, seed=seed, backend=training_backend(),
                                          trainable=False)  # fmt: skip
    return hf_generate(model, tokenizer, prompts, **gen)


def _openai_generate(spec: Mapping, prompts, *, max_new_tokens: int, seed: int):

    client = ChatClient(
        spec["base_url"],
        spec["model"],
        api_key_env=spec.get("api_key_env"),
        concurrency=int(spec.get("concurrency", 16)),
        timeout_s=float(spec.get("timeout_s", 120)),
        max_retries=int(spec.get("max_retries", 3)),
        cache_path=spec.get("cache_path"),
        temperature=0.0,
        seed=seed,
        max_tokens=int(spec.get("max_tokens") or max_new_tokens),
    )
    replies = client.complete(
        [list(p) for p in prompts], _non_empty, namespace=GENERATION_NAMESPACE
    )
    return [r or "" for r in replies], [r is None for r in replies]


def _non_empty(text: str) -> str:
    if not text.strip():
        raise ValueError("empty reply")  # retried like a transport error
    return text.strip()


def free_memory() -> None:
    """Drop the last system's model before the next one loads (each vLLM engine or HF model is
    a local of ``generate_system``; on a GPU its memory returns only after a collection)."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def judge_identity(cfg: Mapping) -> tuple:
    """What makes two judge configs give the same judgements (not how requests are sent)."""
    kind = cfg.get("kind")
    if kind == "offline":  # an offline judge is its heads file

        return ("offline", str(cfg.get("heads") or DEFAULT_HEADS))
    if kind == "lexicon":
        return ("lexicon",)
    return tuple(cfg.get(k) for k in JUDGE_IDENTITY)


def judge_replies(judge, rows: Sequence[dict], texts: Sequence[str],
                  failed: Sequence[bool] | None = None) -> list[Judgement | None]:  # fmt: skip
    """Each reply's ``Judgement`` (five scores on 1..5 and the judge's rationale) from ``judge``,
    None where it failed. A reply that could not be generated (``failed``) is never sent: it
    has no scores to average."""
    failed = list(failed) if failed is not None else [False] * len(rows)
    keep = [i for i, f in enumerate(failed) if not f]
    requests = [
        JudgeRequest(
            persona=str(rows[i].get("person") or ""),
            situation=str(rows[i].get("situation") or ""),
            history=prompt_history(rows[i]["prompt"]),
            response=visible_reply(texts[i]),
            emotion=rows[i].get("emotion"),
        )
        for i in keep
    ]
    out: list[Judgement | None] = [None] * len(rows)
    for i, j in zip(keep, judge.score(requests) if requests else [], strict=True):
        out[i] = j
    return out


def prompt_sha(prompt: Sequence[dict]) -> str:
    """A short fingerprint of the prompt a system answered: runs whose items share ``item_id``
    but not the prompt (another prompt shaping) are other experiments (``seeds.read_runs``)."""
    return hashlib.sha256(json.dumps(list(prompt), sort_keys=True).encode()).hexdigest()[:16]


def item_records(
    system: str,
    rows: Sequence[dict],
    texts: Sequence[str],
    eval_judgements: Sequence[Judgement | None],
    train_judgements: Sequence[Judgement | None],
    failed: Sequence[bool] | None = None,
) -> list[dict]:
    """One JSON-ready record per test item: the reply, what it got right, both judges' scores
    with the evaluation judge's rationale per dimension (so a reader sees why a reply scored what
    it did), and whether the reply could not be generated (``failed``, from ``generate_system``)."""
    out = []
    failed = failed if failed is not None else [False] * len(rows)
    for r, text, ev, tr, gen_failed in zip(rows, texts, eval_judgements, train_judgements, failed,
                                           strict=True):  # fmt: skip
        spans = parse_spans(text)
        predicted = normalize_emotion(spans.emotion) if spans.emotion else None
        out.append(
            {
                "item_id": r["item_id"],
                "prompt_sha": prompt_sha(r["prompt"]),
                "system": system,
                "emotion": r["emotion"],
                "difficulty": r.get("difficulty"),
                "format_ok": spans.complete,
                "predicted_emotion": predicted,
                "emotion_ok": emotion_matches(spans.emotion, r["emotion"]),
                "turn": r.get("turn"),
                "response_words": len(visible_reply(text).split()),
                "generation_failed": bool(gen_failed),
                "eval_scores": None if ev is None else dict(ev.scores),
                "eval_rationale": None if ev is None else dict(ev.rationale),
                "train_scores": None if tr is None else dict(tr.scores),
                "reply": text,
            }
        )
    return out


def check_judge_failures(metrics: Mapping, max_failure_rate: float, system: str) -> None:
    """Stop the stage when the evaluation judge failed on too many of a system's replies."""
    n, failures = metrics["n_generated"], metrics["judge_failures"]
    stats = {"items": n, "failures": failures, "failure_rate": failures / n if n else 0.0}
    check_failure_rate(stats, max_failure_rate, f"evaluation judge on {system}")


def check_generation_failures(metrics: Mapping, max_failure_rate: float, system: str) -> None:
    """Stop the stage when too many of a system's replies could not be generated (an endpoint
    that failed every retry): they are left out of every mean, so many would bias the table."""
    n, failures = metrics["n"], metrics["generation_failures"]
    if n and failures / n > max_failure_rate:
        raise RuntimeError(
            f"{system}: {failures} of {n} replies could not be generated "
            f"({failures / n:.1%} > evaluate.max_failure_rate {max_failure_rate:.1%}); check the "
            "system's endpoint (replies that failed are never scored)"
        )


def system_metrics(
    items: Sequence[dict], *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict:
    """Per-system metrics, each ``{"mean", "low", "high"}``: emotion accuracy and format
    compliance in %, the five dimensions on 1–5 (items the evaluation judge scored), the rubric
    on [0, 1], response words; plus counts of items, judge failures and generation failures.
    Intervals are percentile bootstraps over *dialogues* (``metrics.dialogue_of``: the turns of a
    dialogue are resampled together). A reply that could not be generated is in no mean: it is
    counted in ``generation_failures`` only (an empty reply is not a score of the system)."""

    def ci(chosen: Sequence[dict], value) -> dict:
        mean, low, high = bootstrap_ci([value(i) for i in chosen], resamples=resamples,
                                       confidence=confidence, seed=seed,
                                       groups=[dialogue_of(i["item_id"]) for i in chosen])  # fmt: skip
        return {"mean": mean, "low": low, "high": high}

    generated = [i for i in items if not i["generation_failed"]]
    judged = [i for i in generated if i["eval_scores"] is not None]
    first = [i for i in generated if i.get("turn") == 0]
    later = [i for i in generated if (i.get("turn") or 0) > 0]

    def emotion(i: dict) -> float:
        return 100.0 * i["emotion_ok"]

    return {
        "n": len(items),
        "n_generated": len(generated),
        "n_dialogues": len({dialogue_of(i["item_id"]) for i in generated}),
        "emotion_accuracy": ci(generated, emotion),
        # the first turn: the emotion must come from the situation and the opening alone
        "emotion_accuracy_first_turn": ci(first, emotion),
        "emotion_accuracy_later_turns": ci(later, emotion),
        "n_first_turn": len(first),
        "n_later_turns": len(later),
        **{d: ci(judged, lambda i, d=d: i["eval_scores"][d]) for d in DIMENSIONS},
        "rubric": ci(judged, lambda i: rubric_score(Judgement(scores=i["eval_scores"]))),
        "format_compliance": ci(generated, lambda i: 100.0 * i["format_ok"]),
        "response_words": ci(generated, lambda i: i["response_words"]),
        "judged": len(judged),
        "judge_failures": len(generated) - len(judged),
        "generation_failures": len(items) - len(generated),
    }


def human_written_metrics(
    items: Sequence[dict], *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict:
    """Emotion accuracy and format compliance (in %, with bootstrap CIs) on the human-written
    situations (``human_written_rows``), keyed ``<metric>_human_written``."""
    generated = [i for i in items if not i["generation_failed"]]  # a failed reply is no score
    out = {"n_human_written": len(items), "generation_failures_human_written": len(items) - len(generated)}
    for key, field_ in (("emotion_accuracy", "emotion_ok"), ("format_compliance", "format_ok")):
        mean, low, high = bootstrap_ci([100.0 * i[field_] for i in generated], resamples=resamples,
                                       confidence=confidence, seed=seed)  # fmt: skip
        out[f"{key}_human_written"] = {"mean": mean, "low": low, "high": high}
    return out


def read_generations(folder: str | Path) -> list[dict]:
    """Every system's per-item records from ``results/generations/*.jsonl``."""
    files = sorted(Path(folder).glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no generations in {folder}: run the evaluate stage first")
    return [json.loads(line) for f in files for line in f.open(encoding="utf-8") if line.strip()]


def human_eval_items(rows: Sequence[dict], texts: Sequence[str]) -> dict[str, dict]:
    """``{item_id: {"prompt", "response"}}`` for ``kardia.human_eval.export_pairs``."""
    return {r["item_id"]: {"prompt": r["prompt"], "response": visible_reply(t)}
            for r, t in zip(rows, texts, strict=True)}  # fmt: skip
