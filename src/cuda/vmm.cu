/* vmm.cu -- memory that grows (be->reserve, commit, decommit, release) for the KV caches:
 * CUDA virtual memory. A range of addresses is reserved (cuMemAddressReserve) and device
 * memory is mapped into it a granule at a time as its sequence grows (cuMemCreate, cuMemMap,
 * cuMemSetAccess), unmapped and released when it shrinks, so a cache costs what its tokens
 * take and its address (which kernels and recorded graphs hold) never moves. The driver's
 * functions come through the runtime (cudaGetDriverEntryPointByVersion): nothing more is
 * linked. Where the driver or device lacks them, the backend has no reserve and sessions
 * allocate their whole cache at once. Opt-in (GLMV_CUDA_VMM=1) until it has run on a GPU: it
 * was written and compiled in a session that was lent none after it. */
#include <cuda.h>

#include "cuda/cuda_impl.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef CUresult (*fn_reserve)(CUdeviceptr *, size_t, size_t, CUdeviceptr, unsigned long long);
typedef CUresult (*fn_addr_free)(CUdeviceptr, size_t);
typedef CUresult (*fn_create)(CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *,
                              unsigned long long);
typedef CUresult (*fn_release)(CUmemGenericAllocationHandle);
typedef CUresult (*fn_map)(CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle, unsigned long long);
typedef CUresult (*fn_unmap)(CUdeviceptr, size_t);
typedef CUresult (*fn_access)(CUdeviceptr, size_t, const CUmemAccessDesc *, size_t);
typedef CUresult (*fn_granularity)(size_t *, const CUmemAllocationProp *, CUmemAllocationGranularity_flags);
typedef CUresult (*fn_attr)(int *, CUdevice_attribute, CUdevice);

struct vm_range {
    CUdeviceptr base;
    size_t size, mapped;                  /* reserved; mapped from base, whole granules */
    CUmemGenericAllocationHandle *h;      /* one per mapped granule */
    vm_range *next;
};

struct cuda_vm {
    pthread_mutex_t mu;                   /* the ranges: sessions are made and freed on any thread */
    fn_reserve reserve;
    fn_addr_free addr_free;
    fn_create create;
    fn_release release;
    fn_map map;
    fn_unmap unmap;
    fn_access access;
    CUmemAllocationProp prop;
    CUmemAccessDesc desc;
    size_t granule;
    vm_range *ranges;
};

static void *entry(const char *name) {
    void *fn = NULL;
    cudaDriverEntryPointQueryResult q;
#if CUDART_VERSION >= 12050
    cudaError_t e = cudaGetDriverEntryPointByVersion(name, &fn, 12000, cudaEnableDefault, &q);
#else
    cudaError_t e = cudaGetDriverEntryPoint(name, &fn, cudaEnableDefault, &q);
#endif
    if (e != cudaSuccess || q != cudaDriverEntryPointSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return fn;
}

static vm_range *find(cuda_vm *vm, void *p) {
    pthread_mutex_lock(&vm->mu);
    vm_range *r = vm->ranges;
    while (r && r->base != (CUdeviceptr)p) r = r->next;
    pthread_mutex_unlock(&vm->mu);
    return r;
}

static void *vm_reserve(glmv_backend *be, size_t bytes, size_t *granule) {
    cuda_vm *vm = ctx_of(be)->vm;
    vm_range *r = (vm_range *)calloc(1, sizeof *r);
    if (!r) return NULL;
    r->size = (bytes + vm->granule - 1) / vm->granule * vm->granule;
    if (r->size == 0) r->size = vm->granule;
    r->h = (CUmemGenericAllocationHandle *)calloc(r->size / vm->granule, sizeof *r->h);
    if (!r->h || vm->reserve(&r->base, r->size, 0, 0, 0) != CUDA_SUCCESS) {
        free(r->h);
        free(r);
        return NULL;
    }
    pthread_mutex_lock(&vm->mu);
    r->next = vm->ranges;
    vm->ranges = r;
    pthread_mutex_unlock(&vm->mu);
    *granule = vm->granule;
    return (void *)r->base;
}

/* unmap and release the granules past `keep` bytes (after the stream drains: queued kernels may
 * still read them) */
static void vm_trim(cuda_ctx *c, vm_range *r, size_t keep) {
    cuda_vm *vm = c->vm;
    if (keep >= r->mapped) return;
    cudaStreamSynchronize(c->stream);
    for (size_t off = keep; off < r->mapped; off += vm->granule) {
        vm->unmap(r->base + off, vm->granule);
        vm->release(r->h[off / vm->granule]);
        c->allocated -= (int64_t)vm->granule;
    }
    r->mapped = keep;
}

static int vm_commit(glmv_backend *be, void *p, size_t bytes) {
    cuda_ctx *c = ctx_of(be);
    cuda_vm *vm = c->vm;
    vm_range *r = find(vm, p);
    if (!r || bytes > r->size) return -1;
    size_t was = r->mapped;
    while (r->mapped < bytes) {
        CUmemGenericAllocationHandle h;
        CUdeviceptr at = r->base + r->mapped;
        if (vm->create(&h, vm->granule, &vm->prop, 0) != CUDA_SUCCESS) break;
        if (vm->map(at, vm->granule, 0, h, 0) != CUDA_SUCCESS) {
            vm->release(h);
            break;
        }
        if (vm->access(at, vm->granule, &vm->desc, 1) != CUDA_SUCCESS) {
            vm->unmap(at, vm->granule);
            vm->release(h);
            break;
        }
        r->h[r->mapped / vm->granule] = h;
        r->mapped += vm->granule;
        c->allocated += (int64_t)vm->granule;
    }
    if (r->mapped >= bytes) return 0;
    vm_trim(c, r, was); /* out of device memory: as it was */
    return -1;
}

static void vm_decommit(glmv_backend *be, void *p, size_t keep) {
    cuda_ctx *c = ctx_of(be);
    vm_range *r = find(c->vm, p);
    if (r) vm_trim(c, r, (keep + c->vm->granule - 1) / c->vm->granule * c->vm->granule);
}

static void vm_free(glmv_backend *be, void *p) {
    cuda_ctx *c = ctx_of(be);
    cuda_vm *vm = c->vm;
    vm_range *r = NULL;
    pthread_mutex_lock(&vm->mu);
    for (vm_range **pr = &vm->ranges; *pr; pr = &(*pr)->next)
        if ((*pr)->base == (CUdeviceptr)p) {
            r = *pr;
            *pr = r->next;
            break;
        }
    pthread_mutex_unlock(&vm->mu);
    if (!r) return;
    vm_trim(c, r, 0);
    vm->addr_free(r->base, r->size);
    free(r->h);
    free(r);
}

void cuda_vm_init(glmv_backend *be) {
    cuda_ctx *c = ctx_of(be);
    const char *on = getenv("GLMV_CUDA_VMM");
    if (!on || strcmp(on, "1")) return; /* caches allocated whole */
    fn_attr attr = (fn_attr)entry("cuDeviceGetAttribute");
    fn_granularity gran = (fn_granularity)entry("cuMemGetAllocationGranularity");
    int ok = 0;
    if (!attr || attr(&ok, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, (CUdevice)c->dev) != CUDA_SUCCESS ||
        !ok || !gran)
        return;
    cuda_vm *vm = (cuda_vm *)calloc(1, sizeof *vm);
    if (!vm) return;
    vm->reserve = (fn_reserve)entry("cuMemAddressReserve");
    vm->addr_free = (fn_addr_free)entry("cuMemAddressFree");
    vm->create = (fn_create)entry("cuMemCreate");
    vm->release = (fn_release)entry("cuMemRelease");
    vm->map = (fn_map)entry("cuMemMap");
    vm->unmap = (fn_unmap)entry("cuMemUnmap");
    vm->access = (fn_access)entry("cuMemSetAccess");
    vm->prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    vm->prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    vm->prop.location.id = c->dev;
    vm->desc.location = vm->prop.location;
    vm->desc.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    if (!vm->reserve || !vm->addr_free || !vm->create || !vm->release || !vm->map || !vm->unmap || !vm->access ||
        gran(&vm->granule, &vm->prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM) != CUDA_SUCCESS || vm->granule == 0) {
        free(vm);
        return;
    }
    pthread_mutex_init(&vm->mu, NULL);
    c->vm = vm;
    be->reserve = vm_reserve;
    be->commit = vm_commit;
    be->decommit = vm_decommit;
    be->release = vm_free;
}

void cuda_vm_destroy(cuda_ctx *c) {
    if (!c->vm) return;
    while (c->vm->ranges) {
        vm_range *r = c->vm->ranges;
        vm_trim(c, r, 0);
        c->vm->addr_free(r->base, r->size);
        c->vm->ranges = r->next;
        free(r->h);
        free(r);
    }
    pthread_mutex_destroy(&c->vm->mu);
    free(c->vm);
    c->vm = NULL;
}
