"""The builder's LLM backend: U, A and R played by models behind OpenAI-compatible endpoints,
with the prompts each role sees and the parsing of what comes back."""

from __future__ import annotations

from kardia.build.loop import BUILD_VERSION, Dialogue, Draft, Verdict
from kardia.client import ChatClient
from kardia.data import VERDICTS
from kardia.emotions import normalize_emotion
from kardia.rubric import json_objects, quote_case
from kardia.spans import parse_spans, render_spans

# U — the user simulator sees the supporter's replies (response spans only) as the other party.
USER_PROMPT = """You are role-playing a person who is talking to a supportive listener.
Stay in character; you are this person, never an assistant or an AI.

Your profile:
{person}

What happened to you: {situation}
How you feel about it: {emotion}

Write only your next message: one to three sentences in the first person, casual and natural, \
revealing a bit more about what happened or how you feel. Do not name your emotion with the \
exact word "{emotion}". When the listener has really helped and you feel understood, say so and \
close the conversation politely."""
USER_OPENING = "(The conversation starts now. Write your first message to the listener.)"

# A's revision request: the draft goes back with R's feedback.
REVISION_PROMPT = """An evaluator rejected your last reply.
Feedback: {feedback}
Write the reply again, with all four spans in order, fixing what the feedback names."""

# R — the rubric evaluator: one verdict per candidate turn, as JSON.
EVALUATOR_PROMPT = """You are the rubric evaluator of an emotional-support dialogue dataset.
You see the user's profile, their situation, the reference emotion, the dialogue so far and a \
candidate assistant turn with four spans: understanding, reasoning, emotion and response.

Give one verdict:
- "FAIL": the turn must be rewritten: a span is missing or empty; the emotion label is not the \
user's emotion; the understanding ignores who the user is; the response is generic, dismissive, \
unsafe, longer than about 40 words, or does not answer the last user message.
- "PASS": the turn is acceptable and the conversation should go on.
- "SOLVED": the turn is acceptable and the user's concern is resolved; the dialogue ends here.

Reply with one JSON object only: {{"verdict": "FAIL" | "PASS" | "SOLVED", "feedback": "<one \
sentence: what to fix, or why it is good>"}}"""

VERDICT_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": list(VERDICTS)},
        "feedback": {"type": "string"},
    },
    "required": ["verdict", "feedback"],
    "additionalProperties": False,
}


def _clean_user_turn(text: str) -> str:
    text = text.strip().strip('"').strip()
    if not text or len(text.split()) > 200:
        raise ValueError("empty or overlong user turn")
    if "_begin|>" in text or "<understanding>" in text:
        raise ValueError("user turn contains span markup")
    return text


def _canonical_turn(text: str) -> str:
    """Accept a responder reply only with four complete spans and a valid label; re-render it in
    the canonical KardiaBench style."""
    spans = parse_spans(text)
    if not spans.complete:
        raise ValueError("reply without four complete spans")
    label = normalize_emotion(spans.emotion or "")
    if label is None:
        raise ValueError(f"emotion span {spans.emotion!r} is not one of the 32 labels")
    return render_spans(spans.understanding, spans.reasoning, label, spans.response)


def parse_verdict(text: str) -> Verdict:
    """R's reply: one JSON object with ``verdict`` (FAIL/PASS/SOLVED) and ``feedback``."""
    for obj in json_objects(text):
        if isinstance(obj, dict) and "verdict" in obj:
            label = str(obj["verdict"]).strip().upper()
            if label not in VERDICTS:
                raise ValueError(f"verdict {obj['verdict']!r} not in {VERDICTS}")
            return Verdict(label, str(obj.get("feedback", ""))[:500])
    raise ValueError("no JSON object with a 'verdict' key")


class LLMBackend:
    """U, A and R played by LLMs behind OpenAI-compatible endpoints (``vllm serve``, hosted APIs).

    ``generator`` plays U and A (sampled, temperature > 0 for variety); ``evaluator`` plays R
    (temperature 0); both are ``kardia.client.ChatClient`` instances, so concurrency, retries and
    the SQLite reply cache come from the judge client. Pass the same client twice to use one
    model for all three roles, as the paper did.
    """

    def __init__(self, generator, evaluator=None):
        self.generator = generator
        self.evaluator = evaluator or generator
        self.response_format = {
            "type": "json_schema",
            "json_schema": {"name": "verdict", "schema": VERDICT_SCHEMA},
        }

    def user_messages(self, d: Dialogue) -> list[dict]:
        """U's view: its own turns as ``assistant``, the listener's replies as ``user``."""
        seed = d.seed
        messages = [
            {
                "role": "system",
                "content": USER_PROMPT.format(
                    person=seed.person, situation=seed.situation["situation"], emotion=seed.emotion
                ),
            },
            {"role": "user", "content": USER_OPENING},
        ]
        for m in d.history():
            if m["role"] == "user":
                messages.append({"role": "assistant", "content": m["content"]})
            else:
                reply = parse_spans(m["content"]).response or ""
                messages.append({"role": "user", "content": reply})
        return messages

    def responder_messages(self, d: Dialogue, draft: Draft | None) -> list[dict]:
        messages = [dict(m) for m in d.messages]
        if draft is not None:
            messages += [
                {"role": "assistant", "content": draft.text},
                {"role": "user", "content": REVISION_PROMPT.format(feedback=draft.feedback)},
            ]
        return messages

    def evaluator_messages(self, d: Dialogue, candidate: str) -> list[dict]:
        case = {
            "user_profile": d.seed.person,
            "situation": d.seed.situation["situation"],
            "reference_emotion": d.seed.emotion,
            "dialogue_so_far": d.history(),
            "candidate_turn": parse_spans(candidate).as_dict(),
        }
        user = f"Evaluate the candidate turn.\n<case>\n{quote_case(case)}\n</case>\nJSON only."
        return [
            {"role": "system", "content": EVALUATOR_PROMPT},
            {"role": "user", "content": user},
        ]

    def user_turns(self, dialogues):
        return self.generator.complete(
            [self.user_messages(d) for d in dialogues],
            _clean_user_turn,
            namespace=f"{BUILD_VERSION}/user",
        )

    def respond(self, dialogues, drafts):
        return self.generator.complete(
            [self.responder_messages(d, dr) for d, dr in zip(dialogues, drafts, strict=True)],
            _canonical_turn,
            namespace=f"{BUILD_VERSION}/respond",
        )

    def evaluate(self, dialogues, candidates):
        if not dialogues:
            return []
        return self.evaluator.complete(
            [self.evaluator_messages(d, c) for d, c in zip(dialogues, candidates, strict=True)],
            parse_verdict,
            namespace=f"{BUILD_VERSION}/evaluate",
            response_format=self.response_format,
        )


def llm_backend(section: dict | None, seed: int = 0) -> LLMBackend:
    """An ``LLMBackend`` from a ``build_data.llm`` section: ``base_url``, ``model``, optional
    ``evaluator_model`` (R at temperature 0; null: the same model) and the client settings."""
    cfg = dict(section or {})
    missing = [k for k in ("base_url", "model") if not cfg.get(k)]
    if missing:
        raise ValueError(f"backend 'llm' needs build_data.llm.{', '.join(missing)}")
    common = {
        k: cfg[k]
        for k in ("api_key_env", "concurrency", "timeout_s", "max_retries", "cache_path")
        if cfg.get(k) is not None
    }
    max_tokens = int(cfg.get("max_tokens", 1024))
    generator = ChatClient(
        cfg["base_url"], cfg["model"], temperature=float(cfg.get("temperature", 0.8)),
        seed=seed, max_tokens=max_tokens, **common,
    )  # fmt: skip
    evaluator = ChatClient(
        cfg["base_url"], cfg.get("evaluator_model") or cfg["model"], temperature=0.0,
        seed=seed, max_tokens=max_tokens, **common,
    )  # fmt: skip
    return LLMBackend(generator, evaluator)


__all__ = [
    "EVALUATOR_PROMPT",
    "LLMBackend",
    "REVISION_PROMPT",
    "USER_OPENING",
    "USER_PROMPT",
    "VERDICT_SCHEMA",
    "llm_backend",
    "parse_verdict",
]
