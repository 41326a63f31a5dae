"""SFT and Rubric-ERL (GRPO) with TRL, one module per concern:

* ``kardia.training.sft`` / ``kardia.training.grpo`` — the two entry points, ``run_sft`` and
  ``run_grpo``, each read like TRL's own scripts: config → model → trainer → train → save; and
  ``run_config``, which turns the stage's params section into the config they take;
* ``kardia.training.arguments`` — the ``SFTConfig`` / ``GRPOConfig`` built from that config;
* ``kardia.training.checkpoints`` — fingerprints and run folders (resume the same experiment,
  never mix two), safe when every rank of a multi-process run calls them;
* ``kardia.training.selection`` — the best-on-dev rule: every checkpoint scored on dev prompts by
  the same weighted reward, the best one exported;
* ``kardia.training.logs`` — per-step progress lines, logs as CSV, the machine step times came from;
* ``kardia.training.launch`` — one process in the notebook's kernel, or ``accelerate launch``
  (DeepSpeed ZeRO configs in ``configs/accelerate/``; on CPU, gloo), and TRL's vLLM server.

The prompts every stage shares live in ``kardia.prompts``. Heavy libraries are imported lazily.
"""
