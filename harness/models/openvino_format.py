"""OpenVINO IR from the store's Hugging Face folder (optimum-intel), fp32 and int8 weight compression (NNCF).

Each folder is what openvino-genai's WhisperPipeline loads: encoder and decoder IRs, the tokenizer and
detokenizer IRs (openvino-tokenizers), and the configs. Heavy imports stay inside the function: this
module runs only under `models prepare`.
"""
from __future__ import annotations

import shutil
from pathlib import Path

# What a folder must hold for the engine (checked by the store's manifest and by the engine at load).
REQUIRED = ("openvino_encoder_model.xml", "openvino_tokenizer.xml", "openvino_detokenizer.xml",
            "generation_config.json", "config.json")


MODELS = ("openvino_encoder_model.xml", "openvino_decoder_model.xml")


def export_openvino(hf_dir: Path, out_dir: Path) -> None:
    """fp32 IR (stateful decoder) with the tokenizer IRs."""
    import logging
    import warnings

    from optimum.exporters.openvino import main_export
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    logging.getLogger("openvino").setLevel(logging.CRITICAL)  # a failed tracing attempt it recovers from
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main_export(model_name_or_path=str(hf_dir), output=str(out_dir),
                    task="automatic-speech-recognition-with-past", convert_tokenizer=True,
                    library_name="transformers", local_files_only=True)
    for name in ("generation_config.json", "preprocessor_config.json"):
        if not (out_dir / name).is_file() and (hf_dir / name).is_file():
            shutil.copyfile(hf_dir / name, out_dir / name)
    missing = [n for n in REQUIRED if not (out_dir / n).is_file()]
    if missing:
        raise RuntimeError(f"OpenVINO export to {out_dir} produced no {', '.join(missing)}")


def compress_int8(fp32_dir: Path, out_dir: Path) -> None:
    """The fp32 IR with 8-bit weights (NNCF weight compression, asymmetric, per output channel);
    activations stay in floating point."""
    import logging

    import nncf
    import openvino as ov

    logging.getLogger("nncf").setLevel(logging.ERROR)
    shutil.copytree(fp32_dir, out_dir, ignore=shutil.ignore_patterns("openvino_*_model.*"))
    core = ov.Core()
    for name in MODELS:
        model = nncf.compress_weights(core.read_model(fp32_dir / name), mode=nncf.CompressWeightsMode.INT8_ASYM)
        ov.save_model(model, out_dir / name)
