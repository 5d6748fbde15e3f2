"""ONNX (fp32, exported with optimum) and int8 (ONNX Runtime dynamic quantisation) formats.

Heavy imports stay inside functions: this module runs only under `models prepare`.
"""
from __future__ import annotations

import shutil
from pathlib import Path

# What the `ort` engine loads; optimum's names.
ONNX_FILES = ("encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx")
# Small text files the ONNX folders carry so each folder is self-contained for an engine.
SIDE_FILES = ("config.json", "generation_config.json", "tokenizer.json", "preprocessor_config.json")
# Written after export and quantisation by onnx_share.
SHARED_FILES = ("decoder_shared.bin", "decoder_shared.json")


def export_onnx(hf_dir: Path, out_dir: Path) -> None:
    import warnings

    from optimum.exporters.onnx import main_export
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    # Separate decoder and decoder-with-past (no merge): ORT's dynamic int8 does not reach into
    # the merged decoder's If-subgraphs, and the plain pair is simpler to drive.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's warnings are about shapes the export fixes anyway
        main_export(str(hf_dir), output=str(out_dir), task="automatic-speech-recognition-with-past",
                    no_post_process=True, do_validation=False, device="cpu")
    _keep_only(out_dir, hf_dir)


def quantize_int8(fp32_dir: Path, out_dir: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_dir.mkdir(parents=True, exist_ok=True)
    # Per-channel weights: per-tensor int8 costs whisper-base several WER points.
    for name in ONNX_FILES:
        quantize_dynamic(str(fp32_dir / name), str(out_dir / name), per_channel=True,
                         weight_type=QuantType.QInt8)
    _keep_only(out_dir, fp32_dir)


def _keep_only(out_dir: Path, side_source: Path) -> None:
    """Leave the ONNX graphs plus the side files an engine needs, nothing else."""
    for path in out_dir.iterdir():
        if path.name not in ONNX_FILES + SIDE_FILES + SHARED_FILES:
            path.unlink() if path.is_file() else shutil.rmtree(path)
    for name in SIDE_FILES:
        if not (out_dir / name).exists():
            shutil.copy2(side_source / name, out_dir / name)
