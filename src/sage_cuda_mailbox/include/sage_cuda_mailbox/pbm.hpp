// PBM: peripheral broadcast mailbox. Fixed-size records, many producers, many consumers, each
// consumer with its own cursor (every consumer sees every record).
//
//   auto pbm = Pbm::create("imu_events", {sizeof(Event), 1024, Policy::Reject});
//   PbmProducer producer(pbm);            // one per thread
//   if (producer.try_push(&ev, sizeof ev) == PushStatus::Full) { ... }   // never blocks
//   PbmConsumer consumer(Pbm::attach("imu_events"));
//   uint32_t n; if (consumer.try_pop(&ev, sizeof ev, &n) == PopStatus::Ok) { ... }
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "sage_cuda_mailbox/detail/pbm_core.hpp"
#include "sage_cuda_mailbox/segment.hpp"

namespace sage::mailbox
{

struct PbmConfig
{
  uint32_t record_size{64};   ///< bytes of one record (1 .. 1 MiB)
  uint32_t capacity{1024};    ///< slots, a power of two (2 .. 2^24)
  Policy policy{Policy::Reject};
};

/// Counters of a PBM segment (approximate while traffic flows).
struct PbmStats
{
  uint64_t head{0};       ///< tickets claimed so far
  uint64_t rejected{0};   ///< pushes refused as Full
  uint64_t abandoned{0};  ///< records abandoned by dead producers (marked by producers)
  uint32_t consumers{0};  ///< registered consumers
};

/// A PBM segment; producers and consumers are made from it.
class Pbm
{
public:
  /// Create a PBM segment (see OpenMode for an existing name). Throws MailboxError.
  static std::shared_ptr<Pbm> create(
    const std::string & name, const PbmConfig & config, OpenMode mode = OpenMode::Create);
  /// Attach to an existing PBM segment. Throws MailboxError.
  static std::shared_ptr<Pbm> attach(const std::string & name, uint64_t ready_timeout_ms = 1000);
  /// Geometry of a PBM with this configuration. Throws MailboxError(InvalidArgument).
  static SegmentGeometry geometry(const PbmConfig & config);

  const std::string & name() const noexcept {return seg_->name();}
  PbmConfig config() const noexcept;
  PbmStats stats() const noexcept;
  Segment & segment() const noexcept {return *seg_;}
  const std::shared_ptr<Segment> & segment_ptr() const noexcept {return seg_;}
  const detail::PbmView & view() const noexcept {return view_;}

private:
  explicit Pbm(std::shared_ptr<Segment> seg);
  std::shared_ptr<Segment> seg_;
  detail::PbmView view_{};
};

/// Host-side hooks of the PBM protocol: liveness checks (rate limited) and tail computation.
class PbmHostHooks
{
public:
  explicit PbmHostHooks(const Pbm & pbm) : pbm_(&pbm) {}
  bool producer_alive(uint32_t pidx);
  uint64_t compute_tail(uint64_t head);
  void on_abandon();

private:
  const Pbm * pbm_;
  uint64_t checked_token_{0};
  uint64_t checked_at_ns_{0};
  uint64_t tail_checked_at_ns_{0};
};

/// A producer. Not thread safe: make one per thread (cheap; up to 64 per segment).
class PbmProducer
{
public:
  explicit PbmProducer(std::shared_ptr<Pbm> pbm);
  ~PbmProducer();
  PbmProducer(const PbmProducer &) = delete;
  PbmProducer & operator=(const PbmProducer &) = delete;

  /// Copy one record of `len` bytes (1 .. record_size) in. Never blocks.
  /// Throws MailboxError(WrongSize) for a bad length, (UsedAfterFork) after fork().
  PushStatus try_push(const void * data, uint32_t len);

  /// Loan: claim a slot and write into it in place, then send() (or abort()).
  /// Returns a pointer to record_size writable bytes, or nullptr with `*status` set.
  uint8_t * loan(PushStatus * status);
  /// Publish the loaned slot with `len` bytes. Returns Ok or Abandoned.
  PushStatus send(uint32_t len);
  /// Give the loaned slot up (consumers skip it).
  void abort() noexcept;
  bool has_loan() const noexcept {return loaned_;}

  uint32_t index() const noexcept {return pidx_;}
  uint64_t pushed() const noexcept {return pushed_;}
  const Pbm & pbm() const noexcept {return *pbm_;}

private:
  void check_fork() const;
  std::shared_ptr<Pbm> pbm_;
  PbmHostHooks hooks_;
  uint64_t token_{0};
  uint32_t pidx_{0};
  uint64_t fork_gen_{0};
  bool loaned_{false};
  uint64_t loan_ticket_{0};
  uint64_t pushed_{0};
};

/// Counters of one consumer.
struct ConsumerStats
{
  uint64_t cursor{0};
  uint64_t delivered{0};
  uint64_t lost{0};
  uint64_t torn{0};
  uint64_t abandoned{0};
};

/// A consumer with its own cursor. Not thread safe: one per thread.
class PbmConsumer
{
public:
  /// Register a consumer. It reads records pushed from now on (or, with `from_oldest`, every
  /// record still in the ring). Throws MailboxError(TooManyParticipants).
  explicit PbmConsumer(std::shared_ptr<Pbm> pbm, bool from_oldest = false);
  ~PbmConsumer();
  PbmConsumer(const PbmConsumer &) = delete;
  PbmConsumer & operator=(const PbmConsumer &) = delete;

  /// Copy the next record into `out` (capacity >= record_size). Never blocks.
  /// Throws MailboxError(WrongSize) when `capacity` is too small, (Retired) if the segment was
  /// replaced, (UsedAfterFork) after fork().
  PopStatus try_pop(void * out, uint32_t capacity, uint32_t * len);
  /// Like try_pop, but waits up to `timeout_ns` for a record (futex; no busy loop).
  PopStatus pop_wait(void * out, uint32_t capacity, uint32_t * len, uint64_t timeout_ns);
  /// Wait until a record is available or the timeout passes; true if one is.
  bool wait(uint64_t timeout_ns);

  ConsumerStats stats() const noexcept;
  uint32_t index() const noexcept {return cidx_;}
  const Pbm & pbm() const noexcept {return *pbm_;}

private:
  void check_fork() const;
  void publish_counters() noexcept;
  std::shared_ptr<Pbm> pbm_;
  PbmHostHooks hooks_;
  ConsumerEntry * entry_{nullptr};
  uint64_t token_{0};
  uint32_t cidx_{0};
  uint64_t cursor_{0};
  uint64_t fork_gen_{0};
  detail::PopCounters counters_{};
};

}  // namespace sage::mailbox
