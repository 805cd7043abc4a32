// Device-side PBM push/pop for user kernels (header-only: no relocatable device code needed).
#pragma once

#include "sage_cuda_mailbox/detail/pbm_core.hpp"

namespace sage::mailbox
{
namespace detail
{

/// Hooks of the protocol on the GPU: no process liveness checks (host consumers and producers
/// recover slots of dead processes); the tail is the minimum registered consumer cursor.
struct DeviceHooks
{
  const PbmView * view;
  __device__ bool producer_alive(uint32_t) const {return true;}
  __device__ uint64_t compute_tail(uint64_t head) const {return pbm_min_cursor(*view, head);}
  __device__ void on_abandon() const {}
};

}  // namespace detail

/// Push one record from device code. Same outcomes as PbmProducer::try_push.
__device__ inline PushStatus pbm_device_push(
  const detail::PbmView & v, uint32_t pidx, const void * record, uint32_t len)
{
  if (len == 0 || len > v.record_size) {
    return PushStatus::Busy;  // refused; host code validates sizes before launching
  }
  detail::DeviceHooks hooks{&v};
  uint64_t ticket = 0;
  const PushStatus st = detail::pbm_claim(v, pidx, hooks, &ticket);
  if (st != PushStatus::Ok) {
    return st;
  }
  detail::copy_bytes(v.payload(v.slot(ticket)), record, len);
  return detail::pbm_commit(v, ticket, pidx, len) ? PushStatus::Ok : PushStatus::Abandoned;
}

/// Pop one record for the consumer `entry` from device code (one thread per consumer).
__device__ inline PopStatus pbm_device_pop(
  const detail::PbmView & v, ConsumerEntry * entry, void * out, uint32_t * len,
  detail::PopCounters & counters)
{
  detail::DeviceHooks hooks{&v};
  uint64_t cursor = detail::load_acquire(&entry->cursor);
  return detail::pbm_pop(v, entry, &cursor, out, len, counters, hooks);
}

}  // namespace sage::mailbox
