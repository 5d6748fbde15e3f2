"""Whisper's attention as one onnxruntime `MultiHeadAttention` node each: the encoder's self-attention, and
the decoder's self-attention (with its KV cache) and cross-attention.

optimum exports each layer's attention as about twenty nodes: the scaled query and key split into heads
(Reshape, Transpose, Mul by constants), two MatMuls around a Softmax, and the heads merged back. The
(heads x 1500 x 1500) scores and probabilities are materialised between them. `MultiHeadAttention` takes the
three (batch, frames, d_model) projections and computes the same thing inside one kernel, without the
score tensors and transposes: tiny.en's encoder at 1 thread 384 -> 296 ms (fp32) and 221 -> 174 ms (dynamic
int8), and the peak of resident memory drops by about one layer's scores (docs/ort.md). The onnxruntime
transformer optimizer's BART rules do not match this export's encoder attention (its `fused` build keeps
every MatMul), hence this rewrite of the one pattern the store's export produces.

In the decoder each step's attention is about thirty small nodes around the cache (concatenation, causal
mask slicing, NaN guards, transposes); the fused node appends the step to the cache and applies the
causal mask and the batch's padding bias itself.
"""
from __future__ import annotations

from pathlib import Path

MHA_DOMAIN = "com.microsoft"
# Per the pattern: the query's heads are (batch, heads, frames, head_dim), the key's transposed for the
# product, the value's like the query's; the merged output goes back to (batch, frames, heads, head_dim).
QUERY_PERM, KEY_PERM, VALUE_PERM, OUTPUT_PERM = [0, 2, 1, 3], [0, 2, 3, 1], [0, 2, 1, 3], [0, 2, 1, 3]
# The decoder's keys come as a (batch, heads, positions, head_dim) cache, transposed for the product.
CACHE_KEY_PERM = [0, 1, 3, 2]


class _Graph:
    """Who produces and who reads each tensor, and the scalar constants."""

    def __init__(self, graph):
        from onnx import numpy_helper

        self.producer = {out: n for n in graph.node for out in n.output}
        self.readers: dict[str, list] = {}
        for node in graph.node:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)
        self.scalars = {i.name: float(numpy_helper.to_array(i).reshape(()))
                        for i in graph.initializer if _size(i.dims) == 1}
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value" \
                    and _size(node.attribute[0].t.dims) == 1:
                self.scalars[node.output[0]] = float(numpy_helper.to_array(node.attribute[0].t).reshape(()))

    def only_reader(self, name: str, op_type: str):
        readers = self.readers.get(name, [])
        return readers[0] if len(readers) == 1 and readers[0].op_type == op_type else None

    def heads_source(self, name: str, perm: list[int]):
        """Walk up from a (batch, heads, ., .) tensor through scalar Muls, one Transpose of `perm` and one
        Reshape to the (batch, frames, d_model) tensor it was split from: (that name, the product of the
        scalars met), or None where the graph is not this pattern."""
        from onnx import helper

        scale, transposed = 1.0, False
        while (node := self.producer.get(name)) is not None:
            scalar = next((i for i in node.input if i in self.scalars), None) if node.op_type == "Mul" else None
            if scalar is not None:
                scale *= self.scalars[scalar]
                name = next(i for i in node.input if i != scalar)
            elif node.op_type == "Transpose" and not transposed:
                if list(helper.get_attribute_value(node.attribute[0])) != perm:
                    return None
                transposed, name = True, node.input[0]
            elif node.op_type == "Reshape" and transposed:
                return node.input[0], scale
            else:
                return None
        return None


    def scaled_transpose(self, name: str, perm: list[int]):
        """Walk up from a tensor through scalar Muls and one Transpose of `perm`: (the tensor before them,
        the product of the scalars), or None."""
        from onnx import helper

        scale = 1.0
        while (node := self.producer.get(name)) is not None:
            scalar = next((i for i in node.input if i in self.scalars), None) if node.op_type == "Mul" else None
            if scalar is not None:
                scale *= self.scalars[scalar]
                name = next(i for i in node.input if i != scalar)
            elif node.op_type == "Transpose" and list(helper.get_attribute_value(node.attribute[0])) == perm:
                return node.input[0], scale
            else:
                return None
        return None

    def cache_append(self, name: str):
        """The cache this step writes, `Concat(past, heads(new))` along positions: (the Concat node, past
        input, the new (batch, steps, d_model) tensor), or None where `name` is not one."""
        node = self.producer.get(name)
        if node is None or node.op_type != "Concat" or len(node.input) != 2:
            return None
        split = self.heads_source(node.input[1], VALUE_PERM)
        return (node, node.input[0], split[0]) if split and split[1] == 1.0 else None


def _size(dims) -> int:
    size = 1
    for d in dims:
        size *= d
    return size


def fuse_self_attention(src: Path, dst: Path, num_heads: int, expected: int) -> int:
    """Write `src` with each softmax attention over (batch, frames, d_model) projections replaced by one
    MultiHeadAttention (its scale the product of the scalars the query and key were multiplied by), and the
    nodes only those fed removed. Raises unless exactly `expected` attentions were fused (one per layer): a
    partly fused graph would be a silent change of format."""
    import onnx
    from onnx import helper

    model = onnx.load(str(src))
    graph = model.graph
    g = _Graph(graph)
    fused = 0
    for softmax in [n for n in graph.node if n.op_type == "Softmax"]:
        scores = g.producer.get(softmax.input[0])
        weighted = g.only_reader(softmax.output[0], "MatMul")
        if scores is None or scores.op_type != "MatMul" or weighted is None:
            continue
        query = g.heads_source(scores.input[0], QUERY_PERM)
        key = g.heads_source(scores.input[1], KEY_PERM)
        value = g.heads_source(weighted.input[1], VALUE_PERM)
        merge = g.only_reader(weighted.output[0], "Transpose")
        reshape = merge and g.only_reader(merge.output[0], "Reshape")
        if not (query and key and value and reshape) or value[1] != 1.0 or \
                list(helper.get_attribute_value(merge.attribute[0])) != OUTPUT_PERM:
            continue
        node = helper.make_node("MultiHeadAttention", [query[0], key[0], value[0]], [reshape.output[0]],
                                name=f"{softmax.name}/MultiHeadAttention", domain=MHA_DOMAIN,
                                num_heads=num_heads, scale=query[1] * key[1])
        graph.node.insert(list(graph.node).index(reshape), node)
        graph.node.remove(reshape)
        fused += 1
    if fused != expected:
        raise ValueError(f"{src}: {fused} self-attentions matched the pattern, expected {expected}")
    _drop_unused(graph)
    if not any(o.domain == MHA_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MHA_DOMAIN, 1))
    onnx.save(model, str(dst))
    return fused


def fuse_decoder_attention(src: Path, dst: Path, num_heads: int, expected: int, bias_input: str) -> int:
    """Write the decoder-with-past graph `src` with each layer's self-attention and cross-attention as one
    MultiHeadAttention: the self-attention takes the step's key and value, the past cache and the
    `bias_input` (the batch's padding bias) and writes the present cache under the same output names, causal
    (`unidirectional`); the cross-attention reads the encoder's cached keys and values as they are. Raises
    unless `expected` attentions of each kind were fused."""
    import onnx
    from onnx import helper

    model = onnx.load(str(src))
    graph = model.graph
    g = _Graph(graph)
    graph_inputs = {i.name for i in graph.input}
    fused = {"self": 0, "cross": 0}
    for softmax in [n for n in graph.node if n.op_type == "Softmax"]:
        scores_name, bias, causal = softmax.input[0], "", False
        while (add := g.producer.get(scores_name)) is not None and add.op_type == "Add":
            a, b = add.input
            if bias_input in (a, b):
                bias, scores_name = bias_input, (b if a == bias_input else a)
            elif _made_by(g, b, "Where"):  # the export's causal mask, sliced to this step's positions
                causal, scores_name = True, a
            elif _made_by(g, a, "Where"):
                causal, scores_name = True, b
            else:
                break
        scores = g.producer.get(scores_name)
        probs = softmax.output[0]
        # The export sets a row of NaN (every position masked) to 0 with IsNaN and Where; the fused kernel
        # masks with a large negative number instead, which cannot give NaN.
        guard = next((r for r in g.readers.get(probs, []) if r.op_type == "Where"), None)
        if guard is not None:
            probs = guard.output[0]
        weighted = g.only_reader(probs, "MatMul")
        if scores is None or scores.op_type != "MatMul" or weighted is None:
            continue
        query = g.heads_source(scores.input[0], QUERY_PERM)
        key = g.scaled_transpose(scores.input[1], CACHE_KEY_PERM)
        merge = g.only_reader(weighted.output[0], "Transpose")
        reshape = merge and g.only_reader(merge.output[0], "Reshape")
        if not (query and key and reshape) or list(helper.get_attribute_value(merge.attribute[0])) != OUTPUT_PERM:
            continue
        scale = query[1] * key[1]
        if key[0] in graph_inputs and weighted.input[1] in graph_inputs:  # cross-attention on the cache
            kind, inputs, outputs, attrs = "cross", [query[0], key[0], weighted.input[1]], [reshape.output[0]], {}
            removed = []
        else:
            k_cache, v_cache = g.cache_append(key[0]), g.cache_append(weighted.input[1])
            if not (k_cache and v_cache) or k_cache[1] not in graph_inputs or v_cache[1] not in graph_inputs:
                continue
            kind = "self"
            inputs = [query[0], k_cache[2], v_cache[2], "", "", bias, k_cache[1], v_cache[1]]
            outputs = [reshape.output[0], k_cache[0].output[0], v_cache[0].output[0]]
            attrs = {"unidirectional": int(causal)}
            removed = [k_cache[0], v_cache[0]]  # their outputs, the present cache, now come from the fused node
        node = helper.make_node("MultiHeadAttention", inputs, outputs, name=f"{softmax.name}/MultiHeadAttention",
                                domain=MHA_DOMAIN, num_heads=num_heads, scale=scale, **attrs)
        graph.node.insert(list(graph.node).index(reshape), node)
        for old in [reshape, *removed]:
            graph.node.remove(old)
        fused[kind] += 1
    if fused != {"self": expected, "cross": expected}:
        raise ValueError(f"{src}: fused {fused['self']} self- and {fused['cross']} cross-attentions, expected "
                         f"{expected} of each")
    _drop_unused(graph)
    if not any(o.domain == MHA_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MHA_DOMAIN, 1))
    _topological_sort(graph)
    onnx.save(model, str(dst))
    return expected


def _made_by(g: _Graph, name: str, op_type: str) -> bool:
    node = g.producer.get(name)
    return node is not None and node.op_type == op_type


def _topological_sort(graph) -> None:
    """ONNX wants every node after its inputs' producers; a fused node sits where its output's old producer
    was, which may come before a node producing one of its inputs (the step's value projection)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ValueError("the fused graph has a cycle")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        pending = [n for n in pending if n not in ready]
    del graph.node[:]
    graph.node.extend(ordered)


def _drop_unused(graph) -> None:
    """Remove nodes and initializers no graph output depends on (the replaced attentions' pieces)."""
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(list(graph.node)):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    for init in [i for i in graph.initializer if i.name not in needed]:
        graph.initializer.remove(init)
