/*
 * A stand-in libnvidia-ml.so.1 for tests on machines without an NVIDIA driver.
 *
 * Build: cc -shared -fPIC -Wl,-soname,libnvidia-ml.so.1 -o DIR/libnvidia-ml.so.1 fake_nvml.c [-DMODE]
 *
 * Modes (one at a time):
 *   (none)              nvmlInit returns NVML_ERROR_DRIVER_NOT_LOADED (9): library installed,
 *                       kernel module not loaded.
 *   FAKE_NVML_MISMATCH  nvmlInit returns NVML_ERROR_LIB_RM_VERSION_MISMATCH (18): the user-space
 *                       library and the kernel module are different versions.
 *   FAKE_NVML_GPU       a working driver 580.159.04 with one H100-like GPU. Serial and page
 *                       retirement answer NOT_SUPPORTED; nvmlDeviceGetTemperature is not exported,
 *                       so reading it fails to load a symbol, as with an old driver.
 */
#include <string.h>
#include <unistd.h>

typedef int nvmlReturn_t;
typedef void *nvmlDevice_t;

enum { OK = 0, NOT_SUPPORTED = 3, INVALID_ARGUMENT = 2, INSUFFICIENT_SIZE = 7 };

#if defined(FAKE_NVML_MISMATCH)
#define INIT_RESULT 18
#elif defined(FAKE_NVML_GPU)
#define INIT_RESULT 0
#else
#define INIT_RESULT 9
#endif

nvmlReturn_t nvmlInit_v2(void) { return INIT_RESULT; }
nvmlReturn_t nvmlInitWithFlags(unsigned int flags) { (void)flags; return INIT_RESULT; }
nvmlReturn_t nvmlShutdown(void) { return OK; }

const char *nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case 0: return "Success";
    case 3: return "Not Supported";
    case 9: return "Driver Not Loaded";
    case 18: return "RM has detected an NVML/RM version mismatch.";
    default: return "Unknown Error";
    }
}

static nvmlReturn_t put(char *dst, unsigned int length, const char *src) {
    if (!dst || strlen(src) + 1 > length) return INSUFFICIENT_SIZE;
    strcpy(dst, src);
    return OK;
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *v, unsigned int n) { return put(v, n, "580.159.04"); }

#ifdef FAKE_NVML_GPU
static int the_gpu;

typedef struct {
    char busIdLegacy[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;

#define MIB (1024ULL * 1024ULL)

nvmlReturn_t nvmlSystemGetNVMLVersion(char *v, unsigned int n) { return put(v, n, "13.580.159.04"); }
nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v) { *v = 13000; return OK; }
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *n) { *n = 1; return OK; }

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d) {
    if (i != 0) return INVALID_ARGUMENT;
    *d = &the_gpu;
    return OK;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *s, unsigned int n) {
    (void)d;
    return put(s, n, "NVIDIA H100 80GB HBM3");
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *s, unsigned int n) {
    (void)d;
    return put(s, n, "GPU-8f2a1c3d-4455-6677-8899-aabbccddeeff");
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t *p) {
    (void)d;
    memset(p, 0, sizeof *p);
    strcpy(p->busIdLegacy, "0000:00:06.0");
    strcpy(p->busId, "00000000:00:06.0");
    p->bus = 0;
    p->device = 6;
    p->pciDeviceId = 0x233010de;
    return OK;
}

nvmlReturn_t nvmlDeviceGetSerial(nvmlDevice_t d, char *s, unsigned int n) {
    (void)d; (void)s; (void)n;
    return NOT_SUPPORTED;
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t d, int *major, int *minor) {
    (void)d;
    *major = 9;
    *minor = 0;
    return OK;
}

nvmlReturn_t nvmlDeviceGetArchitecture(nvmlDevice_t d, unsigned int *arch) {
    (void)d;
    *arch = 9; /* NVML_DEVICE_ARCH_HOPPER */
    return OK;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
    (void)d;
    m->total = 81559 * MIB;
    m->reserved = 0;
    m->used = 20390 * MIB;
    m->free = m->total - m->used;
    return OK;
}

nvmlReturn_t nvmlDeviceGetPersistenceMode(nvmlDevice_t d, int *mode) { (void)d; *mode = 1; return OK; }
nvmlReturn_t nvmlDeviceGetComputeMode(nvmlDevice_t d, int *mode) { (void)d; *mode = 3; /* exclusive process */ return OK; }

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int *current, unsigned int *pending) {
    (void)d;
    *current = 0;
    *pending = 0;
    return OK;
}

nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t d, int *current, int *pending) {
    (void)d;
    *current = 1;
    *pending = 1;
    return OK;
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t d, int type, int counter, unsigned long long *n) {
    (void)d; (void)type;
    *n = counter == 1 ? 2 : 0; /* aggregate 2, volatile 0 */
    return OK;
}

nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t d, int cause, unsigned int *n, unsigned long long *a) {
    (void)d; (void)cause; (void)n; (void)a;
    return NOT_SUPPORTED;
}

nvmlReturn_t nvmlDeviceGetRetiredPages_v2(nvmlDevice_t d, int cause, unsigned int *n, unsigned long long *a,
                                          unsigned long long *t) {
    (void)d; (void)cause; (void)n; (void)a; (void)t;
    return NOT_SUPPORTED;
}

nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t d, int *pending) {
    (void)d; (void)pending;
    return NOT_SUPPORTED;
}

nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t d, unsigned int *corr, unsigned int *unc,
                                       unsigned int *pending, unsigned int *failure) {
    (void)d;
    *corr = 0;
    *unc = 1;
    *pending = 0;
    *failure = 0;
    return OK;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t d, unsigned long long *r) {
    (void)d;
    *r = 0x1ULL | 0x4ULL; /* GPU idle, software power cap */
    return OK;
}

/* One compute process: this process itself, so its name can be read from /proc. */
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *count, nvmlProcessInfo_t *p) {
    (void)d;
    if (!p || *count < 1) {
        *count = 1;
        return INSUFFICIENT_SIZE;
    }
    memset(p, 0, sizeof *p);
    p->pid = (unsigned int)getpid();
    p->usedGpuMemory = 512 * MIB;
    *count = 1;
    return OK;
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t d, unsigned int *count, nvmlProcessInfo_t *p) {
    (void)d; (void)p;
    *count = 0;
    return OK;
}
#endif /* FAKE_NVML_GPU */
