"""Write the GGUF seeds of the gguf_reader fuzz target with gguf-py (llama.cpp's own writer).

Usage: python seed_gguf.py OUT_DIR   (needs PyPI's `gguf` and numpy; tests/support sets one up)
Two small files: a llama-shaped model (the keys `gpu-doctor model` reads, two tiny tensors of
different types) and one holding a value of every GGUF type, arrays and nested arrays included.
"""
import sys
from pathlib import Path

import gguf
import numpy as np


def llama(path):
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("fuzz-seed")
    w.add_context_length(2048)
    w.add_embedding_length(8)
    w.add_block_count(2)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(1)
    w.add_tokenizer_model("llama")
    w.add_token_list(["<unk>", "<s>", "</s>", "a", "b"])
    w.add_token_scores([0.0, 0.0, 0.0, -1.0, -2.0])
    w.add_tensor("token_embd.weight", np.ones((5, 8), dtype=np.float16))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(8, dtype=np.float32))
    w.add_tensor("blk.1.attn_norm.weight", np.ones(8, dtype=np.float32))
    w.add_tensor("output.weight", np.zeros((5, 8), dtype=np.float16))
    write(w)


def every_type(path):
    w = gguf.GGUFWriter(str(path), "fuzz")
    w.add_uint8("t.u8", 255)
    w.add_int8("t.i8", -1)
    w.add_uint16("t.u16", 65535)
    w.add_int16("t.i16", -2)
    w.add_uint32("t.u32", 4294967295)
    w.add_int32("t.i32", -3)
    w.add_float32("t.f32", 1.5)
    w.add_uint64("t.u64", 2**64 - 1)
    w.add_int64("t.i64", -(2**63))
    w.add_float64("t.f64", -0.25)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "naïve ☃")
    w.add_array("t.arr.i32", [1, 2, 3])
    w.add_array("t.arr.str", ["x", "", "zz"])
    w.add_array("t.arr.nested", [[1, 2], [3]])
    w.add_uint32("general.alignment", 64)
    w.add_tensor("t", np.arange(4, dtype=np.float32))
    write(w)


def write(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    out = Path(sys.argv[1])
    llama(out / "llama-tiny.gguf")
    every_type(out / "every-type.gguf")
