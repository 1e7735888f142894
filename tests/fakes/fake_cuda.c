/*
 * A stand-in libcuda.so.1 for tests on machines without an NVIDIA driver.
 *
 * Build: cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o DIR/libcuda.so.1 fake_cuda.c [-DMODE]
 *
 * Modes (one at a time):
 *   (none)               cuInit returns CUDA_ERROR_NO_DEVICE (100): driver present, no GPU.
 *   FAKE_CUDA_INIT=N     cuInit returns N, e.g. 35 = CUDA_ERROR_INSUFFICIENT_DRIVER (a code
 *                        cudarc's CUDA 13.0 result enum does not list).
 *   FAKE_CUDA_ONLY_INIT  exports cuInit (returning 100) and nothing else: no version, no error
 *                        names, no error strings. Formatting an error must not need them.
 *   FAKE_CUDA_HANG       cuInit never returns.
 *   FAKE_CUDA_SEGV       cuInit dereferences a null pointer.
 *   FAKE_CUDA_DEVICE     one device that answers every query; contexts cannot be created
 *                        (cuDevicePrimaryCtxRetain returns CUDA_ERROR_OUT_OF_MEMORY).
 */
#include <string.h>
#include <unistd.h>

typedef int CUresult;
typedef int CUdevice;

#if defined(FAKE_CUDA_INIT)
#define INIT_RESULT FAKE_CUDA_INIT
#elif defined(FAKE_CUDA_DEVICE)
#define INIT_RESULT 0
#else
#define INIT_RESULT 100
#endif

CUresult cuInit(unsigned int flags) {
    (void)flags;
#if defined(FAKE_CUDA_HANG)
    for (;;) pause();
#elif defined(FAKE_CUDA_SEGV)
    *(volatile int *)0 = 1;
#endif
    return INIT_RESULT;
}

#ifndef FAKE_CUDA_ONLY_INIT
CUresult cuDriverGetVersion(int *v) { *v = 12080; return 0; }

CUresult cuGetErrorName(CUresult e, const char **s) {
    switch (e) {
    case 0: *s = "CUDA_SUCCESS"; return 0;
    case 2: *s = "CUDA_ERROR_OUT_OF_MEMORY"; return 0;
    case 35: *s = "CUDA_ERROR_INSUFFICIENT_DRIVER"; return 0;
    case 100: *s = "CUDA_ERROR_NO_DEVICE"; return 0;
    default: *s = 0; return 1;
    }
}

CUresult cuGetErrorString(CUresult e, const char **s) {
    switch (e) {
    case 0: *s = "no error"; return 0;
    case 2: *s = "out of memory"; return 0;
    case 35: *s = "CUDA driver version is insufficient for CUDA runtime version"; return 0;
    case 100: *s = "no CUDA-capable device is detected"; return 0;
    default: *s = 0; return 1;
    }
}

#ifdef FAKE_CUDA_DEVICE
typedef struct { char bytes[16]; } CUuuid;

CUresult cuDeviceGetCount(int *n) { *n = 1; return 0; }
CUresult cuDeviceGet(CUdevice *d, int ordinal) { if (ordinal != 0) return 101; *d = 0; return 0; }

CUresult cuDeviceGetName(char *name, int len, CUdevice d) {
    (void)d;
    strncpy(name, "NVIDIA H100 80GB HBM3", (size_t)len);
    name[len - 1] = 0;
    return 0;
}

CUresult cuDeviceGetUuid_v2(CUuuid *u, CUdevice d) {
    static const unsigned char id[16] = {0x8f, 0x2a, 0x1c, 0x3d, 0x44, 0x55, 0x66, 0x77,
                                         0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    (void)d;
    memcpy(u->bytes, id, 16);
    return 0;
}

CUresult cuDeviceGetPCIBusId(char *s, int len, CUdevice d) {
    (void)d;
    strncpy(s, "0000:00:06.0", (size_t)len);
    return 0;
}

CUresult cuDeviceGetAttribute(int *v, int attribute, CUdevice d) {
    (void)d;
    switch (attribute) {
    case 75: *v = 9; return 0; /* compute capability major */
    case 76: *v = 0; return 0; /* minor */
    default: *v = 0; return 0;
    }
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice d) {
    (void)d;
    *bytes = (size_t)81559 * 1024 * 1024;
    return 0;
}

CUresult cuDevicePrimaryCtxRetain(void **ctx, CUdevice d) { (void)ctx; (void)d; return 2; }
#else
CUresult cuDeviceGetCount(int *n) { *n = 0; return 0; }
#endif /* FAKE_CUDA_DEVICE */
#endif /* FAKE_CUDA_ONLY_INIT */
