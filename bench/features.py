"""Throughput of the feature pipeline as a ratio of raw open_clip ``encode_image``.

For each model the benchmark runs, in one process and on the same clips:

1. the pipeline: :func:`scoring.features.compute_features` over every clip in
   batches of ``FEATURE_BATCH_CLIPS`` (``force=True``, so every round writes),
   which decodes with ffmpeg, preprocesses, encodes frames and captions and
   stores ClipFeatures rows;
2. the floor: ``model.encode_image`` alone on the same frames, already
   decoded and preprocessed, in batches of the same size.

Rounds alternate the two, and medians are reported, so load from other
processes on the machine hits both alike. The ratio ``pipeline / floor`` is
the cost of everything around the encoder. The table also gives the parts
of that cost measured on their own: ffmpeg decoding (inside the pipeline),
open_clip's preprocess of the same frames and the text tower on the
distinct captions.

Models: ViT-B-32 and the tests' tiny config, both with random weights
(``CLIP_PRETRAINED=none``; nothing is downloaded), and the handcrafted
backbone, which has no encoder floor. The clips are the real media pack
(``--pack``). Everything lives in a temporary var folder with its own SQLite
database, removed at the end.

Example::

    .venv/bin/python bench/features.py --threads 2 --rounds 3
"""

import argparse
import datetime
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VIDEO_SUFFIXES = {".mp4", ".avi", ".webm", ".mov", ".mkv"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", default=str(REPO_ROOT.parent / "shared" / "media"),
                        help="Folder of media files (searched one level down); default: ../shared/media.")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2).")
    parser.add_argument("--batch-frames", type=int, default=32, help="Encoder batch size in frames (default 32).")
    parser.add_argument("--batch-clips", type=int, default=16, help="Clips per pipeline batch (default 16).")
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds per model (default 3).")
    parser.add_argument("--models", nargs="+", default=["ViT-B-32", "tiny", "handcrafted"],
                        help="Any of ViT-B-32 (or another built-in config), tiny, handcrafted.")
    return parser.parse_args()


def set_up_django(var_dir):
    os.environ["SALON_VAR_DIR"] = str(var_dir)
    os.environ["SALON_MEDIA_ROOT"] = str(var_dir / "media")
    os.environ["SALON_DEBUG"] = "1"
    os.environ.pop("DATABASE_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "taste_site.settings"
    os.environ.setdefault("SALON_LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(REPO_ROOT))

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def make_clips(pack):
    """Create one ready clip per media file of ``pack`` and return them."""
    import csv
    import hashlib

    from django.core.files.base import ContentFile

    from comparisons.models import Clip

    captions = {}
    if (pack / "CAPTIONS.csv").exists():
        with open(pack / "CAPTIONS.csv", newline="") as handle:
            captions = {row["path"]: row["caption"] for row in csv.DictReader(handle)}
    clips = []
    for path in sorted(pack.glob("*/*")):
        suffix = path.suffix.lower()
        if suffix not in VIDEO_SUFFIXES | IMAGE_SUFFIXES:
            continue
        content = path.read_bytes()
        clip = Clip(
            sha256=hashlib.sha256(content).hexdigest(), original_name=path.name, status=Clip.Status.READY,
            kind=Clip.Kind.VIDEO if suffix in VIDEO_SUFFIXES else Clip.Kind.IMAGE,
            caption=captions.get(path.relative_to(pack).as_posix(), ""),
        )
        clip.original.save(path.name, ContentFile(content), save=False)
        clip.rendition.save(path.name, ContentFile(content), save=False)
        clip.save()
        clips.append(clip)
    if not clips:
        raise SystemExit(f"No media files found under {pack}; pass --pack with a folder of videos/ and images/.")
    return clips


def salon_overrides(model, args, config_path):
    from django.conf import settings

    values = dict(settings.SALON)
    values.update(
        TORCH_THREADS=args.threads, ENCODER_BATCH_FRAMES=args.batch_frames, FEATURE_BATCH_CLIPS=args.batch_clips,
        CLIP_PRETRAINED="none", CLIP_CHECKPOINT="", CLIP_DEVICE="cpu", CLIP_MODEL_CONFIG="",
    )
    if model == "handcrafted":
        values.update(BACKBONE="handcrafted")
    elif model == "tiny":
        from tests.openclip_tiny import TINY_MODEL

        values.update(BACKBONE="clip", CLIP_MODEL=TINY_MODEL, CLIP_MODEL_CONFIG=str(config_path))
    else:
        values.update(BACKBONE="clip", CLIP_MODEL=model)
    return values


def run_pipeline(ids, batch_clips):
    from scoring.features import compute_features

    started = time.perf_counter()
    frames = decode_ms = encode_ms = 0
    for start in range(0, len(ids), batch_clips):
        run = compute_features(ids[start:start + batch_clips], force=True)
        if run.failed:
            raise SystemExit(f"Clips failed: {run.failed}")
        frames += run.frames
        decode_ms += run.decode_ms
        encode_ms += run.encode_ms
    return time.perf_counter() - started, frames, decode_ms, encode_ms


def run_floor(backbone, frames, texts):
    """Return the seconds of preprocess, of ``encode_image`` alone and of the text tower, in that order."""
    started = time.perf_counter()
    pixels = backbone.preprocess_frames(frames)
    preprocess = time.perf_counter() - started

    started = time.perf_counter()
    for start in range(0, len(pixels), backbone.batch_size):
        backbone.encode_batch(pixels[start:start + backbone.batch_size])
    encode = time.perf_counter() - started

    started = time.perf_counter()
    backbone.embed_texts(texts)
    return preprocess, encode, time.perf_counter() - started


def benchmark(model, args, clips, config_path):
    from django.test import override_settings

    from scoring.backbones import clear_cache, get_backbone
    from scoring.frames import decode_clip

    from scoring.features import clip_text

    ids = [clip.pk for clip in clips]
    with override_settings(SALON=salon_overrides(model, args, config_path)):
        clear_cache()
        backbone = get_backbone()
        has_encoder = hasattr(backbone, "encode_batch")
        if has_encoder:
            frames = [frame for clip in clips for frame in decode_clip(clip).frames]
            texts = sorted({clip_text(clip) for clip in clips} - {""})
            backbone.encode_batch(backbone.preprocess_frames(frames[: backbone.batch_size]))  # warm-up
        pipeline, decode, floors = [], [], []
        for _ in range(args.rounds):
            seconds, n_frames, decode_ms, _ = run_pipeline(ids, args.batch_clips)
            pipeline.append(seconds)
            decode.append(decode_ms / 1000)
            if has_encoder:
                floors.append(run_floor(backbone, frames, texts))
        clear_cache()
    result = {
        "model": backbone.name, "clips": len(ids), "frames": n_frames,
        "pipeline": statistics.median(pipeline), "decode": statistics.median(decode),
        "preprocess": None, "floor": None, "texts": None,
    }
    if floors:
        result["preprocess"] = statistics.median(f[0] for f in floors)
        result["floor"] = statistics.median(f[1] for f in floors)
        result["texts"] = statistics.median(f[2] for f in floors)
    return result


def machine_line(threads):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{datetime.date.today().isoformat()}, {cpu}, {os.cpu_count()} CPUs, load average {load:.1f} at start, "
        f"Python {platform.python_version()}, torch {torch.__version__}, {threads} torch threads"
    )


def main():
    args = parse_arguments()
    pack = Path(args.pack).resolve()
    var_dir = Path(tempfile.mkdtemp(prefix="salon-bench-features-"))
    try:
        set_up_django(var_dir)
        import torch

        torch.set_num_threads(args.threads)
        from tests.openclip_tiny import write_tiny_config

        config_path = write_tiny_config(var_dir / "openclip")
        clips = make_clips(pack)
        print(machine_line(args.threads))
        print(f"Media: {len(clips)} clips from {pack}; encoder batch {args.batch_frames} frames; "
              f"pipeline batch {args.batch_clips} clips; median of {args.rounds} rounds")
        print()
        print("| backbone | clips | frames | pipeline s | clips/s | frames/s | decode s | preprocess s "
              "| encode_image s | encode_image frames/s | texts s | pipeline / encode_image |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for model in args.models:
            result = benchmark(model, args, clips, config_path)
            floor = result["floor"]
            floor_cells = "- | - | - | - | -"
            if floor:
                floor_cells = (
                    f"{result['preprocess']:.2f} | {floor:.2f} | {result['frames'] / floor:.1f} "
                    f"| {result['texts']:.2f} | {result['pipeline'] / floor:.2f}"
                )
            print(
                f"| {result['model']} | {result['clips']} | {result['frames']} | {result['pipeline']:.2f} "
                f"| {result['clips'] / result['pipeline']:.2f} | {result['frames'] / result['pipeline']:.1f} "
                f"| {result['decode']:.2f} | {floor_cells} |",
                flush=True,
            )
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
