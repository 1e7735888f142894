# gpu-doctor live probe: run by each Python environment's own interpreter (`python -I -B -c`).
#
# It reports what that interpreter really sees: its version, whether torch imports and can use
# CUDA (devices, capabilities, arch list, a tiny tensor operation on each device), and whether
# llama_cpp imports, offloads to a GPU, and which backends its build registered.
#
# Contract with src/probe/python/live.rs:
# - stdlib only; parses on Python 2.7 and 3.x so that an old interpreter still says its version.
# - stdout carries nothing but JSON lines tagged {"gpu_doctor_live": 1, ...}. One is written
#   before every step that may crash or hang (importing native libraries, initialising CUDA), so
#   that after a crash or a kill the last line says how far it got ("stage"). The last line of a
#   finished run has "done": true. Everything the libraries print, from Python or from C, goes
#   to stderr: file descriptor 1 is pointed at stderr for the whole run, and the answers are
#   written to a saved copy of the original stdout.
# - Arguments: --deadline SECONDS (the parent kills the process then; a traceback of where it
#   hung is dumped to stderr just before), --torch / --llama-cpp (the files show the package is
#   installed: try it even if the import system cannot find it), --no-tensor.
# - It never raises: every step catches BaseException and records the exception's last line.

import os
import sys

TAG = "gpu_doctor_live"
MAX_TEXT = 4000
# ggml_backend_dev_type values that are GPUs: GPU = 1 always; 2 is IGPU in current llama.cpp
# but ACCEL in builds from before IGPU existed, so it counts only for GPU backends' devices.
GPU_DEVICE_PREFIXES = ("CUDA", "ROCm", "MUSA", "Vulkan", "SYCL", "Metal", "OpenCL", "CANN")


def text(value, limit=MAX_TEXT):
    """A bounded str from anything (bytes are decoded, never raised on)."""
    try:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        value = str(value)
    except BaseException:
        value = "<unprintable>"
    if len(value) > limit:
        value = value[:limit] + "..."
    return value


def last_line(exc):
    """The exception as the last line of its traceback: "OSError: libcudnn.so.9: ..."."""
    try:
        import traceback

        lines = traceback.format_exception_only(type(exc), exc)
        parts = "".join(lines).strip().splitlines()
        return text(parts[-1].strip() if parts else type(exc).__name__, 2000)
    except BaseException:
        return text(type(exc).__name__)


class Output(object):
    """Writes the tagged answers to the original stdout while fd 1 points at stderr."""

    def __init__(self):
        self.fd = None
        try:
            sys.stdout.flush()
            self.fd = os.dup(1)
            os.dup2(2, 1)
        except BaseException:
            self.fd = None
        # Python-level prints from the libraries go to stderr as well.
        self.fallback = sys.stdout
        sys.stdout = sys.stderr

    def emit(self, state):
        try:
            import json

            data = (json.dumps(state, sort_keys=True) + "\n").encode("ascii")
        except BaseException as exc:
            data = ('{"%s": 1, "stage": "encode", "script_error": "%s"}\n'
                    % (TAG, last_line(exc).replace('"', "'").replace("\\", "/"))).encode("ascii")
        try:
            if self.fd is None:
                self.fallback.write(data.decode("ascii"))
                self.fallback.flush()
                return
            while data:
                written = os.write(self.fd, data)
                data = data[written:]
        except BaseException:
            pass


def parse_args(argv):
    opts = {"deadline": 0.0, "torch": False, "llama_cpp": False, "tensor": True}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--deadline" and i + 1 < len(argv):
            try:
                opts["deadline"] = float(argv[i + 1])
            except ValueError:
                pass
            i += 1
        elif arg == "--torch":
            opts["torch"] = True
        elif arg == "--llama-cpp":
            opts["llama_cpp"] = True
        elif arg == "--no-tensor":
            opts["tensor"] = False
        i += 1
    return opts


def guard(deadline):
    """Python tracebacks on stderr for a fatal signal, and for a hang just before the kill."""
    try:
        import faulthandler

        faulthandler.enable()
        if deadline > 4:
            faulthandler.dump_traceback_later(deadline - 2, exit=False)
    except BaseException:
        pass


def findable(name):
    """The import system can find a top-level package, without running it."""
    try:
        import importlib.util

        return importlib.util.find_spec(name) is not None
    except BaseException:
        try:
            import imp

            imp.find_module(name)
            return True
        except BaseException:
            return False


def location(module):
    """The folder holding a package (its sys.path entry): /x/site-packages for
    /x/site-packages/torch/__init__.py."""
    try:
        return text(os.path.dirname(os.path.dirname(os.path.abspath(module.__file__))))
    except BaseException:
        return None


def add_user_site():
    """-I leaves out the user's site-packages; a plain `python` of this environment has it
    unless the environment is a venv that does not see the system site-packages (as site.py
    decides), or PYTHONNOUSERSITE is set."""
    try:
        import site

        if os.environ.get("PYTHONNOUSERSITE") or not hasattr(site, "getusersitepackages"):
            return
        if sys.prefix != getattr(sys, "base_prefix", sys.prefix):
            system_site = False
            with open(os.path.join(sys.prefix, "pyvenv.cfg")) as cfg:
                for line in cfg:
                    key, _, value = line.partition("=")
                    if key.strip().lower() == "include-system-site-packages":
                        system_site = value.strip().lower() == "true"
            if not system_site:
                return
        user_base = os.environ.get("PYTHONUSERBASE")
        if user_base:
            site.USER_BASE = user_base
        user = site.getusersitepackages()
        if os.path.isdir(user) and user not in sys.path:
            # Where site.py puts it: after a venv's own site-packages, before the base's.
            position = len(sys.path)
            for i, entry in enumerate(sys.path):
                if entry.startswith(getattr(sys, "base_prefix", sys.prefix)) and (
                        entry.endswith("site-packages") or entry.endswith("dist-packages")):
                    position = i
                    break
            sys.path.insert(position, user)
            site.addsitedir(user)
    except BaseException:
        pass


def package_paths():
    """sys.path without the standard library's folders and zip."""
    try:
        import sysconfig

        stdlib = set()
        for key in ("stdlib", "platstdlib"):
            path = sysconfig.get_paths().get(key)
            if path:
                stdlib.add(os.path.normpath(path))
                stdlib.add(os.path.normpath(os.path.join(path, "lib-dynload")))
        out = []
        for entry in sys.path:
            norm = os.path.normpath(entry) if entry else entry
            if not entry or norm in stdlib or entry.endswith(".zip"):
                continue
            # Python 2's plat-linux2, lib-tk, ...: below the standard library, not packages.
            inside = [s for s in stdlib if norm.startswith(s + os.sep)]
            if inside and "-packages" not in norm[len(inside[0]):]:
                continue
            out.append(text(entry, 1000))
        return out[:64]
    except BaseException:
        return []


def elapsed_ms(start):
    import time

    return round((time.time() - start) * 1000.0, 1)


def probe_torch(state, opts, out):
    info = state["torch"]
    info["attempted"] = True
    state["stage"] = "torch.import"
    out.emit(state)
    import time

    start = time.time()
    try:
        import torch
    except BaseException as exc:
        info["import_ms"] = elapsed_ms(start)
        info["import_error"] = last_line(exc)
        return
    info["import_ms"] = elapsed_ms(start)
    info["import_ok"] = True
    info["location"] = location(torch)
    info["version"] = text(getattr(torch, "__version__", None) or "") or None
    try:
        cuda = torch.version.cuda
        info["cuda"] = text(cuda) if cuda else None
    except BaseException:
        pass
    state["stage"] = "torch.cuda"
    out.emit(state)
    torch_cuda(torch, info)
    if info.get("cuda_available"):
        torch_devices(torch, info, state, opts, out)


def torch_cuda(torch, info):
    """is_available(), with the warning torch gives instead of an error."""
    import warnings

    messages = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            info["cuda_available"] = bool(torch.cuda.is_available())
        messages = [text(w.message, 1000) for w in caught]
    except BaseException as exc:
        messages.append(last_line(exc))
    cuda_messages = [m for m in messages if "CUDA" in m or "cuda" in m or "driver" in m]
    if cuda_messages:
        info["cuda_error"] = cuda_messages[0]
    elif info.get("cuda_available") is False and info.get("cuda"):
        # A CUDA build that sees no GPU and said nothing: initialising says why.
        try:
            torch.cuda.init()
        except BaseException as exc:
            info["cuda_error"] = last_line(exc)
    try:
        info["arch_list"] = [text(a, 100) for a in torch.cuda.get_arch_list()]
    except BaseException:
        pass


def torch_devices(torch, info, state, opts, out):
    try:
        info["device_count"] = int(torch.cuda.device_count())
    except BaseException as exc:
        info["cuda_error"] = last_line(exc)
        return
    for index in range(min(info["device_count"], 64)):
        device = {"index": index, "name": "", "capability": "", "tensor_ok": False}
        info["devices"].append(device)
        try:
            device["name"] = text(torch.cuda.get_device_name(index), 200)
            major, minor = torch.cuda.get_device_capability(index)
            device["capability"] = "%d.%d" % (major, minor)
        except BaseException as exc:
            device["tensor_error"] = last_line(exc)
            continue
        if opts["tensor"]:
            state["stage"] = "torch.tensor:%d" % index
            out.emit(state)
            tensor_check(torch, index, device)


def tensor_check(torch, index, device):
    try:
        where = torch.device("cuda", index)
        value = (torch.arange(4, device=where) * 2).sum().item()
        torch.cuda.synchronize(where)
        device["tensor_ok"] = value == 12
        if value != 12:
            device["tensor_error"] = "wrong result: %r instead of 12" % (value,)
    except BaseException as exc:
        device["tensor_error"] = last_line(exc)


def probe_llama(state, out):
    info = state["llama_cpp"]
    info["attempted"] = True
    import_llama(info, state, out, "llama_cpp.")


def import_llama(info, state, out, stage_prefix):
    """Import llama_cpp and record what it says of itself (version, GPU offload, system info,
    devices) into info. The module, or None when the import failed. Also used by the offload
    proof (src/probe/llama/proof_script.py)."""
    import time

    state["stage"] = stage_prefix + "import"
    out.emit(state)
    start = time.time()
    try:
        import llama_cpp
    except BaseException as exc:
        info["import_ms"] = elapsed_ms(start)
        info["import_error"] = last_line(exc)
        return None
    info["import_ms"] = elapsed_ms(start)
    info["import_ok"] = True
    info["location"] = location(llama_cpp)
    version = getattr(llama_cpp, "__version__", None)
    info["version"] = text(version) if version else None
    state["stage"] = stage_prefix + "system_info"
    out.emit(state)
    try:
        info["supports_gpu_offload"] = bool(llama_cpp.llama_supports_gpu_offload())
    except BaseException as exc:
        info["errors"].append("llama_supports_gpu_offload: " + last_line(exc))
    try:
        info["system_info"] = text(llama_cpp.llama_print_system_info())
    except BaseException as exc:
        info["errors"].append("llama_print_system_info: " + last_line(exc))
    state["stage"] = stage_prefix + "devices"
    out.emit(state)
    llama_devices(llama_cpp, info)
    return llama_cpp


def ggml_devices(llama_cpp):
    """ggml's device registry through ctypes (llama-cpp-python does not wrap it): a list of
    (device, its type: 0 cpu, 1 gpu, 2 accel) and the library, or None for builds from before
    the registry (2024). Also used by the offload proof."""
    try:
        import ctypes

        lib = getattr(getattr(llama_cpp, "_ggml", None), "libggml", None)
        if lib is None:
            lib = llama_cpp.llama_cpp._lib
        count = lib.ggml_backend_dev_count
        count.restype = ctypes.c_size_t
        count.argtypes = []
        get = lib.ggml_backend_dev_get
        get.restype = ctypes.c_void_p
        get.argtypes = [ctypes.c_size_t]
        kind = lib.ggml_backend_dev_type
        kind.restype = ctypes.c_int
        kind.argtypes = [ctypes.c_void_p]
    except BaseException:
        return None
    # Calls that fail raise: that is worth reporting, unlike an old build.
    devices = [get(i) for i in range(min(int(count()), 64))]
    return [(dev, int(kind(dev))) for dev in devices], lib


def llama_devices(llama_cpp, info):
    """The devices llama.cpp sees, as "NAME (gpu|cpu|accel): DESCRIPTION"."""
    try:
        import ctypes

        registry = ggml_devices(llama_cpp)
        if registry is None:
            return
        devices, lib = registry
        name = lib.ggml_backend_dev_name
        desc = lib.ggml_backend_dev_description
        for f in (name, desc):
            f.restype = ctypes.c_char_p
            f.argtypes = [ctypes.c_void_p]
        gpus = 0
        for dev, dev_type in devices:
            dev_name = text(name(dev) or b"", 100)
            is_gpu = dev_type == 1 or (dev_type == 2 and dev_name.startswith(GPU_DEVICE_PREFIXES))
            gpus += 1 if is_gpu else 0
            label = "gpu" if is_gpu else {0: "cpu"}.get(dev_type, "accel")
            info["devices"].append("%s (%s): %s" % (dev_name, label, text(desc(dev) or b"", 200)))
        info["gpu_device_count"] = gpus
    except BaseException as exc:
        info["errors"].append("ggml_backend_dev: " + last_line(exc))


def new_state():
    version = sys.version_info
    return {
        TAG: 1,
        "done": False,
        "stage": "start",
        "python_version": "%d.%d.%d" % (version[0], version[1], version[2]),
        "implementation": text(getattr(getattr(sys, "implementation", None), "name", "cpython")),
        "executable": text(sys.executable or ""),
        "torch": {"attempted": False, "import_ok": False, "device_count": 0, "devices": [],
                  "arch_list": []},
        "llama_cpp": {"attempted": False, "import_ok": False, "devices": [], "errors": []},
    }


def main(argv):
    out = Output()
    opts = parse_args(argv)
    guard(opts["deadline"])
    # Not isolated (-E -s on an old interpreter): the current folder must not shadow packages.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    add_user_site()
    state = new_state()
    state["import_paths"] = package_paths()
    out.emit(state)
    try:
        if opts["torch"] or findable("torch"):
            probe_torch(state, opts, out)
        if opts["llama_cpp"] or findable("llama_cpp"):
            probe_llama(state, out)
    except BaseException as exc:
        state["script_error"] = last_line(exc)
    state["stage"] = "done"
    state["done"] = True
    out.emit(state)


if __name__ == "__main__":
    main(sys.argv[1:])
