//! The GGUF writer and reader: round trip, a cross-check with llama.cpp's own Python reader
//! (PyPI `gguf`, in a venv cached under ${GPU_DOCTOR_TEST_CACHE:-~/.cache/gpu-doctor-tests};
//! GPU_DOCTOR_SKIP_SLOW=1 skips it), and malformed or hostile files, which must give clear
//! errors quickly and without large allocations (checked again in a child under `ulimit -v`).

use gpu_doctor::gguf::reader::{read_file_capped, ArrayItems};
use gpu_doctor::gguf::{
    layers_that_fit, read_bytes, read_file, summarize, write_cached, GgmlType, GgufErrorKind,
    KvCacheType, ModelParams, Value,
};
use gpu_doctor::probe::process;
use serde_json::Value as Json;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn placement_file(dir: &Path) -> PathBuf {
    write_cached(&ModelParams::placement(), dir).expect("writing the placement model")
}

// ---------------------------------------------------------------------------------------------
// round trip

#[test]
fn writer_output_reads_back_as_intended() {
    let dir = tempfile::tempdir().unwrap();
    let params = ModelParams::placement();
    let path = placement_file(dir.path());
    let f = read_file(&path).unwrap();
    assert_eq!(f.version, 3);
    assert_eq!(f.metadata, params.metadata());
    assert_eq!(f.alignment, 32);
    assert_eq!(f.data_offset % 32, 0);
    let want = params.tensors();
    assert_eq!(f.tensors.len(), want.len());
    let mut offset = 0;
    for (got, want) in f.tensors.iter().zip(&want) {
        assert_eq!(
            (&got.name, &got.dims, got.ggml_type),
            (&want.name, &want.dims, want.ggml_type)
        );
        assert_eq!(got.offset, offset, "{}", got.name);
        offset = (offset + got.n_bytes).div_ceil(32) * 32;
    }
    assert_eq!(f.data_offset + offset, fs::metadata(&path).unwrap().len());
    assert_eq!(f.tensor_bytes(), params.tensor_bytes());
}

#[test]
fn cached_model_is_reused_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let path = placement_file(dir.path());
    let modified = fs::metadata(&path).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(placement_file(dir.path()), path);
    assert_eq!(
        fs::metadata(&path).unwrap().modified().unwrap(),
        modified,
        "rewritten"
    );
    // A truncated copy (an interrupted older writer, a full disk) is replaced.
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    assert_eq!(placement_file(dir.path()), path);
    assert_eq!(fs::metadata(&path).unwrap().len(), len);
    // Other parameters, another file; no temporary files left behind.
    let other = write_cached(&ModelParams::placement().with_layers(3), dir.path()).unwrap();
    assert_ne!(other, path);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn summary_and_fit_of_the_placement_model() {
    let dir = tempfile::tempdir().unwrap();
    let params = ModelParams::placement();
    let s = summarize(&placement_file(dir.path())).unwrap();
    assert_eq!(s.architecture.as_deref(), Some("llama"));
    assert_eq!(
        (s.block_count, s.context_length, s.embedding_length),
        (Some(2), Some(4096), Some(256))
    );
    assert_eq!(
        (s.head_count, s.head_count_kv, s.key_length),
        (Some(2), Some(2), Some(128))
    );
    assert_eq!(
        (s.vocab_size, s.file_type, s.dominant_type),
        (Some(263), Some(1), Some("F16"))
    );
    assert_eq!(
        s.types
            .iter()
            .map(|t| (t.type_name, t.tensors))
            .collect::<Vec<_>>(),
        [("F16", 16), ("F32", 5)]
    );
    assert_eq!(s.tensor_bytes, params.tensor_bytes());
    assert_eq!(s.layer_bytes.len(), 2);
    assert_eq!(
        s.layer_bytes.iter().sum::<u64>() + s.output_bytes + s.cpu_only_bytes,
        s.tensor_bytes
    );
    // Plenty of memory: every block and the output layer, i.e. "offloaded 3/3 layers".
    let fit = layers_that_fit(&s, 80_000, 4096, KvCacheType::F16);
    assert_eq!(
        (fit.layers_on_gpu, fit.n_gpu_layers, fit.all_fit),
        (2, 3, true)
    );
    // 2 * 4096 * 256 * 2 bytes of KV per layer.
    assert_eq!(fit.kv_bytes_per_layer, 4 << 20);
    assert_eq!(
        layers_that_fit(&s, 300, 4096, KvCacheType::F16).n_gpu_layers,
        0
    );
}

// ---------------------------------------------------------------------------------------------
// cross-check with gguf-py

const GGUF_PY: &str = "0.19.0";

fn sh(cmd: &mut Command, what: &str, secs: u64) -> process::CommandOutput {
    let out = process::run(cmd, Duration::from_secs(secs), 64 << 20)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.success(),
        "{what} failed ({}): {}",
        out.describe_end(),
        out.stderr_text()
    );
    out
}

/// The venv with gguf-py, made once by tests/support/pinned-venv.sh: under a lock, so that the
/// tests of this binary that ask at once on a cold cache wait for one build instead of sharing
/// (and removing) each other's half-made venv.
fn gguf_py_venv() -> PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/pinned-venv.sh");
    let out = sh(
        Command::new("bash")
            .arg(script)
            .arg("gguf-py")
            .arg(format!("gguf=={GGUF_PY}")),
        "tests/support/pinned-venv.sh gguf-py (needs python3-venv, and PyPI on a cold cache)",
        900,
    );
    PathBuf::from(out.stdout_text().trim()).join("bin/python")
}

fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let man = f64::from(h & 0x3ff);
    match exp {
        0 => sign * man * 2f64.powi(-24),
        31 => f64::NAN,
        e => sign * (1.0 + man / 1024.0) * 2f64.powi(e - 15),
    }
}

/// What the writer meant, as gguf-py's JSON renders it.
fn expected_json(value: &Value) -> (Vec<&'static str>, Json) {
    let scalar = |v: &Value| match v {
        Value::String(s) => Json::from(s.clone()),
        Value::Bool(b) => Json::from(*b),
        Value::F32(x) => Json::from(f64::from(*x)),
        other => Json::from(other.as_u64().expect("unsigned")),
    };
    match value {
        Value::Array(a) => {
            let items = match &a.items {
                ArrayItems::Strings(v) => v.iter().map(|s| Json::from(s.clone())).collect(),
                _ => a.values().map(|v| scalar_or_int(&v)).collect(),
            };
            (vec!["ARRAY", a.elem_type.name()], Json::Array(items))
        }
        v => (vec![v.value_type().name()], scalar(v)),
    }
}

fn scalar_or_int(v: &Value) -> Json {
    match v {
        Value::I32(x) => Json::from(*x),
        Value::F32(x) => Json::from(f64::from(*x)),
        other => Json::from(other.as_u64().unwrap_or(0)),
    }
}

#[test]
fn gguf_py_reads_every_key_and_tensor_as_written() {
    if std::env::var_os("GPU_DOCTOR_SKIP_SLOW").is_some() {
        eprintln!("skipped: GPU_DOCTOR_SKIP_SLOW is set");
        return;
    }
    let python = gguf_py_venv();
    let dir = tempfile::tempdir().unwrap();
    let params = ModelParams::placement();
    let path = placement_file(dir.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/gguf_check.py");
    let out = sh(
        Command::new(&python).arg(&script).arg(&path),
        "gguf_check.py",
        120,
    );
    let seen: Json = serde_json::from_str(&out.stdout_text()).expect("gguf_check.py prints JSON");
    let ours = read_file(&path).unwrap();
    assert_eq!(seen["alignment"], 32);
    assert_eq!(seen["data_offset"], ours.data_offset);

    let kv = seen["kv"].as_object().unwrap();
    let metadata = params.metadata();
    assert_eq!(
        kv.len(),
        metadata.len(),
        "keys: {:?}",
        kv.keys().collect::<Vec<_>>()
    );
    for (key, value) in &metadata {
        let (types, json) = expected_json(value);
        assert_eq!(kv[key]["types"], Json::from(types), "{key}");
        assert_eq!(kv[key]["value"], json, "{key}");
    }

    let tensors = seen["tensors"].as_array().unwrap();
    let bytes = fs::read(&path).unwrap();
    assert_eq!(tensors.len(), params.tensors().len());
    for (t, want) in tensors.iter().zip(params.tensors()) {
        assert_eq!(t["name"], want.name.as_str());
        assert_eq!(t["shape"], Json::from(want.dims.clone()), "{}", want.name);
        assert_eq!(t["type"], want.ggml_type.name, "{}", want.name);
        assert_eq!(t["n_bytes"], want.n_bytes(), "{}", want.name);
        // gguf-py decodes the first values; decode the same bytes here.
        let at = t["data_offset"].as_u64().unwrap() as usize;
        let first: Vec<f64> = (0..4)
            .map(|i| match want.ggml_type.name {
                "F32" => f64::from(f32::from_le_bytes(
                    bytes[at + 4 * i..at + 4 * i + 4].try_into().unwrap(),
                )),
                _ => f16_to_f64(u16::from_le_bytes([
                    bytes[at + 2 * i],
                    bytes[at + 2 * i + 1],
                ])),
            })
            .collect();
        // serde_json's default float parsing may be off by an ulp; the values are f16.
        let theirs: Vec<f64> = t["first"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Json::as_f64)
            .collect();
        assert_eq!(theirs.len(), 4, "{}", want.name);
        for (a, b) in theirs.iter().zip(&first) {
            assert!(
                (a - b).abs() <= 1e-12 * b.abs().max(1e-6),
                "{}: {theirs:?} vs {first:?}",
                want.name
            );
        }
    }

    // Block sizes: ours against gguf-py's table (which is stale for Q8_1, see mod.rs).
    for (name, sizes) in seen["quant_sizes"].as_object().unwrap() {
        let ours =
            GgmlType::from_name(name).unwrap_or_else(|| panic!("gguf-py knows {name}, we do not"));
        let want = (sizes[0].as_u64().unwrap(), sizes[1].as_u64().unwrap());
        if name != "Q8_1" {
            assert_eq!((ours.block_size, ours.type_size), want, "{name}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// malformed and hostile files

/// A hand-built GGUF: header, then whatever body the test wants.
fn gguf(n_tensors: i64, n_kv: i64, body: &[u8]) -> Vec<u8> {
    let mut v = b"GGUF".to_vec();
    v.extend(3u32.to_le_bytes());
    v.extend(n_tensors.to_le_bytes());
    v.extend(n_kv.to_le_bytes());
    v.extend(body);
    v
}

fn s(text: &str) -> Vec<u8> {
    let mut v = (text.len() as u64).to_le_bytes().to_vec();
    v.extend(text.as_bytes());
    v
}

fn kv_u32(key: &str, value: u32) -> Vec<u8> {
    [
        s(key),
        4i32.to_le_bytes().to_vec(),
        value.to_le_bytes().to_vec(),
    ]
    .concat()
}

/// A tensor info with the given dims and type id, data at `offset`.
fn tensor(name: &str, dims: &[i64], type_id: i32, offset: u64) -> Vec<u8> {
    let mut v = s(name);
    v.extend((dims.len() as u32).to_le_bytes());
    dims.iter().for_each(|d| v.extend(d.to_le_bytes()));
    v.extend(type_id.to_le_bytes());
    v.extend(offset.to_le_bytes());
    v
}

fn expect_err(bytes: &[u8], kind: GgufErrorKind, text: &str) -> String {
    let start = Instant::now();
    let err = read_bytes(Path::new("model.gguf"), bytes).expect_err("must be refused");
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "slow: {:?}",
        start.elapsed()
    );
    let msg = err.to_string();
    assert_eq!(err.kind, kind, "{msg}");
    assert!(msg.contains(text), "{msg:?} does not say {text:?}");
    msg
}

fn padding(len: usize) -> Vec<u8> {
    vec![0; len.div_ceil(32) * 32 - len]
}

/// Every hostile input; also run in a child under `ulimit -v` below.
fn check_hostile_inputs() {
    use GgufErrorKind::*;
    let msg = expect_err(&gguf(i64::MAX, 0, &[]), TooLarge, "tensor count");
    assert_eq!(
        msg,
        "model.gguf: offset 8: tensor count 9223372036854775807 is larger than the file could hold"
    );
    expect_err(
        &gguf(0, 1 << 60, &[]),
        TooLarge,
        "offset 16: key/value count",
    );
    expect_err(&gguf(-1, 0, &[]), Invalid, "tensor count -1 is negative");
    // A key whose length claims 2^60 bytes.
    expect_err(
        &gguf(
            0,
            1,
            &[(1u64 << 60).to_le_bytes().to_vec(), vec![0; 64]].concat(),
        ),
        TooLarge,
        "offset 24: key #0 claims 1152921504606846976 bytes",
    );
    // An array of 2^60 strings; of 2^62 u64 (the byte count overflows).
    let arr = |elem: i32, n: u64| {
        [
            s("a"),
            9i32.to_le_bytes().to_vec(),
            elem.to_le_bytes().to_vec(),
            n.to_le_bytes().to_vec(),
        ]
        .concat()
    };
    expect_err(
        &gguf(0, 1, &arr(8, 1 << 60)),
        TooLarge,
        "a: array length 1152921504606846976",
    );
    expect_err(&gguf(0, 1, &arr(10, 1 << 62)), TooLarge, "array length");
    // Arrays of arrays, nested past the limit.
    let mut deep = arr(9, 1);
    for _ in 0..10 {
        deep.extend(9i32.to_le_bytes());
        deep.extend(1u64.to_le_bytes());
    }
    expect_err(&gguf(0, 1, &deep), Invalid, "nested");
    expect_err(
        &gguf(0, 1, &[s("k"), 99i32.to_le_bytes().to_vec()].concat()),
        BadType,
        "the type of k is 99",
    );
    expect_err(
        &gguf(0, 1, &[s("k"), 4i32.to_le_bytes().to_vec()].concat()),
        Truncated,
        "the value of k needs 4 bytes",
    );
    expect_err(
        &gguf(0, 2, &[kv_u32("k", 1), kv_u32("k", 2)].concat()),
        Invalid,
        "duplicate key 'k'",
    );
    expect_err(
        &gguf(0, 1, &kv_u32("general.alignment", 33)),
        Invalid,
        "power of two",
    );
    // Tensor tables.
    let one = |t: Vec<u8>| gguf(1, 0, &[t, vec![0; 64]].concat());
    expect_err(
        &one(tensor("t", &[1 << 62, 1 << 62], 0, 0)),
        Invalid,
        "overflows",
    );
    expect_err(
        &one(tensor("t", &[i64::MAX], 0, 0)),
        Invalid,
        "size overflows",
    );
    expect_err(&one(tensor("t", &[-4], 0, 0)), Invalid, "dimension 0 is -4");
    expect_err(
        &one(tensor("t", &[1, 1, 1, 1, 1], 0, 0)),
        Invalid,
        "5 dimensions",
    );
    expect_err(&one(tensor("t", &[4], 77, 0)), BadType, "ggml type 77");
    expect_err(&one(tensor("t", &[33], 8, 0)), Invalid, "block size 32");
    expect_err(
        &one(tensor(&"x".repeat(64), &[4], 0, 0)),
        Invalid,
        "under 64",
    );
    expect_err(
        &one(tensor("t", &[4], 0, 32)),
        Invalid,
        "tensor 't' has offset 32, expected 0",
    );
    expect_err(
        &one(tensor("t", &[1 << 40], 0, 0)),
        Truncated,
        "tensor 't' needs 4398046511104 bytes",
    );
    let two = [tensor("t", &[4], 0, 0), tensor("t", &[4], 0, 32)].concat();
    expect_err(
        &gguf(2, 0, &[two, vec![0; 128]].concat()),
        Invalid,
        "duplicate tensor name 't'",
    );
    // Headers.
    expect_err(b"GGML\x01\0\0\0", BadMagic, "old GGML");
    expect_err(b"\x7fELF\x02\x01\x01\0", BadMagic, "not a GGUF file");
    expect_err(b"GGUF\x01\0\0\0", UnsupportedVersion, "version 1");
    expect_err(b"GGUF\0\0\0\x03", UnsupportedVersion, "big-endian");
    expect_err(b"GGU", Truncated, "offset 0: the magic needs 4 bytes");
    expect_err(b"", Truncated, "the magic");
}

#[test]
fn hostile_files_give_clear_errors() {
    check_hostile_inputs();
    // And a well-formed hand-built file passes, so the errors above are not the builder's.
    let body = [kv_u32("general.alignment", 32), tensor("t", &[4, 2], 0, 0)].concat();
    let mut file = gguf(1, 1, &body);
    file.extend(padding(file.len()));
    file.extend(vec![0; 32]);
    let f = read_bytes(Path::new("ok.gguf"), &file).unwrap();
    assert_eq!((f.tensors[0].n_elements, f.tensors[0].n_bytes), (8, 32));
}

#[test]
fn hostile_files_need_little_memory() {
    if std::env::var_os("GGUF_HOSTILE_CHILD").is_some() {
        return check_hostile_inputs();
    }
    // The same checks in a child whose address space is capped at 1 GiB: an allocation sized
    // by a lying count would abort it.
    let exe = std::env::current_exe().unwrap();
    let out = process::run(
        Command::new("sh")
            .args(["-c", "ulimit -v 1048576 && exec \"$0\" hostile_files_need_little_memory --exact --test-threads=1"])
            .arg(exe)
            .env("GGUF_HOSTILE_CHILD", "1"),
        Duration::from_secs(60),
        1 << 20,
    )
    .unwrap();
    assert!(
        out.success(),
        "{}: {}{}",
        out.describe_end(),
        out.stdout_text(),
        out.stderr_text()
    );
    assert!(
        out.stdout_text().contains("1 passed"),
        "{}",
        out.stdout_text()
    );
}

#[test]
fn every_truncation_of_the_model_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fs::read(placement_file(dir.path())).unwrap();
    let start = Instant::now();
    for len in (0..bytes.len()).step_by(97) {
        let err =
            read_bytes(Path::new("cut.gguf"), &bytes[..len]).expect_err("truncated file accepted");
        assert!(
            matches!(err.kind, GgufErrorKind::Truncated | GgufErrorKind::TooLarge),
            "cut at {len}: {err}"
        );
        assert!(
            err.offset.is_some_and(|o| o <= bytes.len() as u64),
            "cut at {len}: {err}"
        );
    }
    eprintln!(
        "{} truncations in {:?}",
        bytes.len() / 97 + 1,
        start.elapsed()
    );
    // Through the file system too: a cut inside the tensor data names the tensor.
    let cut = dir.path().join("cut.gguf");
    fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    let err = read_file(&cut).unwrap_err();
    assert!(err.to_string().contains("blk.1.ffn_down.weight"), "{err}");
}

#[test]
fn metadata_past_the_first_read_and_past_the_cap() {
    // 120k strings of 24 bytes: about 3.8 MB of metadata, more than the first 1 MiB read.
    let n = 120_000u64;
    let mut body = [
        s("big"),
        9i32.to_le_bytes().to_vec(),
        8i32.to_le_bytes().to_vec(),
        n.to_le_bytes().to_vec(),
    ]
    .concat();
    for i in 0..n {
        body.extend(s(&format!("token-{i:018}")));
    }
    let mut file = gguf(0, 1, &body);
    file.extend(padding(file.len()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.gguf");
    fs::write(&path, &file).unwrap();
    let f = read_file(&path).unwrap();
    let tokens = f
        .get("big")
        .and_then(|v| v.as_array())
        .and_then(|a| a.strings())
        .unwrap();
    assert_eq!(
        (tokens.len(), tokens[n as usize - 1].as_str()),
        (n as usize, "token-000000000000119999")
    );
    let err = read_file_capped(&path, 2 << 20).unwrap_err();
    assert_eq!(err.kind, GgufErrorKind::TooLarge, "{err}");
    assert!(err.to_string().contains("first 2 MiB"), "{err}");
    let err = read_file(&dir.path().join("missing.gguf")).unwrap_err();
    assert_eq!(err.kind, GgufErrorKind::Io);
}

#[test]
fn random_corruption_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fs::read(placement_file(dir.path())).unwrap();
    let header = read_bytes(Path::new("m"), &bytes).unwrap().data_offset as usize;
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let start = Instant::now();
    let mut refused = 0;
    for _ in 0..3000 {
        let mut copy = bytes[..header + 4096].to_vec();
        // Flip one to four bytes of the metadata, often in the 8-byte lengths and counts.
        for _ in 0..=(next() % 4) {
            let at = (next() as usize) % header;
            copy[at] = next() as u8;
        }
        refused += usize::from(read_bytes(Path::new("m"), &copy).is_err());
    }
    eprintln!(
        "{refused} of 3000 corrupted files refused in {:?}",
        start.elapsed()
    );
    assert!(refused > 1000);
}

#[test]
fn summary_of_a_quantized_model_with_tied_output() {
    let arch = [
        s("general.architecture"),
        8i32.to_le_bytes().to_vec(),
        s("llama"),
    ]
    .concat();
    let kvs = [
        arch,
        kv_u32("llama.block_count", 1),
        kv_u32("llama.embedding_length", 256),
        kv_u32("llama.attention.head_count", 2),
        kv_u32("llama.context_length", 8192),
    ]
    .concat();
    // Q4_K: 144 bytes per 256; Q8_0: 34 per 32; F32 norms.
    let q4k = 12;
    let q80 = 8;
    let tensors = [
        tensor("token_embd.weight", &[256, 10], q80, 0), // 2720 bytes
        tensor("output_norm.weight", &[256], 0, 2720),   // 1024
        tensor("blk.0.attn_norm.weight", &[256], 0, 3744),
        tensor("blk.0.attn_q.weight", &[256, 256], q4k, 4768), // 36864
    ]
    .concat();
    let mut file = gguf(4, 5, &[kvs, tensors].concat());
    file.extend(padding(file.len()));
    file.extend(vec![0; 4768 + 36864]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.gguf");
    fs::write(&path, &file).unwrap();
    let s = summarize(&path).unwrap();
    assert_eq!(s.dominant_type, Some("Q4_K"));
    assert_eq!(s.tensor_bytes, 2720 + 1024 + 1024 + 36864);
    assert_eq!(s.layer_bytes, [1024 + 36864]);
    // No output.weight: the output layer is a GPU copy of the token embeddings.
    assert_eq!((s.output_bytes, s.cpu_only_bytes), (1024 + 2720, 2720));
    assert_eq!(
        (s.head_count_kv, s.key_length, s.context_length),
        (Some(2), Some(128), Some(8192))
    );
    assert_eq!(s.types[0].type_name, "Q4_K");
    // n_ctx 0: the trained context, 8192.
    let fit = layers_that_fit(&s, 4096, 0, KvCacheType::Q8_0);
    assert_eq!((fit.n_ctx, fit.n_gpu_layers), (8192, 2));
    assert_eq!(fit.kv_bytes_per_layer, 2 * 8192 * 256 / 32 * 34);
}

/// The worked example of docs/model-fit.md, so that the document and the code agree.
#[test]
fn docs_example_7b_on_an_8gb_card() {
    use gpu_doctor::gguf::ModelSummary;
    let s = ModelSummary {
        path: PathBuf::from("7b.gguf"),
        file_size: 0,
        gguf_version: 3,
        architecture: Some("llama".into()),
        name: None,
        block_count: Some(32),
        context_length: Some(4096),
        embedding_length: Some(4096),
        head_count: Some(32),
        feed_forward_length: Some(11008),
        head_count_kv: Some(32),
        key_length: Some(128),
        value_length: Some(128),
        vocab_size: Some(32000),
        file_type: Some(15),
        dominant_type: Some("Q4_K"),
        types: vec![],
        n_tensors: 291,
        tensor_bytes: 0,
        layer_bytes: vec![120 << 20; 32],
        output_bytes: 100 << 20,
        cpu_only_bytes: 70 << 20,
    };
    let fit = layers_that_fit(&s, 7680, 4096, KvCacheType::F16);
    assert_eq!(fit.kv_bytes_per_layer, 64 << 20);
    assert_eq!(fit.compute_bytes >> 20, 415);
    assert_eq!(fit.n_gpu_layers, 33);
    let long = layers_that_fit(&s, 7680, 16384, KvCacheType::F16);
    assert_eq!(
        (long.kv_bytes_per_layer >> 20, long.compute_bytes >> 20),
        (256, 1183)
    );
    assert_eq!(long.n_gpu_layers, 15);
    assert!(layers_that_fit(&s, 7680, 16384, KvCacheType::Q8_0).n_gpu_layers > 15);
}

#[test]
fn gguf_py_writer_produces_the_same_header_bytes() {
    if std::env::var_os("GPU_DOCTOR_SKIP_SLOW").is_some() {
        eprintln!("skipped: GPU_DOCTOR_SKIP_SLOW is set");
        return;
    }
    let python = gguf_py_venv();
    let dir = tempfile::tempdir().unwrap();
    let path = placement_file(dir.path());
    let theirs = dir.path().join("gguf-py.gguf");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/gguf_check.py");
    sh(
        Command::new(&python).arg(&script).arg(&path).arg(&theirs),
        "gguf_check.py (rewrite)",
        120,
    );
    // gguf-py wrote the header, key/values and tensor table; ours continues with zero padding
    // up to the aligned data offset.
    let ours = fs::read(&path).unwrap();
    let theirs = fs::read(&theirs).unwrap();
    let data_offset = read_file(&path).unwrap().data_offset as usize;
    assert!(theirs.len() <= data_offset && data_offset - theirs.len() < 32);
    let first_difference = ours.iter().zip(&theirs).position(|(a, b)| a != b);
    assert_eq!(first_difference, None, "header bytes differ");
    assert!(ours[theirs.len()..data_offset].iter().all(|&b| b == 0));
}
