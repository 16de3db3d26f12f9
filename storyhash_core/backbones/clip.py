"""CLIP image tower through Hugging Face ``transformers`` (default
``openai/clip-vit-base-patch32``).

Weights come from the hub name (downloaded once into the Hugging Face cache) or from a
local folder holding ``config.json``, the weights and ``preprocessor_config.json``.
Preprocessing is the model's own ``CLIPImageProcessor``; the output is the projected
512-D ``image_embeds``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..cache import file_digest
from . import BackboneError, batched


def clip_weights_available(name_or_path: str) -> bool:
    """True if the weights load without the network (a local folder or the HF cache)."""
    from transformers import CLIPVisionConfig

    try:
        CLIPVisionConfig.from_pretrained(name_or_path, local_files_only=True)
    except (OSError, ValueError):
        return False
    return True


def hub_reachable(timeout: float = 3.0) -> bool:
    """True if the Hugging Face endpoint answers a TCP connection (and offline mode is off)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def folder_weights_id(folder: Path) -> str:
    """The weights of a local CLIP folder: its weight and config files' digests."""
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".json"))
    return "clip:" + ",".join(f"{p.name}={file_digest(p)[:16]}" for p in files)


def _weights_id(model, name_or_path: str) -> str:
    if Path(name_or_path).is_dir():
        return folder_weights_id(Path(name_or_path))
    return f"clip:{name_or_path}@{getattr(model.config, '_commit_hash', None) or 'unknown'}"


class ClipBackbone:
    name = "clip"

    def __init__(self, name_or_path: str, batch_size: int = 32, threads: int = 1) -> None:
        import torch
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        torch.set_num_threads(threads)
        try:
            self.model = CLIPVisionModelWithProjection.from_pretrained(name_or_path).eval()
            self.processor = CLIPImageProcessor.from_pretrained(name_or_path)
        except OSError as exc:
            raise BackboneError(
                f"cannot load CLIP weights {name_or_path!r}: not in the Hugging Face cache and not"
                " downloadable here (with internet they download on first use; offline, set"
                " backbone.weights to a local folder saved with save_pretrained)"
            ) from exc
        self.dim = int(self.model.config.projection_dim)
        self.weights_id = _weights_id(self.model, name_or_path)
        self.batch_size = batch_size

    def forward(self, pixel_values) -> np.ndarray:
        """The bare model on a preprocessed batch."""
        import torch

        with torch.inference_mode():
            return self.model(pixel_values=pixel_values).image_embeds.numpy()

    def preprocess(self, frames: np.ndarray):
        return self.processor(images=list(frames), return_tensors="pt")["pixel_values"]

    def embed(self, frames: np.ndarray) -> np.ndarray:
        return batched(lambda f: self.forward(self.preprocess(f)), frames, self.batch_size)
