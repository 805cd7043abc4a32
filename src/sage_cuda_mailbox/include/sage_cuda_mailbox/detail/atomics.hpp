// Atomic helpers on plain integer fields of a shared-memory layout, usable from host and device.
//
// The layout is plain POD (so it is identical for every process and for the GPU); every access
// to a field that more than one party writes goes through these helpers. The host uses the
// GCC/Clang __atomic builtins; device code (nvcc) uses system-scope cuda::atomic_ref, so a
// kernel and a host process see each other's writes to mapped pinned memory.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#include <cuda/atomic>
#define SAGE_HD __host__ __device__
#else
#define SAGE_HD
#endif

namespace sage::mailbox::detail
{

#if defined(__CUDA_ARCH__)
template <class T>
using SysRef = cuda::atomic_ref<T, cuda::thread_scope_system>;

SAGE_HD inline unsigned long long * dev64(const uint64_t * p)
{
  return reinterpret_cast<unsigned long long *>(const_cast<uint64_t *>(p));
}
SAGE_HD inline unsigned int * dev32(const uint32_t * p)
{
  return reinterpret_cast<unsigned int *>(const_cast<uint32_t *>(p));
}
#endif

SAGE_HD inline uint64_t load_acquire(const uint64_t * p)
{
#if defined(__CUDA_ARCH__)
  return SysRef<unsigned long long>(*dev64(p)).load(cuda::memory_order_acquire);
#else
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
#endif
}

SAGE_HD inline uint64_t load_relaxed(const uint64_t * p)
{
#if defined(__CUDA_ARCH__)
  return SysRef<unsigned long long>(*dev64(p)).load(cuda::memory_order_relaxed);
#else
  return __atomic_load_n(p, __ATOMIC_RELAXED);
#endif
}

SAGE_HD inline uint64_t load_seq_cst(const uint64_t * p)
{
#if defined(__CUDA_ARCH__)
  return SysRef<unsigned long long>(*dev64(p)).load(cuda::memory_order_seq_cst);
#else
  return __atomic_load_n(p, __ATOMIC_SEQ_CST);
#endif
}

SAGE_HD inline void store_release(uint64_t * p, uint64_t v)
{
#if defined(__CUDA_ARCH__)
  SysRef<unsigned long long>(*dev64(p)).store(v, cuda::memory_order_release);
#else
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
#endif
}

SAGE_HD inline void store_relaxed(uint64_t * p, uint64_t v)
{
#if defined(__CUDA_ARCH__)
  SysRef<unsigned long long>(*dev64(p)).store(v, cuda::memory_order_relaxed);
#else
  __atomic_store_n(p, v, __ATOMIC_RELAXED);
#endif
}

SAGE_HD inline void store_seq_cst(uint64_t * p, uint64_t v)
{
#if defined(__CUDA_ARCH__)
  SysRef<unsigned long long>(*dev64(p)).store(v, cuda::memory_order_seq_cst);
#else
  __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
#endif
}

/// Strong compare-and-swap (acq_rel on success, acquire on failure); updates `expected`.
SAGE_HD inline bool cas(uint64_t * p, uint64_t & expected, uint64_t desired)
{
#if defined(__CUDA_ARCH__)
  unsigned long long e = expected;
  const bool ok = SysRef<unsigned long long>(*dev64(p)).compare_exchange_strong(
    e, desired, cuda::memory_order_acq_rel, cuda::memory_order_acquire);
  expected = e;
  return ok;
#else
  return __atomic_compare_exchange_n(
    p, &expected, desired, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
#endif
}

/// Strong compare-and-swap with sequential consistency (for Dekker-style hand-shakes).
SAGE_HD inline bool cas_seq_cst(uint64_t * p, uint64_t & expected, uint64_t desired)
{
#if defined(__CUDA_ARCH__)
  unsigned long long e = expected;
  const bool ok = SysRef<unsigned long long>(*dev64(p)).compare_exchange_strong(
    e, desired, cuda::memory_order_seq_cst, cuda::memory_order_seq_cst);
  expected = e;
  return ok;
#else
  return __atomic_compare_exchange_n(
    p, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
#endif
}

SAGE_HD inline uint64_t fetch_add(uint64_t * p, uint64_t v)
{
#if defined(__CUDA_ARCH__)
  return SysRef<unsigned long long>(*dev64(p)).fetch_add(v, cuda::memory_order_acq_rel);
#else
  return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL);
#endif
}

SAGE_HD inline uint64_t fetch_add_relaxed(uint64_t * p, uint64_t v)
{
#if defined(__CUDA_ARCH__)
  return SysRef<unsigned long long>(*dev64(p)).fetch_add(v, cuda::memory_order_relaxed);
#else
  return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
#endif
}

SAGE_HD inline uint32_t load32_relaxed(const uint32_t * p)
{
#if defined(__CUDA_ARCH__)
  return SysRef<unsigned int>(*dev32(p)).load(cuda::memory_order_relaxed);
#else
  return __atomic_load_n(p, __ATOMIC_RELAXED);
#endif
}

SAGE_HD inline uint32_t load32_acquire(const uint32_t * p)
{
#if defined(__CUDA_ARCH__)
  return SysRef<unsigned int>(*dev32(p)).load(cuda::memory_order_acquire);
#else
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
#endif
}

SAGE_HD inline void store32_release(uint32_t * p, uint32_t v)
{
#if defined(__CUDA_ARCH__)
  SysRef<unsigned int>(*dev32(p)).store(v, cuda::memory_order_release);
#else
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
#endif
}

SAGE_HD inline uint32_t fetch_add32(uint32_t * p, uint32_t v)
{
#if defined(__CUDA_ARCH__)
  return SysRef<unsigned int>(*dev32(p)).fetch_add(v, cuda::memory_order_seq_cst);
#else
  return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
#endif
}

SAGE_HD inline uint32_t fetch_sub32(uint32_t * p, uint32_t v)
{
#if defined(__CUDA_ARCH__)
  return SysRef<unsigned int>(*dev32(p)).fetch_sub(v, cuda::memory_order_seq_cst);
#else
  return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST);
#endif
}

SAGE_HD inline void fence_seq_cst()
{
#if defined(__CUDA_ARCH__)
  cuda::atomic_thread_fence(cuda::memory_order_seq_cst, cuda::thread_scope_system);
#else
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

SAGE_HD inline void fence_acquire()
{
#if defined(__CUDA_ARCH__)
  cuda::atomic_thread_fence(cuda::memory_order_acquire, cuda::thread_scope_system);
#else
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
#endif
}

/// Byte copy that works on both sides (memcpy is not available in every device context).
SAGE_HD inline void copy_bytes(void * dst, const void * src, uint64_t n)
{
#if defined(__CUDA_ARCH__)
  auto * d = static_cast<unsigned char *>(dst);
  const auto * s = static_cast<const unsigned char *>(src);
  for (uint64_t i = 0; i < n; ++i) {
    d[i] = s[i];
  }
#else
  __builtin_memcpy(dst, src, n);
#endif
}

}  // namespace sage::mailbox::detail
