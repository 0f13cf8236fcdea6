// PegaFlow copy kernels: batched copies of byte runs described by a device-visible descriptor list.
//
// The node loads the PTX built from this file with cuModuleLoadData (the build needs no CUDA toolkit). Regenerate
// copy_kernels.ptx beside it, on a machine with the toolkit, with exactly:
//
//   nvcc -ptx -arch=compute_80 -O3 -o copy_kernels.ptx copy_kernels.cu
//
// (committed PTX: nvcc 13.0 on the project's H100 machine; PTX ISA 9.0, so a driver of CUDA 13.0 or newer JITs it;
// an older driver makes the engine fall back to DMA copies and say why).
//
// One descriptor (struct Run, 24 bytes) is one run: source address, destination address, length in bytes. The
// addresses are device-visible: GPU memory (a CUDA IPC mapping) or mapped pinned host memory
// (cuMemHostGetDevicePointer), so the same kernel gathers (GPU blocks -> pinned pool: the SMs write over PCIe),
// scatters (pinned pool -> GPU blocks: the SMs read over PCIe) and copies inside the GPU (staging buffer <-> blocks).
//
// Work split: a persistent-ish grid (a few CTAs per SM) walks the runs with a grid stride; inside a run the CTA's
// threads move 16-byte vectors, UNROLL independent loads in flight per thread before the first store, so a warp's
// accesses are 512 contiguous bytes (coalesced) and a 512-thread CTA keeps 64 KiB of reads outstanding. Runs whose
// source and destination differ in alignment mod 16 fall back to a byte loop (never the case for KV blocks).
#include <stdint.h>

struct Run {
  uint64_t src;
  uint64_t dst;
  uint64_t len;
};

#define UNROLL 8

template <bool kStreaming>
__device__ __forceinline__ int4 load16(const int4* p) {
  return kStreaming ? __ldcs(p) : __ldcg(p);
}

template <bool kStreaming>
__device__ __forceinline__ void store16(int4* p, int4 v) {
  if (kStreaming) {
    __stcs(p, v);
  } else {
    __stcg(p, v);
  }
}

template <bool kStreaming>
__device__ __forceinline__ void copy_run(const char* src, char* dst, uint64_t len) {
  const uint64_t tid = threadIdx.x;
  const uint64_t stride = blockDim.x;
  if ((((uintptr_t)src ^ (uintptr_t)dst) & 15) != 0) {
    for (uint64_t i = tid; i < len; i += stride) {
      dst[i] = src[i];
    }
    return;
  }
  // Head bytes up to the first 16-byte boundary (same count for src and dst).
  uint64_t head = (16 - ((uintptr_t)src & 15)) & 15;
  if (head > len) {
    head = len;
  }
  if (tid < head) {
    dst[tid] = src[tid];
  }
  const int4* s = reinterpret_cast<const int4*>(src + head);
  int4* d = reinterpret_cast<int4*>(dst + head);
  const uint64_t n = (len - head) >> 4;
  uint64_t i = tid;
  for (; i + (UNROLL - 1) * stride < n; i += UNROLL * stride) {
    int4 v[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; u++) {
      v[u] = load16<kStreaming>(s + i + u * stride);
    }
#pragma unroll
    for (int u = 0; u < UNROLL; u++) {
      store16<kStreaming>(d + i + u * stride, v[u]);
    }
  }
  for (; i < n; i += stride) {
    store16<kStreaming>(d + i, load16<kStreaming>(s + i));
  }
  // Tail bytes after the last whole vector.
  const uint64_t done = head + (n << 4);
  if (tid < len - done) {
    dst[done + tid] = src[done + tid];
  }
}

template <bool kStreaming>
__device__ __forceinline__ void copy_runs(const Run* __restrict__ runs, uint32_t count) {
  for (uint32_t r = blockIdx.x; r < count; r += gridDim.x) {
    const Run run = runs[r];
    copy_run<kStreaming>(reinterpret_cast<const char*>(run.src), reinterpret_cast<char*>(run.dst), run.len);
  }
}

// GPU blocks -> pinned pool (SMs write host memory over PCIe). Streaming hints: nothing is read twice.
extern "C" __global__ void __launch_bounds__(512) pegaflow_gather(const Run* __restrict__ runs, uint32_t count) {
  copy_runs<true>(runs, count);
}

// Pinned pool -> GPU blocks (SMs read host memory over PCIe).
extern "C" __global__ void __launch_bounds__(512) pegaflow_scatter(const Run* __restrict__ runs, uint32_t count) {
  copy_runs<true>(runs, count);
}

// Inside the GPU (staging buffer <-> blocks): cache-global hints keep L2 for the neighbouring DMA.
extern "C" __global__ void __launch_bounds__(512) pegaflow_copy_device(const Run* __restrict__ runs, uint32_t count) {
  copy_runs<false>(runs, count);
}
