"""The offline generator backend: U, A and R with no model, composed from the seed bank.

It stands in for the LLM of the paper's builder so that the embedded default needs no download
and no GPU, and it runs the very same loop (``kardia.build.loop.build_dialogues``):

* **U** opens with the situation and how it feels, reveals the situation's details turn by turn,
  reacts to the replies, brings in the persona, and closes with thanks after a planned number of
  exchanges (drawn per dialogue, mean near the paper's 8 turns).
* **A** composes the four spans from phrase banks, the persona's MBTI traits, the situation's
  topic and the last user turn. Like a real model it makes mistakes: each dialogue draws a flaw
  rate, and a candidate may carry one flaw (wrong label, missing persona, generic, dismissive,
  overlong reply, or a missing span). A revision avoids the flaws named in the feedback.
* **R** is a transparent rule evaluator that reads only the text: a check list (spans complete,
  label equals the reference emotion, understanding names the user's type, reply on topic, short,
  not dismissive). Any failed check is FAIL with the failed checks as feedback; a passing turn
  after the user signals closure is SOLVED, otherwise PASS.

The phrase banks live in ``data/seed/language.json``; every choice uses the dialogue's own seeded
random generator, so a build is reproducible and independent of batch order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from kardia.build.filters import mbti_types
from kardia.build.loop import Dialogue, Draft, Verdict
from kardia.emotions import EMOTIONS, normalize_emotion, valence
from kardia.lexicon_judge import DISMISSIVE
from kardia.seed import MBTI_TYPES
from kardia.spans import parse_spans, render_spans
from kardia.text import words

FLAWS = ("wrong_emotion", "no_persona", "generic", "dismissive", "overlong", "missing_span")
CHECKS = (
    "complete_spans",
    "emotion_matches",
    "persona_grounded",
    "on_topic",
    "concise",
    "not_dismissive",
)
# Which check catches which flaw: the feedback names checks, the revision avoids their flaws.
CAUGHT_BY = {
    "missing_span": "complete_spans",
    "wrong_emotion": "emotion_matches",
    "no_persona": "persona_grounded",
    "generic": "on_topic",
    "overlong": "concise",
    "dismissive": "not_dismissive",
}
MAX_RESPONSE_WORDS = 40

_STOP = frozenset(
    """
    about above after again against all also and any are because been before being below between
    both but can could did does doing down during each few for from further had has have having
    her here hers herself him himself his how into its itself just like more most much myself
    nor not now off once only other our ours out over own really same she should some such than
    that that's the their theirs them themselves then there these they this those through too
    under until very was were what when where which while who whom why will with would you your
    yours yourself feel feeling felt thing things something still even know think want going
    been make made keep kept said says told tell get got
    """.split()
)
_THIRD_PERSON = [
    (re.compile(r"\bI'm\b"), "they're"),
    (re.compile(r"\bI am\b"), "they are"),
    (re.compile(r"\bI was\b"), "they were"),
    (re.compile(r"\bI've\b"), "they've"),
    (re.compile(r"\bI'd\b"), "they'd"),
    (re.compile(r"\bI'll\b"), "they'll"),
    (re.compile(r"\bI\b"), "they"),
    (re.compile(r"\bmyself\b", re.I), "themselves"),
    (re.compile(r"\bmy\b", re.I), "their"),
    (re.compile(r"\bmine\b", re.I), "theirs"),
    (re.compile(r"\bme\b", re.I), "them"),
    (re.compile(r"\bthey was\b"), "they were"),
]


def content_words(text: str) -> set[str]:
    return {w for w in words(text) if len(w) > 3 and w not in _STOP}


def third_person(sentence: str) -> str:
    """A first-person sentence retold about the user ("I lost my keys" → "they lost their keys")."""
    for pattern, repl in _THIRD_PERSON:
        sentence = pattern.sub(repl, sentence)
    return sentence


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s[:2] != "I " and not s.startswith("I'") else s


def _sentence(s: str) -> str:
    s = s.strip()
    s = s[:1].upper() + s[1:]
    return s if s.endswith((".", "!", "?")) else s + "."


def _mood(emotion: str) -> str:
    return {1: "positive", -1: "negative", 0: "neutral"}[valence(emotion)]


class OfflineBackend:
    """The seed-bank composer; see the module docstring. ``language`` is ``language.json``."""

    def __init__(
        self,
        language: dict,
        *,
        hard_share: float = 0.3,
        flaw_rate_easy: Sequence[float] = (0.05, 0.35),
        flaw_rate_hard: Sequence[float] = (0.5, 0.65),
        exchanges: dict[int, float] | None = None,
        max_response_words: int = MAX_RESPONSE_WORDS,
    ):
        """``hard_share`` of the dialogues draw their flaw rate from ``flaw_rate_hard``, the rest
        from ``flaw_rate_easy`` (a rate above 0.5 gives more FAIL than PASS verdicts, so the
        dialogue lands in the hard split). ``exchanges`` weights the planned dialogue length."""
        self.lang = language
        self.hard_share = hard_share
        self.flaw_rates = {"easy": tuple(flaw_rate_easy), "hard": tuple(flaw_rate_hard)}
        # default: skewed long, mean 7.7 exchanges (the paper averages 8.07 turns per dialogue)
        exchanges = exchanges or {3: 4, 4: 6, 5: 8, 6: 10, 7: 14, 8: 18, 9: 18, 10: 22}
        # papermill passes parameters through JSON, which turns the int keys into strings
        self.exchanges = {int(k): float(w) for k, w in exchanges.items()}
        self.max_response_words = max_response_words
        missing = [e for e in EMOTIONS if e not in language["feelings"]]
        if missing:
            raise ValueError(f"language.json: no 'feelings' for {missing}")

    # --- U ------------------------------------------------------------------------------------

    def _plan(self, d: Dialogue) -> dict:
        if not d.state:
            rng = d.rng
            lengths, weights = zip(*sorted(self.exchanges.items()), strict=True)
            details = list(d.seed.situation["details"])
            rng.shuffle(details)
            hard = rng.random() < self.hard_share
            lo, hi = self.flaw_rates["hard" if hard else "easy"]
            d.state.update(
                closing_turn=int(rng.choices(lengths, weights)[0]) - 1,
                details=details,
                flaw_rate=rng.uniform(lo, hi),
                activities=list(d.seed.persona["recent_activities"]),
            )
        return d.state

    def user_turns(self, dialogues: Sequence[Dialogue]) -> list[str | None]:
        return [self._user_turn(d) for d in dialogues]

    def _user_turn(self, d: Dialogue) -> str:
        plan, rng, lang = self._plan(d), d.rng, self.lang
        mood = _mood(d.seed.emotion)
        turn = len(d.history("user"))
        feeling = rng.choice(lang["feelings"][d.seed.emotion])
        if turn == 0:
            parts = [d.seed.situation["situation"], rng.choice(lang["feeling_lines"]).format(
                feeling=feeling)]  # fmt: skip
            if rng.random() < 0.7:
                parts.insert(0, rng.choice(lang["openers"][mood]))
            return _tidy(" ".join(_sentence(p) for p in parts))
        if turn >= plan["closing_turn"]:
            return rng.choice(lang["closings"][mood])
        parts = [rng.choice(lang["reactions"][mood])] if rng.random() < 0.75 else []
        if plan["details"]:
            detail = plan["details"].pop()
            lead = rng.choice(lang["detail_leads"])
            parts.append(lead + _lower_first(detail) if lead else detail)
        elif plan["activities"] and rng.random() < 0.6:
            activity = plan["activities"].pop()
            parts.append(rng.choice(lang["activity_lines"]).format(activity=_lower_first(activity)))
        else:
            parts.append(rng.choice(lang["persona_lines"][mood]).format(
                trait=self._trait(d, first_person=True), feeling=feeling,
                topic=_retell_topic(d.seed.situation["topic"], "first")))  # fmt: skip
        if rng.random() < 0.35:
            parts.append(rng.choice(lang["user_questions"]))
        return _tidy(" ".join(_sentence(p) for p in parts))

    # --- A ------------------------------------------------------------------------------------

    def _trait(self, d: Dialogue, first_person: bool = False) -> str:
        letter = d.rng.choice(d.seed.persona["mbti"])
        trait = d.rng.choice(self.lang["traits"][letter])
        return trait["first" if first_person else "third"]

    def respond(self, dialogues: Sequence[Dialogue], drafts: Sequence[Draft | None]):
        return [self._respond(d, dr) for d, dr in zip(dialogues, drafts, strict=True)]

    def _respond(self, d: Dialogue, draft: Draft | None) -> str:
        plan, rng, lang = self._plan(d), d.rng, self.lang
        avoid = set() if draft is None else set(draft.feedback.split(", "))
        flaw = None
        if rng.random() < plan["flaw_rate"]:
            options = [f for f in FLAWS if CAUGHT_BY[f] not in avoid]
            flaw = rng.choice(options) if options else None
        mood = _mood(d.seed.emotion)
        mbti, topic = d.seed.persona["mbti"], d.seed.situation["topic"]
        last_user = d.history("user")[-1]["content"]
        closing = self._closing(last_user, d)
        fill = {
            "mbti": mbti,
            "a_mbti": "an " + mbti,  # every type starts with I or E
            "trait": self._trait(d),
            "topic": topic,
            "feeling": rng.choice(lang["feelings"][d.seed.emotion]),
            "emotion": d.seed.emotion,
            "need": rng.choice(lang["needs"][mood]),
        }
        # A writes about the user in the third person and replies to them in the second.
        about = {**fill, "topic": _retell_topic(topic, "third")}
        gist = self._gist(d, last_user)
        if closing:
            understanding = [rng.choice(lang["understanding_closing"]).format(**about)]
        else:
            understanding = [rng.choice(lang["understanding"]).format(**about)]
            if gist:
                understanding.append(rng.choice(lang["gist_lines"]).format(gist=gist))
        if flaw == "no_persona":
            other = rng.choice([t for t in MBTI_TYPES if t != mbti])
            understanding = [u.replace(mbti, other) for u in understanding]
        reasoning = [rng.choice(lang["reasoning"][mood]).format(**about),
                     rng.choice(lang["strategies"][mood]).format(**about)]  # fmt: skip
        emotion = d.seed.emotion
        if flaw == "wrong_emotion":
            emotion = rng.choice([e for e in EMOTIONS if e != d.seed.emotion])
        if closing:
            response = [rng.choice(lang["closing_responses"][mood]).format(**fill)]
        else:
            response = [rng.choice(lang["responses"][mood]).format(**fill)]
            if rng.random() < 0.6:
                response.append(rng.choice(lang["response_questions"][mood]).format(**fill))
        if flaw == "generic":
            response = [rng.choice(lang["flaw_generic"])]
        elif flaw == "dismissive":
            response = [rng.choice(lang["flaw_dismissive"]), *response[:1]]
        elif flaw == "overlong":
            response = response + rng.sample(lang["flaw_padding"], 3)
        text = render_spans(
            _tidy(" ".join(understanding)),
            _tidy(" ".join(reasoning)),
            emotion,
            _tidy(" ".join(response)),
        )
        if flaw == "missing_span":
            name = rng.choice(["understanding", "reasoning", "emotion", "response"])
            text = re.sub(rf"<\|{name}_begin\|>.*?<\|{name}_end\|>", "", text, flags=re.S)
        return text

    def _gist(self, d: Dialogue, last_user: str) -> str:
        """The user's newest sentence that says something, retold in the third person."""
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", last_user) if len(s.split()) >= 6]
        if not sentences:
            return ""
        s = _LEAD.sub("", sentences[-1].rstrip(".!?"))
        s = third_person(s)
        return s[:1].lower() + s[1:]

    def _closing(self, user_text: str, d: Dialogue | None = None) -> bool:
        """The user signals their concern is addressed (never in the opening message)."""
        if d is not None and len(d.history("user")) < 2:
            return False
        low = user_text.lower()
        return any(cue in low for cue in self.lang["closure_cues"])

    # --- R ------------------------------------------------------------------------------------

    def evaluate(self, dialogues: Sequence[Dialogue], candidates: Sequence[str]):
        return [self.verdict(d, c) for d, c in zip(dialogues, candidates, strict=True)]

    def failed_checks(self, d: Dialogue, candidate: str) -> list[str]:
        """The checks of ``CHECKS`` that a candidate turn fails (reads only the text)."""
        spans = parse_spans(candidate)
        if not spans.complete:
            return ["complete_spans"]
        failed = []
        if normalize_emotion(spans.emotion or "") != d.seed.emotion:
            failed.append("emotion_matches")
        if mbti_types(spans.understanding or "") != {d.seed.persona["mbti"]}:
            failed.append("persona_grounded")
        response = spans.response or ""
        last_user = d.history("user")[-1]["content"]
        context = content_words(last_user) | content_words(d.seed.situation["topic"])
        if not self._closing(last_user, d) and not content_words(response) & context:
            failed.append("on_topic")
        if len(response.split()) > self.max_response_words:
            failed.append("concise")
        low = response.lower()
        if any(p in low for p in DISMISSIVE):
            failed.append("not_dismissive")
        return failed

    def verdict(self, d: Dialogue, candidate: str) -> Verdict:
        failed = self.failed_checks(d, candidate)
        if failed:
            return Verdict("FAIL", ", ".join(failed))
        if self._closing(d.history("user")[-1]["content"], d):
            return Verdict("SOLVED", "the user feels helped and the reply closes warmly")
        return Verdict("PASS", "grounded, on topic and supportive")


_RETELL = {
    # seed topics are second person ("your sister's wedding"); U says "my", A's notes say "their"
    "first": [(r"\byou're\b", "I'm"), (r"\byourself\b", "myself"), (r"\byours\b", "mine"),
              (r"\byour\b", "my"), (r"\byou\b", "me")],
    "third": [(r"\byou're\b", "they're"), (r"\byourself\b", "themselves"),
              (r"\byours\b", "theirs"), (r"\byour\b", "their"), (r"\byou\b", "them")],
}  # fmt: skip


def _retell_topic(topic: str, person: str) -> str:
    for pattern, repl in _RETELL[person]:
        topic = re.sub(pattern, repl, topic)
    return topic


# Discourse markers that open a user sentence but not a retelling of it.
_LEAD = re.compile(
    r"^(?:(?:and|also|so|but|honestly|to be honest|the thing is|thinking about it more"
    r"|what gets me is that|the other part is that|you know me|yeah|okay)[,:]?\s+)+",
    re.IGNORECASE,
)
_SENTENCE_START = re.compile(r"(^|[.!?]\s+)([a-z])")


def _tidy(text: str) -> str:
    """Capitalise sentence starts (templates put lowercase topics first) and end with a stop."""
    text = _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text.strip())
    return text if text.endswith((".", "!", "?")) else text + "."
