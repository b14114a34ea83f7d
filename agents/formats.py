"""Artifact format from the file's bytes, with bounds checks: a truncated or corrupt file is a named error.

Parsers are iterative and bounded by the file size (a hostile file cannot recurse or loop without end).
"""

from __future__ import annotations

import mmap
import os
import struct

TYPE_CHECKING = False  # not typing's: importing typing costs the waiting agent ~0.6 MiB (benchmarks/agent_overhead.py)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Tuple

FORMATS = ("onnx", "tflite", "gguf")


class ArtifactError(Exception):
    """The artifact is unreadable, of no known format, or truncated: a result with status error."""


def _u32(b: Any, off: int, size: int, what: str, path: str) -> int:
    if off < 0 or off + 4 > size:
        raise ArtifactError("%s: truncated TFLite file (%s at byte %d is past the end, %d bytes)"
                            % (path, what, off, size))
    return int(struct.unpack_from("<I", b, off)[0])


def _check_tflite(b: Any, size: int, path: str) -> None:
    """Walk the flatbuffer's Model table enough to see that every buffer lies inside the file."""
    root = _u32(b, 0, size, "root table offset", path)
    vt = root - struct.unpack_from("<i", b, root)[0] if root + 4 <= size else -1
    if vt < 0 or vt + 4 > size:
        raise ArtifactError("%s: truncated or corrupt TFLite file (bad root table)" % path)
    vt_size = struct.unpack_from("<H", b, vt)[0]

    def field(table: int, vtab: int, vsize: int, i: int) -> int:
        slot = 4 + 2 * i
        if slot + 2 > vsize or vtab + slot + 2 > size:
            return 0
        off = int(struct.unpack_from("<H", b, vtab + slot)[0])
        return table + off if off else 0

    def vector(pos: int, what: str) -> Tuple[int, int]:
        start = pos + _u32(b, pos, size, what, path)
        n = _u32(b, start, size, what + " length", path)
        return start + 4, n

    sub = field(root, vt, vt_size, 2)
    if not sub:
        raise ArtifactError("%s: TFLite model has no subgraphs" % path)
    _, nsub = vector(sub, "subgraphs")
    if nsub < 1:
        raise ArtifactError("%s: TFLite model has no subgraphs" % path)
    bufs = field(root, vt, vt_size, 4)
    if not bufs:
        return
    start, nbuf = vector(bufs, "buffers")
    if start + 4 * nbuf > size:
        raise ArtifactError("%s: truncated TFLite file (buffer table past the end)" % path)
    for i in range(nbuf):
        pos = start + 4 * i
        t = pos + _u32(b, pos, size, "buffer", path)
        if t + 4 > size:
            raise ArtifactError("%s: truncated TFLite file (buffer %d past the end)" % (path, i))
        tv = t - struct.unpack_from("<i", b, t)[0]
        if tv < 0 or tv + 4 > size:
            raise ArtifactError("%s: truncated or corrupt TFLite file (buffer %d)" % (path, i))
        tvs = struct.unpack_from("<H", b, tv)[0]
        data = field(t, tv, tvs, 0)
        if data:
            dstart, dlen = vector(data, "buffer %d data" % i)
            if dstart + dlen > size:
                raise ArtifactError("%s: truncated TFLite file (buffer %d needs %d bytes, file has %d)"
                                    % (path, i, dstart + dlen, size))
        ext = field(t, tv, tvs, 1)
        if ext and ext + 8 <= size:
            off = struct.unpack_from("<Q", b, ext)[0]
            szf = field(t, tv, tvs, 2)
            ln = struct.unpack_from("<Q", b, szf)[0] if szf and szf + 8 <= size else 0
            if off > 1 and off + ln > size:
                raise ArtifactError("%s: truncated TFLite file (buffer %d needs %d bytes, file has %d)"
                                    % (path, i, off + ln, size))


# ggml type -> (block size in elements, bytes per block); unknown types skip the size check.
_GGML_SIZES: Dict[int, Tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82),
    23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2),
    34: (256, 54), 35: (256, 66), 39: (32, 17),
}
_GGUF_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def _check_gguf(b: Any, size: int, path: str) -> None:
    """Parse the GGUF header, metadata and tensor table; every tensor's data must lie inside the file."""
    pos = [4]

    def take(fmt: str) -> Any:
        n = struct.calcsize(fmt)
        if pos[0] + n > size:
            raise ArtifactError("%s: truncated GGUF file (header ends at byte %d of %d)" % (path, pos[0], size))
        v = struct.unpack_from(fmt, b, pos[0])[0]
        pos[0] += n
        return v

    def string() -> bytes:
        n = take("<Q")
        if pos[0] + n > size:
            raise ArtifactError("%s: truncated GGUF file (string of %d bytes at byte %d, file has %d)"
                                % (path, n, pos[0], size))
        s = bytes(b[pos[0]:pos[0] + n])
        pos[0] += n
        return bytes(s)

    def skip(t: int) -> None:
        """Skip one value of type t; arrays (of arrays...) on an explicit stack, never by recursion."""
        stack: List[Tuple[int, int]] = [(t, 1)]  # (item type, items left)
        while stack:
            typ, left = stack.pop()
            if left == 0:
                continue
            if typ in _GGUF_SCALAR:  # fixed-size items: skip them all at once
                step = struct.calcsize(_GGUF_SCALAR[typ]) * left
                if pos[0] + step > size:
                    raise ArtifactError("%s: truncated GGUF file (metadata past the end)" % path)
                pos[0] += step
            elif typ == 8:
                string()
                stack.append((typ, left - 1))
            elif typ == 9:
                it, n = take("<I"), take("<Q")
                if n > size:
                    raise ArtifactError("%s: corrupt GGUF file (array of %d items)" % (path, n))
                stack.append((typ, left - 1))
                stack.append((it, n))
            else:
                raise ArtifactError("%s: corrupt GGUF file (unknown metadata type %d)" % (path, typ))

    version = take("<I")
    if version not in (1, 2, 3):
        raise ArtifactError("%s: unsupported GGUF version %d" % (path, version))
    cnt = "<I" if version == 1 else "<Q"
    n_tensors, n_kv = take(cnt), take(cnt)
    if n_tensors > size or n_kv > size:
        raise ArtifactError("%s: corrupt GGUF file (%d tensors, %d keys)" % (path, n_tensors, n_kv))
    alignment = 32
    for _ in range(n_kv):
        key = string()
        t = take("<I")
        if key == b"general.alignment" and t in (4, 10):  # uint32 / uint64
            v = take(_GGUF_SCALAR[t])
            alignment = v if v > 0 else alignment
        else:
            skip(t)
    tensors = []
    for _ in range(n_tensors):
        name = string()
        nd = take("<I")
        if nd > 8:
            raise ArtifactError("%s: corrupt GGUF file (tensor with %d dims)" % (path, nd))
        ne = 1
        for _ in range(nd):
            ne *= take("<Q")
        tensors.append((name, ne, take("<I"), take("<Q")))
    data = (pos[0] + alignment - 1) // alignment * alignment
    for name, ne, typ, off in tensors:
        blk = _GGML_SIZES.get(typ)
        nbytes = (ne // blk[0]) * blk[1] if blk else 0
        end = data + off + nbytes
        if end > size:
            raise ArtifactError("%s: truncated GGUF file (tensor %s needs bytes up to %d, file has %d)"
                                % (path, name.decode("utf-8", "replace"), end, size))


class _NotProto(Exception):
    pass


def _proto_fields(b: Any, start: int, end: int, size: int) -> List[Tuple[int, int, int, int]]:
    """Top-level protobuf fields in b[start:end] as (field, wire type, value or offset, length).

    Raises _NotProto for bytes that are not protobuf, ArtifactError-worthy EOFError when a field runs
    past the end of the file (a truncated file).
    """
    out = []
    pos = start

    def varint() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            if pos >= end:
                raise EOFError
            c = int(b[pos])
            pos += 1
            result |= (c & 0x7F) << shift
            if not c & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise _NotProto("varint too long")

    while pos < end:
        tag = varint()
        fno, wt = tag >> 3, tag & 7
        if fno == 0 or fno > 1000 or wt not in (0, 1, 2, 5):
            raise _NotProto("bad tag")
        if wt == 0:
            out.append((fno, wt, varint(), 0))
        elif wt == 1 or wt == 5:
            ln = 8 if wt == 1 else 4
            out.append((fno, wt, pos, ln))
            pos += ln
        else:
            ln = varint()
            out.append((fno, wt, pos, ln))
            pos += ln
        if pos > end:
            raise EOFError
    return out


def _check_onnx(b: Any, size: int, path: str) -> bool:
    """True if the bytes are an ONNX ModelProto (ir_version varint, a graph, an opset); raises if truncated."""
    try:
        fields = _proto_fields(b, 0, size, size)
    except _NotProto:
        return False
    except EOFError:
        if size > 2 and b[0] == 0x08:  # starts like ModelProto.ir_version: a cut-off ONNX file
            raise ArtifactError("%s: truncated ONNX file (a protobuf field runs past the end at %d bytes)"
                                % (path, size)) from None
        return False
    kinds = {f: wt for f, wt, _, _ in fields}
    if kinds.get(1) != 0 or kinds.get(7) != 2:
        return False
    ir = [v for f, wt, v, _ in fields if f == 1][0]
    if not 1 <= ir <= 100:
        return False
    if kinds.get(8) != 2:
        raise ArtifactError("%s: truncated or incomplete ONNX file (no opset_import after the graph)" % path)
    graph = [(o, ln) for f, wt, o, ln in fields if f == 7][-1]
    try:
        _proto_fields(b, graph[0], graph[0] + graph[1], size)
    except (_NotProto, EOFError):
        raise ArtifactError("%s: corrupt ONNX file (the graph is not a valid protobuf message)" % path) from None
    return True


def detect_format(path: str) -> str:
    """onnx | tflite | gguf from the file's bytes; ArtifactError naming the file otherwise."""
    try:
        size = os.path.getsize(path)
        fh = open(path, "rb")
    except OSError as e:
        raise ArtifactError("%s: cannot read artifact (%s)" % (path, e.strerror or e)) from None
    with fh:
        if size < 8:
            raise ArtifactError("%s: not a model file (%d bytes): expected ONNX, TFLite or GGUF" % (path, size))
        b = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            if b[:4] == b"GGUF":
                _check_gguf(b, size, path)
                return "gguf"
            if b[4:8] == b"TFL3":
                _check_tflite(b, size, path)
                return "tflite"
            if _check_onnx(b, size, path):
                return "onnx"
        except struct.error:
            raise ArtifactError("%s: truncated or corrupt model file" % path) from None
        finally:
            b.close()
    raise ArtifactError("%s: not a recognised model file: neither GGUF (magic 'GGUF'), TFLite (identifier "
                        "'TFL3' at byte 4) nor ONNX (protobuf ModelProto)" % path)
