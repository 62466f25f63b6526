"""Make the batch and spatial dimensions of an ONNX model's inputs and outputs free.

CenterFace's published ONNX file fixes its input at 10 x 3 x 32 x 32; ONNX Runtime refuses
any other shape. Re-exporting needs the ``onnx`` package, which the torch-free runtime does
not install, so this edits the few protobuf fields involved directly: every dimension of the
graph's declared inputs and outputs becomes a named, free one (``dim_param``), and
intermediate shape annotations (``value_info``) are dropped so nothing pins them again.
Initializers are left alone (and removed from the input list, where old exporters put them).

Wire format: each field is a varint key ``number << 3 | type``; type 2 fields carry a varint
length and that many bytes (sub-messages, strings), type 0 a varint, types 1 and 5 8 and 4
bytes. Field numbers are from onnx.proto: ModelProto.graph = 7; GraphProto.input = 11,
output = 12, value_info = 13, initializer = 5; ValueInfoProto.name = 1, type = 2;
TypeProto.tensor_type = 1; Tensor.shape = 2; TensorShapeProto.dim = 1; Dimension.dim_param = 2;
TensorProto.name = 8.
"""
from __future__ import annotations

from collections.abc import Iterator


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _fields(data: bytes | memoryview) -> Iterator[tuple[int, int, memoryview, memoryview]]:
    """(number, wire type, payload, the field's raw bytes) for each field of a message, as views
    of ``data`` (a model's weights are never copied on the way)."""
    data = memoryview(data)
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(data, pos)
            payload = data[:0]
        elif wire == 1:
            pos += 8
            payload = data[:0]
        elif wire == 5:
            pos += 4
            payload = data[:0]
        elif wire == 2:
            length, pos = _varint(data, pos)
            payload = data[pos : pos + length]
            pos += length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(data):
            raise ValueError("truncated protobuf message")
        yield number, wire, payload, data[start:pos]


def _message(number: int, payload: bytes | memoryview) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _string(data: bytes | memoryview, number: int) -> str | None:
    for n, wire, payload, _ in _fields(data):
        if n == number and wire == 2:
            return bytes(payload).decode("utf-8", "replace")
    return None


def _free_shape(shape: memoryview, prefix: str) -> bytes:
    dims = [raw for n, _, _, raw in _fields(shape) if n == 1]
    return b"".join(_message(1, _message(2, f"{prefix}_{i}".encode())) for i in range(len(dims)))


def _rewrite(data: bytes | memoryview, path: tuple[int, ...], edit) -> bytes:
    """``data`` with the sub-message at field ``path[0]`` (then ``path[1]`` inside it, ...) edited."""
    out = bytearray()
    for n, wire, payload, raw in _fields(data):
        if n == path[0] and wire == 2:
            inner = edit(payload) if len(path) == 1 else _rewrite(payload, path[1:], edit)
            out += _message(n, inner)
        else:
            out += raw
    return bytes(out)


def free_dimensions(model: bytes) -> bytes:
    """A serialised ONNX model whose graph inputs and outputs take any shape of the same rank."""
    graph = next((payload for n, w, payload, _ in _fields(model) if n == 7 and w == 2), None)
    if graph is None:
        raise ValueError("not an ONNX model (no graph)")
    initializers = {_string(payload, 8) for n, w, payload, _ in _fields(graph) if n == 5 and w == 2}
    out = bytearray()
    for n, wire, payload, raw in _fields(graph):
        if n == 13:  # value_info: inferred shapes of intermediate tensors, pinned to the old size
            continue
        if n in (11, 12) and wire == 2:
            name = _string(payload, 1)
            if n == 11 and name in initializers:
                continue  # a weight listed as an input by an old exporter
            out += _message(n, _rewrite(payload, (2, 1, 2), lambda shape, name=name: _free_shape(shape, name)))
        else:
            out += raw
    return _rewrite(model, (7,), lambda _: bytes(out))
