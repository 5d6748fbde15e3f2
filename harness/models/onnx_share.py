"""Store the decoder weights once for both decoder graphs.

optimum exports `decoder_model.onnx` (first step) and `decoder_with_past_model.onnx` (later steps) with
the same decoder weights in each, under different names. Loaded as they are, the `ort` engine holds every
decoder weight twice (about 300 MB for base in fp32). Here every initializer of the with-past graph that
equals one of the first-step graph takes that one's name, and those shared tensors move to one external
data file, `decoder_shared.bin` (page-aligned), indexed by `decoder_shared.json` (name, offset, length,
dtype, shape). ONNX tools read the graphs as usual through the external-data references; the engine reads
the file once and hands the arrays to both sessions (`SessionOptions.add_initializer`).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

DECODER, DECODER_WITH_PAST = "decoder_model.onnx", "decoder_with_past_model.onnx"
SHARED_DATA, SHARED_INDEX = "decoder_shared.bin", "decoder_shared.json"
ALIGN = 4096           # page-aligned offsets, so the data can also be memory-mapped
MIN_SHARED_BYTES = 1024  # tiny constants are not worth an external entry


def _content_key(array) -> tuple:
    return array.dtype.str, array.shape, hashlib.sha256(array.tobytes()).hexdigest()


def _rename_inputs(graph, rename: dict[str, str]) -> None:
    import onnx

    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _rename_inputs(attr.g, rename)


def share_decoder_weights(onnx_dir: Path) -> dict:
    """Rewrite the two decoder graphs in place; returns counts for the manifest."""
    import onnx
    from onnx import numpy_helper

    first = onnx.load(str(onnx_dir / DECODER))
    past = onnx.load(str(onnx_dir / DECODER_WITH_PAST))
    arrays = {t.name: numpy_helper.to_array(t) for t in first.graph.initializer}
    by_content: dict[tuple, str] = {}
    for name, array in arrays.items():
        if array.nbytes >= MIN_SHARED_BYTES:
            by_content.setdefault(_content_key(array), name)

    rename: dict[str, str] = {}
    for tensor in past.graph.initializer:
        array = numpy_helper.to_array(tensor)
        if array.nbytes >= MIN_SHARED_BYTES:
            match = by_content.get(_content_key(array))
            if match is not None:
                rename[tensor.name] = match
    taken = {t.name for t in past.graph.initializer} - set(rename)
    rename = {old: new for old, new in rename.items() if new not in taken}  # never shadow another tensor
    _rename_inputs(past.graph, rename)
    for name in ("input", "output"):  # graph outputs may name an initializer directly
        for value in getattr(past.graph, name):
            value.name = rename.get(value.name, value.name)
    kept, seen = [], set()
    for tensor in past.graph.initializer:
        tensor.name = rename.get(tensor.name, tensor.name)
        if tensor.name not in seen:
            seen.add(tensor.name)
            kept.append(tensor)
    del past.graph.initializer[:]
    past.graph.initializer.extend(kept)

    shared = [name for name in arrays if name in set(rename.values())]
    index, offset = {}, 0
    with open(onnx_dir / SHARED_DATA, "wb") as f:
        for name in shared:
            pad = -offset % ALIGN
            f.write(b"\0" * pad)
            offset += pad
            data = arrays[name].tobytes()
            f.write(data)
            index[name] = {"offset": offset, "length": len(data), "dtype": arrays[name].dtype.str,
                           "shape": list(arrays[name].shape)}
            offset += len(data)
    for model in (first, past):
        for tensor in model.graph.initializer:
            if tensor.name in index:
                _make_external(tensor, index[tensor.name])
    onnx.save(first, str(onnx_dir / DECODER))
    onnx.save(past, str(onnx_dir / DECODER_WITH_PAST))
    for name in (DECODER, DECODER_WITH_PAST):
        onnx.checker.check_model(str(onnx_dir / name))  # by path: resolves the external data beside it
    (onnx_dir / SHARED_INDEX).write_text(json.dumps(index, indent=1) + "\n")
    return {"shared_tensors": len(index), "shared_bytes": sum(e["length"] for e in index.values())}


def _make_external(tensor, entry: dict) -> None:
    import onnx

    for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
        tensor.ClearField(field)
    tensor.data_location = onnx.TensorProto.EXTERNAL
    del tensor.external_data[:]
    for key, value in (("location", SHARED_DATA), ("offset", str(entry["offset"])), ("length", str(entry["length"]))):
        item = tensor.external_data.add()
        item.key, item.value = key, value
