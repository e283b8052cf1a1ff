"""The ``clip`` backbone: open_clip image and text embeddings.

The model comes from settings: ``CLIP_MODEL`` names an open_clip config
(built in, or registered from the JSON file ``CLIP_MODEL_CONFIG``), and the
weights are either the local file ``CLIP_CHECKPOINT`` or the pretrained tag
``CLIP_PRETRAINED`` found in the local cache. Nothing is downloaded unless
``CLIP_ALLOW_DOWNLOAD`` is set: on an offline machine the hub is unreachable
and a download attempt would stall a worker on network timeouts.

``CLIP_PRETRAINED=none`` creates the model with random weights. The
embeddings then carry no meaning; tests and benchmarks use it to run the real
code path without weights.
"""

import logging
import os
from pathlib import Path

import numpy as np
from django.core.exceptions import ImproperlyConfigured
from PIL import Image

from scoring.backbones import Backbone, BackboneUnavailable, configure_torch_threads
from taste_site.conf import salon_settings

logger = logging.getLogger(__name__)

RANDOM_WEIGHTS = "none"
RANDOM_WEIGHTS_SEED = 0

# Preprocess keys of an open_clip pretrained config and the arguments of
# create_model_and_transforms that set them: the model must use the
# normalisation and resizing its weights were trained with.
_PREPROCESS_ARGUMENTS = {
    "mean": "image_mean", "std": "image_std",
    "interpolation": "image_interpolation", "resize_mode": "image_resize_mode",
}

# Default file names open_clip looks for in a Hugging Face repository.
_HF_WEIGHTS_NAME = "open_clip_pytorch_model.bin"
_HF_SAFE_WEIGHTS_NAME = "open_clip_model.safetensors"

_registered_configs = set()


class ClipBackbone(Backbone):
    """open_clip model with its preprocess and tokenizer, on one device."""

    has_text = True

    def __init__(self, model, preprocess, tokenizer, device, name, dim, batch_size):
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.device = device
        self.name = name
        self.dim = dim
        self.batch_size = batch_size

    def preprocess_frames(self, frames):
        """Return the ``(n, 3, H, W)`` model input tensor of RGB uint8 frames."""
        import torch

        return torch.stack([self.preprocess(Image.fromarray(frame)) for frame in frames])

    def encode_batch(self, pixels):
        """Return the raw ``encode_image`` output of one preprocessed batch as float32 numpy."""
        import torch

        with torch.inference_mode():
            embeddings = self.model.encode_image(pixels.to(self.device))
        return embeddings.float().cpu().numpy()

    def embed_frames(self, frames, segments=None):
        chunks = []
        for start in range(0, len(frames), self.batch_size):
            pixels = self.preprocess_frames(frames[start:start + self.batch_size])
            chunks.append(self.encode_batch(pixels))
        if not chunks:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def embed_texts(self, texts):
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(list(texts[start:start + self.batch_size])).to(self.device)
            with torch.inference_mode():
                chunks.append(self.model.encode_text(tokens).float().cpu().numpy())
        return np.concatenate(chunks).astype(np.float32, copy=False)


def register_model_config(path):
    """Register an open_clip model config (a JSON file, or a folder of them) once per process.

    The config's name is the file name without ``.json``.
    """
    import open_clip

    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise ImproperlyConfigured(
            f"SALON_CLIP_MODEL_CONFIG={str(path)!r} does not exist: name an open_clip JSON model config "
            "or a folder of them, or leave it empty for the built-in configs."
        )
    if path not in _registered_configs:
        open_clip.add_model_config(path)
        _registered_configs.add(path)
    return path


def _cached_hf_file(hf_hub, cache_dir):
    from huggingface_hub import try_to_load_from_cache

    # open_clip writes 'org/repo/' for the default file name and
    # 'org/repo/file.bin' for another one.
    if hf_hub.endswith("/"):
        repo_id, filename = hf_hub.rstrip("/"), _HF_WEIGHTS_NAME
    else:
        repo_id, filename = os.path.split(hf_hub)
    candidates = [filename]
    if filename == _HF_WEIGHTS_NAME:
        candidates.insert(0, _HF_SAFE_WEIGHTS_NAME)
    elif filename.endswith((".bin", ".pth")):
        candidates.insert(0, filename[:-4] + ".safetensors")
    for candidate in candidates:
        found = try_to_load_from_cache(repo_id, candidate, cache_dir=cache_dir or None)
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def find_cached_weights(pretrained_cfg, cache_dir=""):
    """Return the local path of a pretrained tag's weights, or None when they are not on disk.

    Looks where open_clip would download them: the Hugging Face cache for
    ``hf_hub`` entries and ``~/.cache/clip`` (or ``cache_dir``) for URLs.
    Makes no network request.
    """
    if pretrained_cfg.get("file") and os.path.isfile(pretrained_cfg["file"]):
        return pretrained_cfg["file"]
    if pretrained_cfg.get("hf_hub"):
        found = _cached_hf_file(pretrained_cfg["hf_hub"], cache_dir)
        if found:
            return found
    if pretrained_cfg.get("url"):
        folder = cache_dir or os.path.expanduser("~/.cache/clip")
        candidate = os.path.join(folder, os.path.basename(pretrained_cfg["url"]))
        if os.path.isfile(candidate):
            return candidate
    return None


def resolve_weights(model_name, pretrained, checkpoint, allow_download, cache_dir=""):
    """Decide where the weights come from, without loading them.

    Returns
    -------
    tuple of (str or None, str, dict)
        The ``pretrained`` argument for open_clip (a tag when downloads are
        allowed, else a local file, or None for random weights), the label
        used in the backbone name, and extra keyword arguments for
        ``create_model_and_transforms``.

    Raises
    ------
    BackboneUnavailable
        When the weights are not on this machine.
    django.core.exceptions.ImproperlyConfigured
        When the tag is unknown for the model.
    """
    import open_clip

    tag = (pretrained or "").strip()
    tag_cfg = {}
    if tag and tag.lower() != RANDOM_WEIGHTS:
        tag_cfg = open_clip.get_pretrained_cfg(model_name, tag)
        if not tag_cfg:
            known = ", ".join(open_clip.list_pretrained_tags_by_model(model_name)) or "none"
            raise ImproperlyConfigured(
                f"SALON_CLIP_PRETRAINED={tag!r} is not a pretrained tag of {model_name}. Known tags: {known}. "
                f"Use {RANDOM_WEIGHTS!r} for random weights (tests and benchmarks only)."
            )
    # The tag's activation and normalisation apply to its weights whether they
    # come from the cache or from CLIP_CHECKPOINT: OpenAI's weights, for one,
    # need QuickGELU, which the plain ViT-B-32 config does not use.
    extra = {}
    if tag_cfg:
        extra["force_quick_gelu"] = bool(tag_cfg.get("quick_gelu", False))
        for key, argument in _PREPROCESS_ARGUMENTS.items():
            if key in tag_cfg:
                extra[argument] = tag_cfg[key]

    if checkpoint:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise BackboneUnavailable(
                f"SALON_CLIP_CHECKPOINT={checkpoint!r} is not a file. Point it at the model's weights "
                "(.pt, .bin or .safetensors) or leave it empty to use the pretrained tag."
            )
        return str(path), path.name, extra
    if not tag_cfg:
        return None, RANDOM_WEIGHTS, extra
    if allow_download:
        return tag, tag, extra
    local = find_cached_weights(tag_cfg, cache_dir)
    if local is None:
        raise BackboneUnavailable(
            f"The weights of {model_name}/{tag} are not in the local cache and downloads are off. "
            "Copy them into the Hugging Face cache (or SALON_CLIP_CACHE_DIR), set SALON_CLIP_CHECKPOINT "
            "to the weights file, or set SALON_CLIP_ALLOW_DOWNLOAD=1 on a machine that can reach the hub."
        )
    return local, tag, extra


def select_device(configured=""):
    """Return the torch device name: ``configured``, else CUDA when available, else CPU."""
    import torch

    if configured:
        return configured
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_clip_backbone():
    """Create the open_clip backbone that the settings describe.

    Raises
    ------
    BackboneUnavailable
        When open_clip is not installed or the weights are missing or unreadable.
    django.core.exceptions.ImproperlyConfigured
        For an unknown model, config file or tag.
    """
    allow_download = bool(salon_settings.CLIP_ALLOW_DOWNLOAD)
    if not allow_download:
        # Read by huggingface_hub when it is first imported: any lookup a
        # tokenizer or config makes then fails at once instead of waiting on
        # an unreachable hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import open_clip
        import torch
    except ImportError as error:
        raise BackboneUnavailable(f"open_clip_torch is not installed: {error}") from error

    threads = configure_torch_threads()
    if salon_settings.CLIP_MODEL_CONFIG:
        register_model_config(salon_settings.CLIP_MODEL_CONFIG)
    model_name = salon_settings.CLIP_MODEL
    if open_clip.get_model_config(model_name) is None:
        raise ImproperlyConfigured(
            f"SALON_CLIP_MODEL={model_name!r} is not an open_clip model config. Use a built-in name "
            "(open_clip.list_models()) or register your own JSON file with SALON_CLIP_MODEL_CONFIG."
        )

    cache_dir = salon_settings.CLIP_CACHE_DIR
    pretrained, label, extra = resolve_weights(
        model_name, salon_settings.CLIP_PRETRAINED, salon_settings.CLIP_CHECKPOINT, allow_download, cache_dir
    )
    device = select_device(salon_settings.CLIP_DEVICE)
    try:
        # A fixed seed makes random weights the same in every process, so two
        # worker children (or a worker and a test) agree on the features.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=pretrained, device=device, cache_dir=cache_dir or None, **extra
            )
    except (RuntimeError, OSError, ValueError, KeyError) as error:
        # open_clip raises RuntimeError for unreadable or mismatched weights,
        # torch raises OSError, ValueError or KeyError for damaged files.
        raise BackboneUnavailable(f"Could not load {model_name} weights from {pretrained}: {error}") from error
    model.eval()

    name = f"clip:{model_name}:{label}"
    dim = int(open_clip.get_model_config(model_name)["embed_dim"])
    if pretrained is None:
        logger.warning("Backbone %s has random weights: its features are for tests and benchmarks only", name)
    logger.info("Loaded backbone %s on %s with %d torch threads (pid %d)", name, device, threads, os.getpid())
    return ClipBackbone(
        model, preprocess, open_clip.get_tokenizer(model_name), device, name, dim,
        batch_size=salon_settings.ENCODER_BATCH_FRAMES,
    )
