"""Print what PyPI's `gguf` package (gguf-py, llama.cpp's own Python reader) sees in a GGUF file.

Usage: python gguf_check.py FILE.gguf            print what gguf-py reads, as JSON
       python gguf_check.py FILE.gguf OUT.gguf   rewrite FILE's header, key/values and tensor
                                                 table with gguf-py's GGUFWriter into OUT
The first prints one JSON object: alignment, data_offset, every key (type names and value), every tensor
(name, ne shape, type, n_bytes, absolute data offset, the first values), and gguf-py's table of
ggml type block sizes. tests/gguf.rs compares it with what the Rust writer meant to write.
"""
import json
import sys

import gguf


def value_of(field):
    main = field.types[0]
    if main == gguf.GGUFValueType.ARRAY:
        return list(field.contents())
    return field.contents()


def main(path):
    reader = gguf.GGUFReader(path)
    kv = {}
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):  # the header, which gguf-py exposes as fields
            continue
        kv[name] = {"types": [t.name for t in field.types], "value": value_of(field)}
    tensors = []
    for t in reader.tensors:
        flat = t.data.reshape(-1)
        tensors.append({
            "name": t.name,
            "shape": [int(d) for d in t.shape],
            "type": t.tensor_type.name,
            "n_bytes": int(t.n_bytes),
            "data_offset": int(t.data_offset),
            "first": [float(x) for x in flat[:4]],
        })
    sizes = {q.name: list(v) for q, v in gguf.GGML_QUANT_SIZES.items()}
    print(json.dumps({
        "alignment": int(reader.alignment),
        "data_offset": int(reader.data_offset),
        "kv": kv,
        "tensors": tensors,
        "quant_sizes": sizes,
    }))


def rewrite(path, out):
    """Write the metadata and tensor table gguf-py read, with gguf-py's own writer."""
    reader = gguf.GGUFReader(path)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(out, arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        sub = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, value_of(field), field.types[0], sub_type=sub)
    for t in reader.tensors:
        shape = [int(d) for d in reversed(list(t.shape))]  # numpy order: outermost first
        writer.add_tensor_info(t.name, shape, t.data.dtype, int(t.n_bytes), raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()


if __name__ == "__main__":
    if len(sys.argv) == 3:
        rewrite(sys.argv[1], sys.argv[2])
    else:
        main(sys.argv[1])
