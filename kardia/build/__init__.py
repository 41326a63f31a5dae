"""The model-in-the-loop dialogue builder of KardiaBench (SPEC §2.1), one module per concern:

* ``kardia.build.loop`` — the U/A/R loop, ``build_dialogues``: a user simulator U, a responder A
  and a rubric evaluator R over batches of dialogues, verdict histories kept per turn;
* ``kardia.build.filters`` — what is kept afterwards: ``post_filter`` (broken structure, identity
  drift, emotion jumps, then ``semantic_dedup``) and the corpus's ``diversity``;
* ``kardia.build.llm`` — ``LLMBackend``: U, A and R played by LLMs behind OpenAI-compatible
  endpoints, with their prompts (``BUILD_VERSION`` in the loop versions them);
* ``kardia.build.offline`` — ``OfflineBackend``: U and A composed from the seed bank, R by rules
  (the embedded default: no model, no network);
* ``kardia.build.backends`` — ``make_backend``: which of the two ``build_data.backend`` names;
* ``kardia.build.rejudge`` — verdicts for a loaded dataset that has none, from a rubric judge.

Imports run one way: the backends import the loop, never the reverse. The system message in front
of every dialogue lives in ``kardia.system_prompt``.
"""
