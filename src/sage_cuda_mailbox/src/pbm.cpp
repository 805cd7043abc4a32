#include "sage_cuda_mailbox/pbm.hpp"

#include <string>

#include "sage_cuda_mailbox/error.hpp"
#include "sage_cuda_mailbox/process.hpp"

namespace sage::mailbox
{

namespace
{

using detail::load_acquire;
using detail::store_release;

constexpr uint32_t kMaxRecordBytes = 1u << 20;
constexpr uint32_t kMaxPbmCapacity = 1u << 24;
// A stuck slot's owner is re-checked at most this often (a check reads /proc).
constexpr uint64_t kLivenessRecheckNs = 1000000;   // 1 ms
// Dead consumers blocking a full ring are looked for at most this often.
constexpr uint64_t kReapIntervalNs = 5000000;      // 5 ms

bool is_pow2(uint64_t x) {return x != 0 && (x & (x - 1)) == 0;}

}  // namespace

SegmentGeometry Pbm::geometry(const PbmConfig & config)
{
  if (config.record_size == 0 || config.record_size > kMaxRecordBytes) {
    throw MailboxError(Errc::InvalidArgument,
            "PBM record_size must be 1.." + std::to_string(kMaxRecordBytes) + " bytes, got " +
            std::to_string(config.record_size));
  }
  if (config.capacity < 2 || config.capacity > kMaxPbmCapacity || !is_pow2(config.capacity)) {
    throw MailboxError(Errc::InvalidArgument,
            "PBM capacity must be a power of two in 2.." + std::to_string(kMaxPbmCapacity) +
            ", got " + std::to_string(config.capacity));
  }
  if (config.policy != Policy::Reject && config.policy != Policy::Overwrite) {
    throw MailboxError(Errc::InvalidArgument, "unknown PBM policy");
  }
  SegmentGeometry g;
  g.kind = SegmentKind::Pbm;
  g.capacity = config.capacity;
  g.payload_bytes = config.record_size;
  g.stride = round_up(sizeof(PbmSlotHeader) + config.record_size, 16);
  g.data_offset = round_up(kControlOffset + sizeof(PbmControl), kPageBytes);
  g.total_bytes = g.data_offset + g.stride * g.capacity;
  g.policy = config.policy;
  return g;
}

Pbm::Pbm(std::shared_ptr<Segment> seg)
: seg_(std::move(seg))
{
  const SegmentHeader * h = seg_->header();
  if (!is_pow2(h->capacity) || h->payload_bytes == 0 || h->payload_bytes > kMaxRecordBytes ||
    h->stride < sizeof(PbmSlotHeader) + h->payload_bytes || h->policy > 1)
  {
    throw MailboxError(Errc::Corrupt, "refusing segment " + seg_->name() + ": bad PBM geometry");
  }
  view_.header = seg_->header();
  view_.tokens = seg_->participant_tokens();
  view_.ctl = seg_->control<PbmControl>();
  view_.slots = seg_->slot(0);
  view_.stride = h->stride;
  view_.capacity = h->capacity;
  view_.mask = h->capacity - 1;
  view_.record_size = static_cast<uint32_t>(h->payload_bytes);
  view_.policy = h->policy;
}

std::shared_ptr<Pbm> Pbm::create(const std::string & name, const PbmConfig & config, OpenMode mode)
{
  auto seg = Segment::create(name, geometry(config), mode, nullptr);  // zero-filled = empty ring
  return std::shared_ptr<Pbm>(new Pbm(std::move(seg)));
}

std::shared_ptr<Pbm> Pbm::attach(const std::string & name, uint64_t ready_timeout_ms)
{
  auto seg = Segment::attach(name, SegmentKind::Pbm, ready_timeout_ms);
  return std::shared_ptr<Pbm>(new Pbm(std::move(seg)));
}

PbmConfig Pbm::config() const noexcept
{
  PbmConfig c;
  c.record_size = view_.record_size;
  c.capacity = static_cast<uint32_t>(view_.capacity);
  c.policy = static_cast<Policy>(view_.policy);
  return c;
}

PbmStats Pbm::stats() const noexcept
{
  PbmStats s;
  s.head = load_acquire(&view_.ctl->head.value);
  s.rejected = detail::load_relaxed(&view_.ctl->rejected.value);
  s.abandoned = detail::load_relaxed(&view_.ctl->abandoned.value);
  for (const auto & e : view_.ctl->consumers) {
    if (load_acquire(&e.token) != 0) {
      ++s.consumers;
    }
  }
  return s;
}

// ---------------------------------------------------------------------------------------------

bool PbmHostHooks::producer_alive(uint32_t pidx)
{
  if (!pbm_->segment().liveness_enabled()) {
    return true;  // other PID namespace: pids mean nothing here, never take over a slot
  }
  const uint64_t token = load_acquire(&pbm_->view().tokens[pidx]);
  if (token == 0) {
    return false;  // its producer unregistered without finishing the write
  }
  const uint64_t now = monotonic_ns();
  if (token == checked_token_ && now - checked_at_ns_ < kLivenessRecheckNs) {
    return true;
  }
  if (!token_alive(token)) {
    return false;
  }
  checked_token_ = token;
  checked_at_ns_ = now;
  return true;
}

uint64_t PbmHostHooks::compute_tail(uint64_t head)
{
  const detail::PbmView & v = pbm_->view();
  const uint64_t now = monotonic_ns();
  const bool reap = pbm_->segment().liveness_enabled() &&
    now - tail_checked_at_ns_ >= kReapIntervalNs;
  if (reap) {
    tail_checked_at_ns_ = now;
  }
  uint64_t m = head;
  for (auto & e : v.ctl->consumers) {
    const uint64_t token = load_acquire(&e.token);
    if (token == 0) {
      continue;
    }
    const uint64_t c = load_acquire(&e.cursor);
    if (reap && c + v.capacity <= head && !token_alive(token)) {
      // A dead consumer must not hold the ring full forever: free its entry.
      uint64_t expected = token;
      detail::cas(&e.token, expected, 0);
      continue;
    }
    if (c < m) {
      m = c;
    }
  }
  return m;
}

void PbmHostHooks::on_abandon()
{
  detail::fetch_add_relaxed(&pbm_->view().ctl->abandoned.value, 1);
}

// ---------------------------------------------------------------------------------------------

PbmProducer::PbmProducer(std::shared_ptr<Pbm> pbm)
: pbm_(std::move(pbm)), hooks_(*pbm_), token_(self_token()), fork_gen_(fork_generation())
{
  const detail::PbmView v = pbm_->view();
  pidx_ = register_participant(pbm_->segment(), token_, [v](uint32_t reclaimed) {
        // The dead owner of this index may have left slots WRITING: abandon them so
        // consumers do not take our (live) token for theirs and wait forever.
        for (uint64_t i = 0; i < v.capacity; ++i) {
          auto * sl = reinterpret_cast<PbmSlotHeader *>(v.slots + i * v.stride);
          uint64_t s = load_acquire(&sl->seq);
          if (s != 0 && detail::pbm_state(s) == detail::kWriting &&
          detail::pbm_pidx(s) == reclaimed)
          {
            detail::cas(&sl->seq, s,
            detail::pbm_pack(detail::pbm_ticket(s), reclaimed, detail::kAbandoned));
          }
        }
      });
}

PbmProducer::~PbmProducer()
{
  if (fork_gen_ != fork_generation()) {
    return;  // a forked child must not touch its parent's registration
  }
  abort();
  unregister_participant(pbm_->segment(), pidx_, token_);
}

void PbmProducer::check_fork() const
{
  if (fork_gen_ != fork_generation()) {
    throw MailboxError(Errc::UsedAfterFork,
            "PBM producer made before fork() used in the child: make a new one there");
  }
}

PushStatus PbmProducer::try_push(const void * data, uint32_t len)
{
  check_fork();
  const detail::PbmView & v = pbm_->view();
  if (len == 0 || len > v.record_size) {
    throw MailboxError(Errc::WrongSize,
            "record of " + std::to_string(len) + " bytes does not fit PBM " + pbm_->name() +
            " (record_size " + std::to_string(v.record_size) + ")");
  }
  if (loaned_) {
    throw MailboxError(Errc::InvalidArgument, "send() or abort() the current loan first");
  }
  uint64_t ticket = 0;
  const PushStatus st = detail::pbm_claim(v, pidx_, hooks_, &ticket);
  if (st != PushStatus::Ok) {
    if (st == PushStatus::Full) {
      detail::fetch_add_relaxed(&v.ctl->rejected.value, 1);
    }
    return st;
  }
  PbmSlotHeader * sl = v.slot(ticket);
  detail::copy_bytes(v.payload(sl), data, len);
  if (!detail::pbm_commit(v, ticket, pidx_, len)) {
    return PushStatus::Abandoned;
  }
  ++pushed_;
  pbm_->segment().notify_commit();
  return PushStatus::Ok;
}

uint8_t * PbmProducer::loan(PushStatus * status)
{
  check_fork();
  if (loaned_) {
    throw MailboxError(Errc::InvalidArgument, "send() or abort() the current loan first");
  }
  const detail::PbmView & v = pbm_->view();
  uint64_t ticket = 0;
  const PushStatus st = detail::pbm_claim(v, pidx_, hooks_, &ticket);
  *status = st;
  if (st != PushStatus::Ok) {
    if (st == PushStatus::Full) {
      detail::fetch_add_relaxed(&v.ctl->rejected.value, 1);
    }
    return nullptr;
  }
  loaned_ = true;
  loan_ticket_ = ticket;
  return v.payload(v.slot(ticket));
}

PushStatus PbmProducer::send(uint32_t len)
{
  check_fork();
  if (!loaned_) {
    throw MailboxError(Errc::InvalidArgument, "send() without a loan");
  }
  const detail::PbmView & v = pbm_->view();
  if (len == 0 || len > v.record_size) {
    throw MailboxError(Errc::WrongSize,
            "record of " + std::to_string(len) + " bytes does not fit PBM " + pbm_->name() +
            " (record_size " + std::to_string(v.record_size) + ")");
  }
  loaned_ = false;
  if (!detail::pbm_commit(v, loan_ticket_, pidx_, len)) {
    return PushStatus::Abandoned;
  }
  ++pushed_;
  pbm_->segment().notify_commit();
  return PushStatus::Ok;
}

void PbmProducer::abort() noexcept
{
  if (loaned_) {
    loaned_ = false;
    detail::pbm_abort(pbm_->view(), loan_ticket_, pidx_);
    pbm_->segment().notify_commit();
  }
}

// ---------------------------------------------------------------------------------------------

PbmConsumer::PbmConsumer(std::shared_ptr<Pbm> pbm, bool from_oldest)
: pbm_(std::move(pbm)), hooks_(*pbm_), token_(self_token()), fork_gen_(fork_generation())
{
  const detail::PbmView & v = pbm_->view();
  bool found = false;
  for (uint32_t pass = 0; pass < 2 && !found; ++pass) {
    for (uint32_t i = 0; i < kMaxConsumers && !found; ++i) {
      ConsumerEntry & e = v.ctl->consumers[i];
      uint64_t old = load_acquire(&e.token);
      const bool take = pass == 0 ? old == 0 :
        (old != 0 && pbm_->segment().liveness_enabled() && !token_alive(old));
      if (!take) {
        continue;
      }
      // Until we store our cursor below, producers see this entry's old cursor, which is
      // lower than head: that only makes them more careful (Full earlier), never unsafe.
      if (detail::cas_seq_cst(&e.token, old, token_)) {
        cidx_ = i;
        entry_ = &e;
        found = true;
      }
    }
  }
  if (!found) {
    throw MailboxError(Errc::TooManyParticipants,
            "PBM " + pbm_->name() + " already has " + std::to_string(kMaxConsumers) +
            " live consumers");
  }
  // Re-read head after registering (seq_cst): any producer that computed the ring's tail
  // without us saw a head <= this one, so starting here loses nothing it may overwrite.
  uint64_t start = detail::load_seq_cst(&v.ctl->head.value);
  if (from_oldest) {
    const uint64_t tail = detail::load_seq_cst(&v.ctl->tail_hint.value);
    const uint64_t oldest = start > v.capacity ? start - v.capacity : 0;
    start = v.policy == static_cast<uint32_t>(Policy::Reject) ?
      (tail > oldest ? tail : oldest) : oldest;
  }
  cursor_ = start;
  store_release(&entry_->cursor, cursor_);
  store_release(&entry_->delivered, 0);
  store_release(&entry_->lost, 0);
  store_release(&entry_->torn, 0);
  store_release(&entry_->abandoned, 0);
}

PbmConsumer::~PbmConsumer()
{
  if (fork_gen_ != fork_generation()) {
    return;
  }
  uint64_t expected = token_;
  detail::cas(&entry_->token, expected, 0);
}

void PbmConsumer::check_fork() const
{
  if (fork_gen_ != fork_generation()) {
    throw MailboxError(Errc::UsedAfterFork,
            "PBM consumer made before fork() used in the child: make a new one there");
  }
}

void PbmConsumer::publish_counters() noexcept
{
  detail::store_relaxed(&entry_->delivered, counters_.delivered);
  detail::store_relaxed(&entry_->lost, counters_.lost);
  detail::store_relaxed(&entry_->torn, counters_.torn);
  detail::store_relaxed(&entry_->abandoned, counters_.abandoned);
}

PopStatus PbmConsumer::try_pop(void * out, uint32_t capacity, uint32_t * len)
{
  check_fork();
  const detail::PbmView & v = pbm_->view();
  if (capacity < v.record_size) {
    throw MailboxError(Errc::WrongSize,
            "pop buffer of " + std::to_string(capacity) + " bytes is smaller than the record "
            "size " + std::to_string(v.record_size) + " of PBM " + pbm_->name());
  }
  const PopStatus st = detail::pbm_pop(v, entry_, &cursor_, out, len, counters_, hooks_);
  publish_counters();
  if (st == PopStatus::Empty && pbm_->segment().retired()) {
    throw MailboxError(Errc::Retired, "PBM " + pbm_->name() + " was retired by its owner");
  }
  return st;
}

bool PbmConsumer::wait(uint64_t timeout_ns)
{
  check_fork();
  const detail::PbmView & v = pbm_->view();
  const uint64_t cursor = cursor_;
  return pbm_->segment().wait_commit(timeout_ns, [&v, cursor]() {
             return detail::pbm_has_data(v, cursor);
           });
}

PopStatus PbmConsumer::pop_wait(void * out, uint32_t capacity, uint32_t * len, uint64_t timeout_ns)
{
  const uint64_t deadline = monotonic_ns() + timeout_ns;
  for (;;) {
    const PopStatus st = try_pop(out, capacity, len);
    const uint64_t now = monotonic_ns();
    if (st == PopStatus::Ok || now >= deadline) {
      return st;
    }
    // A slot stuck WRITING by a dead producer never looks ready; re-try the pop (which checks
    // liveness) at least every 50 ms.
    uint64_t slice = deadline - now;
    if (slice > 50000000ull) {
      slice = 50000000ull;
    }
    wait(slice);
  }
}

ConsumerStats PbmConsumer::stats() const noexcept
{
  ConsumerStats s;
  s.cursor = cursor_;
  s.delivered = counters_.delivered;
  s.lost = counters_.lost;
  s.torn = counters_.torn;
  s.abandoned = counters_.abandoned;
  return s;
}

}  // namespace sage::mailbox
