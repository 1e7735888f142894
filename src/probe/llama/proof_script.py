
# ---------------------------------------------------------------------------------------------
# gpu-doctor offload proof for llama-cpp-python (src/probe/llama/proof_script.py).
#
# Appended by src/probe/llama/pyproof.rs to the live probe script's helpers (everything of
# src/probe/python/probe_script.py before its `if __name__ == "__main__":`), whose Output, guard,
# text, last_line, elapsed_ms, import_llama and ggml_devices it uses; run as `python -I -B -u -c`.
#
# Contract with pyproof.rs:
# - stdout: JSON lines tagged like the live probe's ({"gpu_doctor_live": 1, "stage": ...,
#   "offload": {...}}), one before every step that may crash or hang; the last has "done": true.
# - stderr: llama.cpp's own log (verbose=True), with a line "gpu_doctor_offload: begin LABEL
#   n_gpu_layers=N" before and "gpu_doctor_offload: end LABEL" after each load, so the parent
#   can tell which lines belong to which load, even after a crash.
# - Loads: "placement" (every layer asked for on the GPU, n_gpu_layers=-1), "baseline"
#   (n_gpu_layers=0), then, when llama.cpp offers a GPU device, "speed.gpu" and "speed.cpu":
#   prompt processing of one long batch on a model of realistic width.
# - Arguments: --deadline S, --model PATH, --prompt N, --gen N, --speed PATH:BYTES (repeatable,
#   largest first; the first that fits the GPU's free memory is used), --speed-tokens N (the
#   GPU's batch), --cpu-tokens N (the CPU's: its rate per token does not grow with the batch, so
#   a shorter one measures the same rate in a quarter of the time), --user-model PATH (the
#   speed workload runs on it instead).
# - Never raises: every step records the exception's last line.

MARK = "gpu_doctor_offload:"
# A speed model is used when the GPU has this much free beyond 1.25 times its size (KV cache,
# compute buffers, the CUDA context).
SPEED_HEADROOM_MIB = 1536


def mark(what):
    try:
        sys.stderr.write("\n%s %s\n" % (MARK, what))
        sys.stderr.flush()
    except BaseException:
        pass


def proof_args(argv):
    opts = {"deadline": 0.0, "model": None, "prompt": 16, "gen": 8, "speed": [],
            "speed_tokens": 512, "cpu_tokens": 128, "user_model": None}
    i = 0
    while i + 1 < len(argv):
        key, value = argv[i], argv[i + 1]
        try:
            if key == "--deadline":
                opts["deadline"] = float(value)
            elif key == "--model":
                opts["model"] = value
            elif key == "--prompt":
                opts["prompt"] = int(value)
            elif key == "--gen":
                opts["gen"] = int(value)
            elif key == "--speed-tokens":
                opts["speed_tokens"] = int(value)
            elif key == "--cpu-tokens":
                opts["cpu_tokens"] = int(value)
            elif key == "--user-model":
                opts["user_model"] = value
            elif key == "--speed":
                path, size = value.rsplit(":", 1)
                opts["speed"].append((path, int(size)))
        except ValueError:
            pass
        i += 2
    return opts


def new_proof():
    return {"import_ok": False, "import_error": None, "import_ms": None, "version": None,
            "supports_gpu_offload": None, "system_info": None, "devices": [],
            "gpu_device_count": None, "gpu_free_mib": None, "errors": [],
            "cuda_backend_library": None, "cuda_backend_load_error": None,
            "runs": [], "speed_model": None, "speed_skipped": None, "cpu_pure": None}


def package_dirs():
    """llama_cpp's package folders, found without importing it."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("llama_cpp")
        return list(spec.submodule_search_locations or []) if spec else []
    except BaseException:
        return []


def cuda_backend_check(info):
    """Load the CUDA backend library on its own: when it fails, the dynamic loader says why
    (a missing libcudart.so.12, ...), which llama.cpp's silent backend loading never does."""
    import ctypes

    names = ("libggml-cuda.so", "ggml-cuda.dll", "libggml-cuda.dylib")
    dirs = []
    override = os.environ.get("LLAMA_CPP_LIB_PATH")
    if override:
        dirs.append(override)
    for pkg in package_dirs():
        dirs.extend([os.path.join(pkg, "lib"), pkg])
    for folder in dirs:
        for name in names:
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                continue
            info["cuda_backend_library"] = text(path, 1000)
            try:
                ctypes.CDLL(path)
            except BaseException as exc:
                info["cuda_backend_load_error"] = text(exc, 2000)
            return


def gpu_free_mib(llama_cpp):
    """Free memory of the first GPU device of ggml's registry, in MiB; None when unknown."""
    try:
        import ctypes

        registry = ggml_devices(llama_cpp)
        if registry is None:
            return None
        devices, lib = registry

        memory = lib.ggml_backend_dev_memory
        memory.restype = None
        memory.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                           ctypes.POINTER(ctypes.c_size_t)]
        for dev, dev_type in devices:
            if dev_type in (1, 2):
                free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
                memory(dev, ctypes.byref(free), ctypes.byref(total))
                return int(free.value // (1024 * 1024))
    except BaseException:
        pass
    return None


def token_ids(llm, n):
    """n token ids: BOS, then ordinary ids cycling through the vocabulary (no tokenizer needed)."""
    try:
        vocab = int(llm.n_vocab())
    except BaseException:
        vocab = 263
    try:
        bos = int(llm.token_bos())
    except BaseException:
        bos = 1
    span = max(vocab - 3, 1)
    return [bos] + [3 + (i % span) for i in range(max(n - 1, 0))]


def close(llm):
    if llm is None:
        return
    try:
        llm.close()
    except BaseException:
        pass


def load(llama_cpp, state, out, label, model, n_gpu_layers, n_ctx, extra):
    """Load `model` with n_gpu_layers between markers; returns (llm, run) or (None, run)."""
    import time

    run = {"label": label, "n_gpu_layers": n_gpu_layers, "loaded": False, "error": None,
           "load_ms": None, "prompt_tokens": 0, "prompt_ms": None, "gen_tokens": 0,
           "gen_ms": None}
    state["offload"]["runs"].append(run)
    state["stage"] = label + ".load"
    out.emit(state)
    mark("begin %s n_gpu_layers=%d" % (label, n_gpu_layers))
    start = time.time()
    try:
        llm = llama_cpp.Llama(model_path=model, n_gpu_layers=n_gpu_layers, n_ctx=n_ctx,
                              n_batch=512, verbose=True, **extra)
    except BaseException as exc:
        run["error"] = last_line(exc)
        mark("end %s" % label)
        return None, run
    run["load_ms"] = elapsed_ms(start)
    run["loaded"] = True
    state["stage"] = label + ".decode"
    out.emit(state)
    return llm, run


def few_threads(llama_cpp):
    """Half the cores, at most 4, for the tiny placement model: more only wait on each other,
    and spinning OpenMP threads slow everything else the doctor runs at the same time."""
    threads = max(1, min(4, (os.cpu_count() or 2) // 2))
    return dict((k, threads) for k in ("n_threads", "n_threads_batch")
                if accepts(llama_cpp.Llama.__init__, k))


def placement_run(llama_cpp, state, out, label, opts, n_gpu_layers):
    """The placement model: a short prompt and a few generated tokens, timed (recorded only)."""
    import time

    llm, run = load(llama_cpp, state, out, label, opts["model"], n_gpu_layers, 512,
                    few_threads(llama_cpp))
    if llm is None:
        return run
    try:
        tokens = token_ids(llm, opts["prompt"])
        start = time.time()
        llm.eval(tokens)
        run["prompt_ms"] = elapsed_ms(start)
        run["prompt_tokens"] = len(tokens)
        start = time.time()
        for _ in range(opts["gen"]):
            llm.eval(tokens[-1:])
        run["gen_ms"] = elapsed_ms(start)
        run["gen_tokens"] = opts["gen"]
    except BaseException as exc:
        run["error"] = last_line(exc)
    close(llm)
    out.emit(state)
    mark("end %s" % label)
    return run


def speed_run(llama_cpp, state, out, label, model, n_gpu_layers, n_tokens, warm, extra):
    """Prompt processing of one batch of n_tokens, after a warm-up batch of `warm` tokens (on
    a GPU the same size, so that its libraries have chosen their kernels; on the CPU a short
    one that maps the weights in)."""
    import time

    llm, run = load(llama_cpp, state, out, label, model, n_gpu_layers, n_tokens + 512, extra)
    if llm is None:
        return run
    try:
        llm.eval(token_ids(llm, warm))
        llm.reset()
        tokens = token_ids(llm, n_tokens)
        start = time.time()
        llm.eval(tokens)
        run["prompt_ms"] = elapsed_ms(start)
        run["prompt_tokens"] = len(tokens)
    except BaseException as exc:
        run["error"] = last_line(exc)
    close(llm)
    out.emit(state)
    mark("end %s" % label)
    return run


def accepts(function, name):
    try:
        import inspect

        return name in inspect.signature(function).parameters
    except BaseException:
        return False


def speed(llama_cpp, state, out, opts):
    info = state["offload"]
    if not info.get("supports_gpu_offload") or not info.get("gpu_device_count"):
        info["speed_skipped"] = "llama.cpp offers no GPU device"
        return
    model = opts["user_model"]
    if not model and not opts["speed"]:
        info["speed_skipped"] = "no speed model was given"
        return
    if not model:
        free = info.get("gpu_free_mib")
        fits = [p for p, size in opts["speed"]
                if free is None or size / 1048576.0 * 1.25 + SPEED_HEADROOM_MIB <= free]
        if not fits:
            info["speed_skipped"] = "no speed model fits the GPU's %s MiB free" % free
            return
        model = fits[0] if free is not None else opts["speed"][-1][0]
    info["speed_model"] = model
    n = opts["speed_tokens"]
    gpu = speed_run(llama_cpp, state, out, "speed.gpu", model, -1, n, n, {})
    if not gpu["loaded"]:
        return
    # Large batches would otherwise still be multiplied on the GPU (op offload).
    pure = accepts(llama_cpp.Llama.__init__, "op_offload")
    info["cpu_pure"] = pure
    extra = {"op_offload": False} if pure else {}
    speed_run(llama_cpp, state, out, "speed.cpu", model, 0, opts["cpu_tokens"], 16, extra)


def prove(state, opts, out):
    info = state["offload"]
    llama_cpp = import_llama(info, state, out, "")
    if llama_cpp is None:
        state["stage"] = "cuda_backend"
        out.emit(state)
        cuda_backend_check(info)
        return
    info["gpu_free_mib"] = gpu_free_mib(llama_cpp)
    state["stage"] = "cuda_backend"
    out.emit(state)
    cuda_backend_check(info)
    placement_run(llama_cpp, state, out, "placement", opts, -1)
    placement_run(llama_cpp, state, out, "baseline", opts, 0)
    speed(llama_cpp, state, out, opts)


def proof_main(argv):
    out = Output()
    opts = proof_args(argv)
    guard(opts["deadline"])
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    state = {TAG: 1, "done": False, "stage": "start", "offload": new_proof()}
    out.emit(state)
    try:
        prove(state, opts, out)
    except BaseException as exc:
        state["script_error"] = last_line(exc)
    state["stage"] = "done"
    state["done"] = True
    out.emit(state)


proof_main(sys.argv[1:])
