//! The reference engine's in-process half: every llama.cpp call. Runs only in the child
//! (`gpu-doctor __probe llama-engine`), because llama.cpp may abort the process.
//!
//! Order matters: the log callback is installed before `llama_backend_init`, which registers
//! the backends (and, in a CUDA build, logs what CUDA found). Then the registry is listed and
//! each requested `n_gpu_layers` gets its own load, context, timed prompt decode, timed greedy
//! generation and one observed decode whose graph nodes' buffers the eval callback counts.
//! A failed step ends that run with llama.cpp's ERROR lines as its error; the next run still
//! happens. The log is cut into one section for start-up and one per run.

use super::logbuf::LogBuffer;
use super::{EngineDevice, EngineReport, EngineRequest, EngineRun, LogLine};
use llama_cpp_sys_2 as sys;
use std::collections::BTreeMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// ggml_log_level's ERROR.
pub(super) const LEVEL_ERROR: u32 = 4;
/// ERROR lines quoted in a run's error.
const ERROR_LINES: usize = 4;
/// llama.cpp's own default thread count.
const MAX_THREADS: usize = 4;

/// Where the log callback puts what llama.cpp says. A global because the callback is a plain
/// C function; a Mutex because ggml may log from its worker threads.
static LOG: Mutex<LogBuffer> = Mutex::new(LogBuffer::new());

/// The log callback. Called from C and C++: it must never unwind, so everything is inside
/// `catch_unwind`, and it does nothing but copy the text into [`LOG`].
unsafe extern "C" fn log_callback(level: sys::ggml_log_level, text: *const c_char, _: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if text.is_null() {
            return;
        }
        // SAFETY: llama.cpp passes a NUL-terminated message that lives for the call.
        let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
        // A panic while the lock was held leaves lines, not broken invariants: keep logging.
        let mut log = LOG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        log.push(level, &text);
    }));
}

pub(super) fn take_log() -> Vec<LogLine> {
    LOG.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take()
}

/// A C string llama.cpp owns, copied; None for NULL.
pub(super) fn copy_c_str(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL strings from ggml/llama getters are NUL-terminated and outlive this call.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// The whole child run.
pub fn run(request: &EngineRequest) -> EngineReport {
    // SAFETY: plain FFI calls in the order llama.h documents; the callback is 'static.
    unsafe {
        sys::llama_log_set(Some(log_callback), std::ptr::null_mut());
    }
    // The `cuda` build's backends are modules: load them (noting why one did not) before
    // llama_backend_init, which would otherwise load them itself with
    // ggml_backend_load_all and skip one that fails without a word. A build with its
    // backends linked in (the CPU default) already has them registered: this does nothing.
    let mut init_log = Vec::new();
    let backend_modules = super::modules::load(&mut init_log);
    // SAFETY: as above.
    unsafe { sys::llama_backend_init() };
    // llama_print_system_info returns a static std::string's buffer: copy it at once.
    // SAFETY: no arguments; called after backend init like llama.cpp's own tools do.
    let system_info = copy_c_str(unsafe { sys::llama_print_system_info() });
    // SAFETY: no arguments.
    let supports_gpu_offload = unsafe { sys::llama_supports_gpu_offload() };
    let backends = list_backends();
    let devices = list_devices();
    let n_threads = threads(request.all_cores);
    init_log.extend(take_log());
    let runs = request
        .n_gpu_layers
        .iter()
        .map(|&n| run_once(request, n, n_threads))
        .collect();
    // SAFETY: every model and context was freed by its run.
    unsafe { sys::llama_backend_free() };
    EngineReport {
        build: super::build_name().to_string(),
        llama_cpp_sys_version: super::LLAMA_CPP_SYS_VERSION.to_string(),
        system_info,
        supports_gpu_offload,
        backends,
        devices,
        init_log,
        runs,
        n_threads: n_threads as u32,
        backend_modules,
    }
}

/// Half the CPUs this process may use, 1 to 4. ggml's threads spin at each barrier: with as
/// many threads as CPUs on a busy machine (CI running tests in parallel), a token of the tiny
/// model took 200 ms instead of 0.2 ms. The tiny model gains nothing from more threads anyway.
fn threads(all_cores: bool) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cap = if all_cores { usize::MAX } else { MAX_THREADS };
    (cpus / 2).clamp(1, cap)
}

fn list_backends() -> Vec<String> {
    // SAFETY: index-based registry getters; a NULL reg or name is skipped.
    let count = unsafe { sys::ggml_backend_reg_count() };
    (0..count)
        .filter_map(|i| {
            let reg = unsafe { sys::ggml_backend_reg_get(i) };
            if reg.is_null() {
                return None;
            }
            copy_c_str(unsafe { sys::ggml_backend_reg_name(reg) })
        })
        .collect()
}

fn list_devices() -> Vec<EngineDevice> {
    // SAFETY: index-based device getters on devices the registry returned (non-NULL checked).
    let count = unsafe { sys::ggml_backend_dev_count() };
    (0..count)
        .filter_map(|i| {
            let dev = unsafe { sys::ggml_backend_dev_get(i) };
            if dev.is_null() {
                return None;
            }
            let (mut free, mut total) = (0usize, 0usize);
            unsafe { sys::ggml_backend_dev_memory(dev, &mut free, &mut total) };
            let reg = unsafe { sys::ggml_backend_dev_backend_reg(dev) };
            let backend = if reg.is_null() {
                None
            } else {
                copy_c_str(unsafe { sys::ggml_backend_reg_name(reg) })
            };
            Some(EngineDevice {
                name: copy_c_str(unsafe { sys::ggml_backend_dev_name(dev) }).unwrap_or_default(),
                description: copy_c_str(unsafe { sys::ggml_backend_dev_description(dev) })
                    .unwrap_or_default(),
                kind: device_kind(unsafe { sys::ggml_backend_dev_type(dev) }),
                free_mib: free as u64 >> 20,
                total_mib: total as u64 >> 20,
                backend: backend.unwrap_or_default(),
            })
        })
        .collect()
}

fn device_kind(t: sys::ggml_backend_dev_type) -> String {
    match t {
        sys::GGML_BACKEND_DEVICE_TYPE_CPU => "cpu".to_string(),
        sys::GGML_BACKEND_DEVICE_TYPE_GPU => "gpu".to_string(),
        sys::GGML_BACKEND_DEVICE_TYPE_IGPU => "igpu".to_string(),
        sys::GGML_BACKEND_DEVICE_TYPE_ACCEL => "accel".to_string(),
        sys::GGML_BACKEND_DEVICE_TYPE_META => "meta".to_string(),
        other => format!("type {other}"),
    }
}

/// One load + decode with `n_gpu_layers`; its log is the lines logged meanwhile.
fn run_once(request: &EngineRequest, n_gpu_layers: i32, n_threads: usize) -> EngineRun {
    let mut run = EngineRun {
        n_gpu_layers,
        ..EngineRun::default()
    };
    let outcome = load_and_decode(request, n_threads, &mut run);
    run.log = take_log();
    if let Err(step) = outcome {
        run.error = Some(error_text(&step, &run.log));
    }
    run
}

/// "<step> failed: <llama.cpp's ERROR lines>", or the step alone when llama.cpp said nothing.
fn error_text(step: &str, log: &[LogLine]) -> String {
    let errors: Vec<&str> = log
        .iter()
        .filter(|l| l.level == LEVEL_ERROR)
        .map(|l| l.text.trim())
        .filter(|t| !t.is_empty())
        .take(ERROR_LINES)
        .collect();
    if errors.is_empty() {
        format!("{step} failed")
    } else {
        format!("{step} failed: {}", errors.join(" | "))
    }
}

/// A loaded model, freed on drop.
struct Model(*mut sys::llama_model);

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: a non-NULL pointer from llama_model_load_from_file, freed once, after every
        // context made from it (declared later, so dropped earlier).
        if !self.0.is_null() {
            unsafe { sys::llama_model_free(self.0) };
        }
    }
}

/// A context, freed on drop.
struct Context(*mut sys::llama_context);

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: a non-NULL pointer from llama_init_from_model, freed once.
        if !self.0.is_null() {
            unsafe { sys::llama_free(self.0) };
        }
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

#[cfg(unix)]
fn model_path(path: &std::path::Path) -> Result<CString, String> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).map_err(|_| "the model path has a NUL byte".into())
}

#[cfg(not(unix))]
fn model_path(path: &std::path::Path) -> Result<CString, String> {
    let text = path.to_str().ok_or("the model path is not valid Unicode")?;
    CString::new(text).map_err(|_| "the model path has a NUL byte".into())
}

fn load_and_decode(
    request: &EngineRequest,
    n_threads: usize,
    run: &mut EngineRun,
) -> Result<(), String> {
    let path = model_path(&request.model)?;
    // SAFETY: default params by value, then a load from a NUL-terminated path. llama.cpp
    // catches its own exceptions here and returns NULL with an ERROR log line.
    let mut model_params = unsafe { sys::llama_model_default_params() };
    model_params.n_gpu_layers = run.n_gpu_layers;
    let start = Instant::now();
    let model = Model(unsafe { sys::llama_model_load_from_file(path.as_ptr(), model_params) });
    run.load_ms = Some(ms(start));
    if model.0.is_null() {
        return Err("llama_model_load_from_file".into());
    }
    run.loaded = true;
    // Declared after the model and before the context: dropped after the context that
    // points at it.
    let observer = Observer::default();
    let op_offload = !(request.cpu_only_baseline && run.n_gpu_layers == 0);
    let ctx = new_context(&model, request, n_threads, op_offload, &observer)?;
    // SAFETY: the vocab belongs to the live model.
    let n_vocab = unsafe { sys::llama_vocab_n_tokens(sys::llama_model_get_vocab(model.0)) };
    if n_vocab <= 0 {
        return Err(format!("the model has {n_vocab} tokens; decoding"));
    }
    let mut finite = true;
    warm_up(
        &ctx,
        &model,
        n_vocab,
        warmup_tokens(request, run.n_gpu_layers),
    )?;
    let mut prompt = prompt_tokens(&model, n_vocab, request.prompt_tokens.max(1));
    let start = Instant::now();
    let mut next = decode(&ctx, &mut prompt, n_vocab, &mut finite)?;
    run.prompt_ms = Some(ms(start));
    run.prompt_tokens = prompt.len() as u32;
    run.logits_finite = Some(finite);
    let start = Instant::now();
    for _ in 0..request.gen_tokens {
        next = decode(&ctx, &mut [next], n_vocab, &mut finite)?;
        run.gen_tokens += 1;
        run.logits_finite = Some(finite);
    }
    run.gen_ms = Some(ms(start));
    // One more token with the eval callback observing every node.
    observer.observing.store(true, Ordering::SeqCst);
    let observed = decode(&ctx, &mut [next], n_vocab, &mut finite);
    observer.observing.store(false, Ordering::SeqCst);
    observed?;
    run.logits_finite = Some(finite);
    run.node_buffers = observer
        .counts
        .lock()
        .map(|c| c.clone())
        .unwrap_or_default();
    Ok(())
}

/// The warm-up of a run: the request's, at most 16 tokens without GPU layers (enough to page
/// the weights in; a CPU gains nothing from a longer one).
fn warmup_tokens(request: &EngineRequest, n_gpu_layers: i32) -> u32 {
    let cap = if n_gpu_layers == 0 {
        16
    } else {
        request.n_batch
    };
    request.warmup_tokens.min(cap)
}

/// Decode `n` tokens and forget them: the timed prompt that follows starts at position 0 of an
/// empty KV cache, with the backends' first-use costs paid.
fn warm_up(ctx: &Context, model: &Model, n_vocab: i32, n: u32) -> Result<(), String> {
    if n == 0 {
        return Ok(());
    }
    let mut tokens = prompt_tokens(model, n_vocab, n);
    let mut finite = true;
    decode(ctx, &mut tokens, n_vocab, &mut finite)?;
    // SAFETY: the memory belongs to the live context; clearing it (data too) is what a new
    // sequence does.
    unsafe { sys::llama_memory_clear(sys::llama_get_memory(ctx.0), true) };
    Ok(())
}

fn new_context(
    model: &Model,
    request: &EngineRequest,
    n_threads: usize,
    op_offload: bool,
    observer: &Observer,
) -> Result<Context, String> {
    // SAFETY: default params by value; the callback's user data points at `observer`, which
    // the caller keeps alive until the context is freed.
    let mut params = unsafe { sys::llama_context_default_params() };
    params.n_ctx = request.n_ctx;
    params.n_batch = request.n_batch;
    params.n_threads = n_threads as i32;
    params.n_threads_batch = n_threads as i32;
    params.op_offload = op_offload;
    params.cb_eval = Some(eval_callback);
    params.cb_eval_user_data = observer as *const Observer as *mut c_void;
    let ctx = Context(unsafe { sys::llama_init_from_model(model.0, params) });
    if ctx.0.is_null() {
        return Err("llama_init_from_model".into());
    }
    Ok(ctx)
}

/// Deterministic prompt ids: BOS, then ids spread over the vocabulary (for the synthetic
/// model: byte tokens, which any SPM vocabulary has).
fn prompt_tokens(model: &Model, n_vocab: i32, n: u32) -> Vec<sys::llama_token> {
    // SAFETY: the vocab belongs to the live model.
    let bos = unsafe { sys::llama_vocab_bos(sys::llama_model_get_vocab(model.0)) };
    let first = if (0..n_vocab).contains(&bos) { bos } else { 0 };
    let span = (n_vocab - 3).max(1) as i64;
    let mut tokens = vec![first];
    tokens.extend((1..n as i64).map(|i| (3 + (i * 37) % span).min(n_vocab as i64 - 1) as i32));
    tokens
}

/// Decode `tokens` as one batch, read the last token's logits (which waits for the device),
/// fold their finiteness into `finite`, and return the greedy next token.
fn decode(
    ctx: &Context,
    tokens: &mut [sys::llama_token],
    n_vocab: i32,
    finite: &mut bool,
) -> Result<sys::llama_token, String> {
    // SAFETY: the batch borrows `tokens`, which outlives the call; llama_batch_get_one
    // batches are not freed by the caller.
    let code = unsafe {
        let batch = sys::llama_batch_get_one(tokens.as_mut_ptr(), tokens.len() as i32);
        sys::llama_decode(ctx.0, batch)
    };
    if code != 0 {
        return Err(format!("llama_decode (code {code})"));
    }
    // SAFETY: after a successful decode, logits of the last token are n_vocab floats owned by
    // the context, valid until the next decode.
    let logits = unsafe {
        let p = sys::llama_get_logits_ith(ctx.0, -1);
        if p.is_null() {
            return Err("llama_get_logits_ith".into());
        }
        std::slice::from_raw_parts(p, n_vocab as usize)
    };
    *finite &= logits.iter().all(|x| x.is_finite());
    Ok(argmax(logits))
}

/// The first largest logit; NaNs never win (the run is then reported as not finite anyway).
fn argmax(logits: &[f32]) -> sys::llama_token {
    let mut best: Option<(usize, f32)> = None;
    for (i, &x) in logits.iter().enumerate() {
        if !x.is_nan() && best.is_none_or(|(_, b)| x > b) {
            best = Some((i, x));
        }
    }
    best.map_or(0, |(i, _)| i as sys::llama_token)
}

/// What the eval callback counts: graph nodes per buffer name, while `observing`.
#[derive(Default)]
struct Observer {
    observing: AtomicBool,
    counts: Mutex<BTreeMap<String, u32>>,
}

/// The scheduler's eval callback: with `ask` it asks whether to hand over this node (only
/// while observing, because each handed-over node costs a synchronisation); without, it
/// hands the computed node over. Returning false there would cancel the graph.
unsafe extern "C" fn eval_callback(t: *mut sys::ggml_tensor, ask: bool, data: *mut c_void) -> bool {
    catch_unwind(AssertUnwindSafe(|| {
        if data.is_null() {
            return !ask;
        }
        // SAFETY: `data` is the Observer set in new_context, alive while the context is.
        let observer = unsafe { &*(data as *const Observer) };
        if ask {
            return observer.observing.load(Ordering::SeqCst);
        }
        let name = buffer_name(t);
        if let Ok(mut counts) = observer.counts.lock() {
            *counts.entry(name).or_default() += 1;
        }
        true
    }))
    .unwrap_or(!ask)
}

/// The name of the buffer a graph node lives in ("CPU", "CUDA0").
fn buffer_name(t: *mut sys::ggml_tensor) -> String {
    if t.is_null() {
        return "(no tensor)".into();
    }
    // SAFETY: the scheduler passes a valid node during the callback.
    let buffer = unsafe { (*t).buffer };
    if buffer.is_null() {
        return "(no buffer)".into();
    }
    // SAFETY: a live buffer of the scheduler.
    copy_c_str(unsafe { sys::ggml_backend_buffer_name(buffer) }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_step_quotes_llama_cpp_errors() {
        let log = vec![
            LogLine {
                level: 2,
                text: "info".into(),
            },
            LogLine {
                level: LEVEL_ERROR,
                text: "gguf_init_from_file_impl: failed to open GGUF file 'x'".into(),
            },
        ];
        assert_eq!(
            error_text("llama_model_load_from_file", &log),
            "llama_model_load_from_file failed: gguf_init_from_file_impl: failed to open GGUF file 'x'"
        );
        assert_eq!(error_text("llama_decode", &[]), "llama_decode failed");
    }

    #[test]
    fn greedy_picks_the_first_largest_logit() {
        assert_eq!(argmax(&[0.1, 3.0, -1.0, 3.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0]), 1);
    }

    #[test]
    fn device_kinds_have_the_names_the_facts_use() {
        assert_eq!(device_kind(sys::GGML_BACKEND_DEVICE_TYPE_CPU), "cpu");
        assert_eq!(device_kind(sys::GGML_BACKEND_DEVICE_TYPE_IGPU), "igpu");
        assert_eq!(device_kind(42), "type 42");
    }
}
