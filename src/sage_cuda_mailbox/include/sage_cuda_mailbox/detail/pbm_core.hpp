// The PBM protocol, shared by host code and CUDA kernels (one implementation, two callers).
//
// Slots form a ring of `capacity` (a power of two). Ticket t lives in slot t & mask. A slot's
// `seq` word packs ((ticket + 1) << 8) | (producer index << 2) | state, state in
// {WRITING, COMMITTED, ABANDONED}; 0 means never written. Tickets are 56 bits (no wrap in
// practice), so a seq word is never reused and compare-and-swap on it has no ABA problem.
//
// Producer: read head t; claim slot t by CAS of its seq word from the previous round's value to
// WRITING(t, me); then help head forward (CAS t -> t+1, others help if we stall); write the
// record; CAS WRITING -> COMMITTED. Ownership is decided by the slot CAS, so a producer killed at
// any point leaves either an unclaimed ticket (nobody waits for it) or a WRITING slot naming a
// dead producer, which consumers (or the next producer of that slot) mark ABANDONED.
//
// Reject policy: a producer may claim ticket t only when every registered consumer's cursor is
// above t - capacity (it has read the record the claim overwrites); otherwise push returns Full.
// Overwrite policy: producers never look at consumers; a consumer seeing a newer ticket in its
// slot was lapped and skips forward; a consumer re-reads seq after copying (seqlock) and discards
// the copy if the slot changed during it (a torn read is never returned).
#pragma once

#include <cstdint>

#include "sage_cuda_mailbox/detail/atomics.hpp"
#include "sage_cuda_mailbox/layout.hpp"

namespace sage::mailbox
{

enum class PushStatus : uint32_t {
  Ok = 0,
  Full = 1,       ///< reject policy: the slowest consumer has not read the oldest record yet
  Busy = 2,       ///< the slot to reuse is still being written by a live producer
  Abandoned = 3,  ///< our claim was taken over (we were judged dead); the record was dropped
};

enum class PopStatus : uint32_t {
  Ok = 0,
  Empty = 1,      ///< nothing committed at the cursor yet
};

namespace detail
{

constexpr uint64_t kWriting = 1;
constexpr uint64_t kCommitted = 2;
constexpr uint64_t kAbandoned = 3;

SAGE_HD constexpr uint64_t pbm_pack(uint64_t ticket, uint32_t pidx, uint64_t state)
{
  return ((ticket + 1) << 8) | (static_cast<uint64_t>(pidx & 63u) << 2) | state;
}
SAGE_HD constexpr uint64_t pbm_ticket(uint64_t s) {return (s >> 8) - 1;}
SAGE_HD constexpr uint32_t pbm_pidx(uint64_t s) {return static_cast<uint32_t>((s >> 2) & 63u);}
SAGE_HD constexpr uint64_t pbm_state(uint64_t s) {return s & 3u;}

/// Raw pointers into a mapped PBM segment (host or device addresses).
struct PbmView
{
  SegmentHeader * header;
  uint64_t * tokens;
  PbmControl * ctl;
  uint8_t * slots;
  uint64_t stride;
  uint64_t capacity;
  uint64_t mask;
  uint32_t record_size;
  uint32_t policy;

  SAGE_HD PbmSlotHeader * slot(uint64_t ticket) const
  {
    return reinterpret_cast<PbmSlotHeader *>(slots + (ticket & mask) * stride);
  }
  SAGE_HD uint8_t * payload(PbmSlotHeader * s) const
  {
    return reinterpret_cast<uint8_t *>(s) + sizeof(PbmSlotHeader);
  }
};

/// Minimum cursor of the registered consumers, or `fallback` when there are none.
/// Host hooks may reap dead consumers here; the device version only reads.
SAGE_HD inline uint64_t pbm_min_cursor(const PbmView & v, uint64_t fallback)
{
  uint64_t m = fallback;
  for (uint32_t i = 0; i < kMaxConsumers; ++i) {
    ConsumerEntry & e = v.ctl->consumers[i];
    if (load_acquire(&e.token) == 0) {
      continue;
    }
    const uint64_t c = load_acquire(&e.cursor);
    if (c < m) {
      m = c;
    }
  }
  return m;
}

/// Raise tail_hint to at least `tail` (it only ever grows: cursors only grow).
SAGE_HD inline void pbm_raise_tail(const PbmView & v, uint64_t tail)
{
  uint64_t cur = load_relaxed(&v.ctl->tail_hint.value);
  while (cur < tail && !cas(&v.ctl->tail_hint.value, cur, tail)) {
  }
}

/// Claim the next ticket for producer `pidx`. Hooks: producer_alive(pidx) -> bool,
/// compute_tail(t) -> uint64_t (lower bound of consumer cursors), on_abandon().
template <class Hooks>
SAGE_HD PushStatus pbm_claim(const PbmView & v, uint32_t pidx, Hooks & hooks, uint64_t * ticket)
{
  for (;;) {
    const uint64_t t = load_acquire(&v.ctl->head.value);
    PbmSlotHeader * sl = v.slot(t);
    uint64_t s = load_acquire(&sl->seq);
    if (s != 0 && pbm_ticket(s) >= t) {
      // Someone claimed t but has not advanced head yet: help, then retry.
      uint64_t expected = t;
      cas(&v.ctl->head.value, expected, t + 1);
      continue;
    }
    if (s != 0 && pbm_state(s) == kWriting) {
      // The previous round of this slot is still being written.
      if (hooks.producer_alive(pbm_pidx(s))) {
        return PushStatus::Busy;
      }
      uint64_t expected = s;
      if (cas(&sl->seq, expected, pbm_pack(pbm_ticket(s), pbm_pidx(s), kAbandoned))) {
        hooks.on_abandon();
      }
      continue;
    }
    if (v.policy == static_cast<uint32_t>(Policy::Reject)) {
      uint64_t tail = load_acquire(&v.ctl->tail_hint.value);
      if (t >= tail + v.capacity) {
        tail = hooks.compute_tail(t);
        pbm_raise_tail(v, tail);
        if (t >= tail + v.capacity) {
          return PushStatus::Full;
        }
      }
    }
    uint64_t expected = s;
    if (!cas(&sl->seq, expected, pbm_pack(t, pidx, kWriting))) {
      continue;
    }
    uint64_t h = t;
    cas(&v.ctl->head.value, h, t + 1);
    *ticket = t;
    return PushStatus::Ok;
  }
}

/// Publish a claimed ticket. False if the claim was taken over (we were judged dead).
SAGE_HD inline bool pbm_commit(const PbmView & v, uint64_t ticket, uint32_t pidx, uint32_t len)
{
  PbmSlotHeader * sl = v.slot(ticket);
  sl->length = len;
  uint64_t expected = pbm_pack(ticket, pidx, kWriting);
  return cas(&sl->seq, expected, pbm_pack(ticket, pidx, kCommitted));
}

/// Give a claimed ticket up (consumers skip it).
SAGE_HD inline void pbm_abort(const PbmView & v, uint64_t ticket, uint32_t pidx)
{
  PbmSlotHeader * sl = v.slot(ticket);
  uint64_t expected = pbm_pack(ticket, pidx, kWriting);
  cas(&sl->seq, expected, pbm_pack(ticket, pidx, kAbandoned));
}

/// Counters a consumer keeps while popping (published to its ConsumerEntry by the caller).
struct PopCounters
{
  uint64_t delivered{0};
  uint64_t lost{0};
  uint64_t torn{0};
  uint64_t abandoned{0};
};

/// Pop the record at `*cursor` into `out` (at least record_size bytes). Hooks:
/// producer_alive(pidx) -> bool. Advances and publishes the cursor.
template <class Hooks>
SAGE_HD PopStatus pbm_pop(
  const PbmView & v, ConsumerEntry * me, uint64_t * cursor, void * out, uint32_t * out_len,
  PopCounters & counters, Hooks & hooks)
{
  for (;;) {
    const uint64_t c = *cursor;
    PbmSlotHeader * sl = v.slot(c);
    const uint64_t s = load_acquire(&sl->seq);
    if (s == 0) {
      return PopStatus::Empty;
    }
    const uint64_t tk = pbm_ticket(s);
    if (tk < c) {
      return PopStatus::Empty;
    }
    if (tk > c) {
      // Lapped (overwrite policy). Jump half a ring behind head: the oldest ticket (head -
      // capacity) is the very slot producers rewrite next, so reading there would only race.
      const uint64_t h = load_acquire(&v.ctl->head.value);
      const uint64_t back = v.capacity / 2;
      uint64_t nc = h > back ? h - back : 0;
      if (nc <= c) {
        nc = c + 1;
      }
      counters.lost += nc - c;
      *cursor = nc;
      store_release(&me->cursor, nc);
      continue;
    }
    const uint64_t st = pbm_state(s);
    if (st == kWriting) {
      if (hooks.producer_alive(pbm_pidx(s))) {
        return PopStatus::Empty;
      }
      uint64_t expected = s;
      cas(&sl->seq, expected, pbm_pack(tk, pbm_pidx(s), kAbandoned));
      continue;
    }
    if (st == kAbandoned) {
      counters.abandoned += 1;
      *cursor = c + 1;
      store_release(&me->cursor, c + 1);
      continue;
    }
    // Committed: copy, then (overwrite policy) check that nobody rewrote the slot meanwhile.
    uint32_t len = sl->length;
    if (len > v.record_size) {
      len = v.record_size;  // only possible for a torn read, which the check below discards
    }
    copy_bytes(out, v.payload(sl), len);
    if (v.policy == static_cast<uint32_t>(Policy::Overwrite)) {
      fence_acquire();
      if (load_relaxed(&sl->seq) != s) {
        counters.torn += 1;
        *cursor = c + 1;
        store_release(&me->cursor, c + 1);
        continue;
      }
    }
    *out_len = len;
    counters.delivered += 1;
    *cursor = c + 1;
    store_release(&me->cursor, c + 1);
    return PopStatus::Ok;
  }
}

/// Whether a pop at `cursor` would return something (a record, or progress past a skip).
SAGE_HD inline bool pbm_has_data(const PbmView & v, uint64_t cursor)
{
  const uint64_t s = load_acquire(&v.slot(cursor)->seq);
  return s != 0 && pbm_ticket(s) >= cursor && (pbm_ticket(s) > cursor || pbm_state(s) != kWriting);
}

}  // namespace detail
}  // namespace sage::mailbox
