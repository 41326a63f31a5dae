"""``python -m kardia.training <sft|grpo> <config.json> [summary.json]``: what ``launch`` runs on
every rank under ``accelerate launch``."""

import sys

from kardia.training.launch import main

sys.exit(main())
