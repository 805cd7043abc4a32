// Device side of the mailbox (library sage_cuda_mailbox_cuda, built with nvcc).
//
// GPU producers and consumers use the same PBM protocol as host code (detail/pbm_core.hpp) on a
// segment registered with the GPU (mapped pinned memory). A GPU producer is registered under its
// host process, so a dead process's half-written slots are recovered by host consumers exactly
// as for host producers. Kernels read FTM frames in place through a lease's device pointer.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>

#include "sage_cuda_mailbox/ftm.hpp"
#include "sage_cuda_mailbox/pbm.hpp"

#if defined(__CUDACC__)
#include "sage_cuda_mailbox/detail/pbm_device.cuh"
#endif

namespace sage::mailbox
{

/// A GPU producer: registers the segment with the GPU and holds a producer index.
class PbmGpuProducer
{
public:
  /// Throws MailboxError(CudaUnavailable) where no GPU exists: use PbmProducer there.
  explicit PbmGpuProducer(std::shared_ptr<Pbm> pbm);
  ~PbmGpuProducer();
  PbmGpuProducer(const PbmGpuProducer &) = delete;
  PbmGpuProducer & operator=(const PbmGpuProducer &) = delete;

  /// Device addresses of the segment, for user kernels calling pbm_device_push().
  const detail::PbmView & device_view() const noexcept {return view_;}
  uint32_t index() const noexcept {return host_->index();}

  /// Push `n` records of record_size bytes from device memory, one thread per record.
  /// The PushStatus of each record lands in d_status[i]. Nothing blocks: Full/Busy are reported.
  void push_async(const void * d_records, uint32_t n, uint32_t * d_status, cudaStream_t stream);

private:
  std::shared_ptr<Pbm> pbm_;
  std::unique_ptr<PbmProducer> host_;
  detail::PbmView view_{};
};

/// A GPU consumer: a registered consumer whose cursor is advanced by kernels.
class PbmGpuConsumer
{
public:
  explicit PbmGpuConsumer(std::shared_ptr<Pbm> pbm, bool from_oldest = false);
  ~PbmGpuConsumer();
  PbmGpuConsumer(const PbmGpuConsumer &) = delete;
  PbmGpuConsumer & operator=(const PbmGpuConsumer &) = delete;

  /// Pop up to `max_records` records into d_out (max_records * record_size bytes), their
  /// lengths into d_lengths, and the number popped into *d_count.
  void pop_async(
    void * d_out, uint32_t max_records, uint32_t * d_lengths, uint32_t * d_count,
    cudaStream_t stream);

private:
  std::shared_ptr<Pbm> pbm_;
  std::unique_ptr<PbmConsumer> host_;
  detail::PbmView view_{};
  ConsumerEntry * d_entry_{nullptr};
};

/// Device pointer of a leased FTM tensor (registers the segment with the GPU on first use).
/// Throws MailboxError(CudaUnavailable) where no GPU exists.
const uint8_t * lease_device_pointer(const FtmLease & lease);

/// Sum every channel of an 8-bit frame held in an FTM lease, reading it in place on the GPU.
/// d_sums receives `channels` counters (zeroed by this call).
void frame_channel_sums_async(
  const FtmLease & lease, unsigned long long * d_sums, cudaStream_t stream);

}  // namespace sage::mailbox
