// Kernels and host launchers of the GPU mailbox path (compiled by nvcc only).
#include <string>

#include "sage_cuda_mailbox/cuda.hpp"
#include "sage_cuda_mailbox/cuda_device.hpp"
#include "sage_cuda_mailbox/error.hpp"

namespace sage::mailbox
{

namespace
{

void check(cudaError_t err, const char * what)
{
  if (err != cudaSuccess) {
    throw MailboxError(Errc::Cuda, std::string(what) + ": " + cudaGetErrorString(err));
  }
}

template <class T>
T * dev(Segment & seg, T * host)
{
  return static_cast<T *>(seg.device_pointer(host));
}

detail::PbmView device_view_of(Pbm & pbm)
{
  Segment & seg = pbm.segment();
  if (!seg.register_with_gpu()) {
    throw MailboxError(Errc::CudaUnavailable, "CUDA unavailable: " + cuda_unavailable_reason());
  }
  detail::PbmView v = pbm.view();
  v.header = dev(seg, v.header);
  v.tokens = dev(seg, v.tokens);
  v.ctl = dev(seg, v.ctl);
  v.slots = dev(seg, v.slots);
  return v;
}

__global__ void pbm_push_kernel(
  detail::PbmView v, uint32_t pidx, const uint8_t * records, uint32_t n, uint32_t * status)
{
  const uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    status[i] = static_cast<uint32_t>(
      pbm_device_push(v, pidx, records + static_cast<uint64_t>(i) * v.record_size, v.record_size));
  }
}

// One thread: a consumer's records are read in ticket order.
__global__ void pbm_pop_kernel(
  detail::PbmView v, ConsumerEntry * entry, uint8_t * out, uint32_t max_records,
  uint32_t * lengths, uint32_t * count)
{
  if (blockIdx.x != 0 || threadIdx.x != 0) {
    return;
  }
  detail::PopCounters counters;
  uint32_t n = 0;
  while (n < max_records) {
    uint32_t len = 0;
    if (pbm_device_pop(v, entry, out + static_cast<uint64_t>(n) * v.record_size, &len, counters) !=
      PopStatus::Ok)
    {
      break;
    }
    lengths[n] = len;
    ++n;
  }
  detail::fetch_add_relaxed(&entry->delivered, counters.delivered);
  detail::fetch_add_relaxed(&entry->lost, counters.lost);
  detail::fetch_add_relaxed(&entry->torn, counters.torn);
  detail::fetch_add_relaxed(&entry->abandoned, counters.abandoned);
  *count = n;
}

// Per-channel sums of an 8-bit frame, read in place from mapped shared memory.
__global__ void channel_sums_kernel(
  const uint8_t * frame, uint32_t height, uint32_t width, uint32_t channels, uint32_t step,
  unsigned long long * sums)
{
  __shared__ unsigned long long local[4];
  if (threadIdx.x < 4) {
    local[threadIdx.x] = 0;
  }
  __syncthreads();
  const uint64_t pixels = static_cast<uint64_t>(height) * width;
  for (uint64_t p = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; p < pixels;
    p += static_cast<uint64_t>(gridDim.x) * blockDim.x)
  {
    const uint8_t * px = frame + (p / width) * step + (p % width) * channels;
    for (uint32_t c = 0; c < channels; ++c) {
      atomicAdd(&local[c], static_cast<unsigned long long>(px[c]));
    }
  }
  __syncthreads();
  if (threadIdx.x < channels) {
    atomicAdd(&sums[threadIdx.x], local[threadIdx.x]);
  }
}

}  // namespace

PbmGpuProducer::PbmGpuProducer(std::shared_ptr<Pbm> pbm)
: pbm_(std::move(pbm))
{
  view_ = device_view_of(*pbm_);
  host_ = std::make_unique<PbmProducer>(pbm_);
  detail::fetch_add32(&pbm_->segment().header()->device_producers, 1);
}

PbmGpuProducer::~PbmGpuProducer()
{
  detail::fetch_sub32(&pbm_->segment().header()->device_producers, 1);
}

void PbmGpuProducer::push_async(
  const void * d_records, uint32_t n, uint32_t * d_status, cudaStream_t stream)
{
  if (n == 0) {
    return;
  }
  const uint32_t threads = 128;
  pbm_push_kernel<<<(n + threads - 1) / threads, threads, 0, stream>>>(
    view_, host_->index(), static_cast<const uint8_t *>(d_records), n, d_status);
  check(cudaGetLastError(), "pbm_push_kernel launch");
}

PbmGpuConsumer::PbmGpuConsumer(std::shared_ptr<Pbm> pbm, bool from_oldest)
: pbm_(std::move(pbm))
{
  view_ = device_view_of(*pbm_);
  host_ = std::make_unique<PbmConsumer>(pbm_, from_oldest);
  d_entry_ = &view_.ctl->consumers[host_->index()];
}

PbmGpuConsumer::~PbmGpuConsumer() = default;

void PbmGpuConsumer::pop_async(
  void * d_out, uint32_t max_records, uint32_t * d_lengths, uint32_t * d_count,
  cudaStream_t stream)
{
  pbm_pop_kernel<<<1, 1, 0, stream>>>(
    view_, d_entry_, static_cast<uint8_t *>(d_out), max_records, d_lengths, d_count);
  check(cudaGetLastError(), "pbm_pop_kernel launch");
}

const uint8_t * lease_device_pointer(const FtmLease & lease)
{
  if (!lease.held()) {
    throw MailboxError(Errc::InvalidArgument, "the lease was released");
  }
  Segment & seg = lease.ftm()->segment();
  if (!seg.register_with_gpu()) {
    throw MailboxError(Errc::CudaUnavailable, "CUDA unavailable: " + cuda_unavailable_reason());
  }
  return static_cast<const uint8_t *>(seg.device_pointer(lease.data()));
}

void frame_channel_sums_async(
  const FtmLease & lease, unsigned long long * d_sums, cudaStream_t stream)
{
  const TensorMeta & m = lease.meta();
  const uint32_t channels = m.ndim == 3 ? static_cast<uint32_t>(m.shape[2]) : 1;
  if (m.dtype != static_cast<uint32_t>(DType::U8) || m.ndim < 2 || channels > 4) {
    throw MailboxError(Errc::WrongType, "channel sums need an 8-bit frame with 1..4 channels");
  }
  const uint8_t * frame = lease_device_pointer(lease);
  check(cudaMemsetAsync(d_sums, 0, channels * sizeof(unsigned long long), stream), "memset");
  const auto height = static_cast<uint32_t>(m.shape[0]);
  const auto width = static_cast<uint32_t>(m.shape[1]);
  const auto step = static_cast<uint32_t>(m.strides[0]);
  channel_sums_kernel<<<64, 256, 0, stream>>>(frame, height, width, channels, step, d_sums);
  check(cudaGetLastError(), "channel_sums_kernel launch");
}

}  // namespace sage::mailbox
