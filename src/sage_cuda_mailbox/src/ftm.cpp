#include "sage_cuda_mailbox/ftm.hpp"

#include <cstring>
#include <string>

#include "sage_cuda_mailbox/detail/atomics.hpp"
#include "sage_cuda_mailbox/error.hpp"
#include "sage_cuda_mailbox/process.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SAGE_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define SAGE_PAUSE() asm volatile ("yield")
#else
#define SAGE_PAUSE() do {} while (0)
#endif

namespace sage::mailbox
{

namespace
{

using detail::load_acquire;
using detail::load_seq_cst;

constexpr uint32_t kMaxFtmSlots = 1024;
constexpr uint64_t kMaxFtmBytes = 1ull << 30;
constexpr uint64_t kMaxLeaseMs = 60000;

constexpr uint64_t kEmpty = 0;
constexpr uint64_t kWritingBit = 1;
constexpr uint64_t kCommittedBit = 2;

constexpr uint64_t writing_word(uint32_t widx) {return (static_cast<uint64_t>(widx) << 2) | 1;}
constexpr uint64_t committed_word(uint64_t seq) {return (seq << 2) | 2;}
constexpr uint64_t word_kind(uint64_t s) {return s & 3;}
constexpr uint64_t word_value(uint64_t s) {return s >> 2;}

constexpr uint64_t kLeaseExpiryMask = (1ull << 42) - 1;
uint64_t lease_word(uint64_t expiry_ms)
{
  return ((self_token() & 0x3FFFFFull) << 42) | (expiry_ms & kLeaseExpiryMask);
}
constexpr uint64_t lease_expiry(uint64_t w) {return w & kLeaseExpiryMask;}

bool slot_leased(FtmSlotHeader * h, uint64_t now_ms)
{
  for (uint32_t e = 0; e < kLeasesPerSlot; ++e) {
    const uint64_t w = load_seq_cst(&h->leases[e]);
    if (w != 0 && lease_expiry(w) > now_ms) {
      return true;
    }
  }
  return false;
}

struct EncodingInfo
{
  const char * name;
  uint32_t channels;
  DType dtype;
};

constexpr EncodingInfo kEncodings[] = {
  {"rgb8", 3, DType::U8}, {"bgr8", 3, DType::U8}, {"rgba8", 4, DType::U8},
  {"bgra8", 4, DType::U8}, {"mono8", 1, DType::U8}, {"mono16", 1, DType::U16},
  {"8UC1", 1, DType::U8}, {"8UC3", 3, DType::U8}, {"8UC4", 4, DType::U8},
  {"16UC1", 1, DType::U16}, {"32FC1", 1, DType::F32},
};

const EncodingInfo * find_encoding(const std::string & name)
{
  for (const auto & e : kEncodings) {
    if (name == e.name) {
      return &e;
    }
  }
  return nullptr;
}

std::string shape_str(const std::vector<int64_t> & shape)
{
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return s + (shape.size() == 1 ? ",)" : ")");
}

}  // namespace

uint32_t dtype_size(DType dtype) noexcept
{
  switch (dtype) {
    case DType::U8: case DType::I8: case DType::Bool: return 1;
    case DType::U16: case DType::I16: case DType::F16: return 2;
    case DType::U32: case DType::I32: case DType::F32: return 4;
    case DType::U64: case DType::I64: case DType::F64: return 8;
    default: return 0;
  }
}

const char * dtype_name(DType dtype) noexcept
{
  switch (dtype) {
    case DType::U8: return "uint8";
    case DType::I8: return "int8";
    case DType::U16: return "uint16";
    case DType::I16: return "int16";
    case DType::U32: return "uint32";
    case DType::I32: return "int32";
    case DType::U64: return "uint64";
    case DType::I64: return "int64";
    case DType::F16: return "float16";
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::Bool: return "bool";
    default: return "invalid";
  }
}

DType dtype_from_name(const std::string & name)
{
  for (uint32_t i = 1; i <= static_cast<uint32_t>(DType::Bool); ++i) {
    if (name == dtype_name(static_cast<DType>(i))) {
      return static_cast<DType>(i);
    }
  }
  throw MailboxError(Errc::WrongType, "unsupported dtype '" + name + "' (use uint8..float64, "
          "float16 or bool)");
}

uint64_t validate_spec(const TensorSpec & spec, uint64_t max_bytes)
{
  const uint32_t item = dtype_size(spec.dtype);
  if (item == 0) {
    throw MailboxError(Errc::WrongType, "invalid tensor dtype");
  }
  const size_t ndim = spec.shape.size();
  if (ndim > kMaxDims) {
    throw MailboxError(Errc::WrongType,
            "tensor has " + std::to_string(ndim) + " dimensions, at most " +
            std::to_string(kMaxDims) + " are supported");
  }
  if (!spec.strides.empty() && spec.strides.size() != ndim) {
    throw MailboxError(Errc::WrongType, "strides and shape differ in length");
  }
  bool empty = false;
  for (const int64_t d : spec.shape) {
    if (d < 0) {
      throw MailboxError(Errc::WrongType, "negative dimension in shape " + shape_str(spec.shape));
    }
    empty = empty || d == 0;
  }
  uint64_t extent = item;
  if (spec.strides.empty()) {
    for (const int64_t d : spec.shape) {
      extent *= static_cast<uint64_t>(d);
      if (extent > kMaxFtmBytes * 2) {
        break;  // far too big already; avoid overflow
      }
    }
  } else {
    for (size_t i = 0; i < ndim; ++i) {
      if (spec.strides[i] < 0) {
        throw MailboxError(Errc::WrongType,
                "negative strides are refused: write a contiguous copy of the tensor");
      }
      if (spec.strides[i] % item != 0) {
        throw MailboxError(Errc::WrongType,
                "stride " + std::to_string(spec.strides[i]) + " is not a multiple of the " +
                std::to_string(item) + "-byte element size");
      }
      if (!empty) {
        extent += static_cast<uint64_t>(spec.shape[i] - 1) * static_cast<uint64_t>(spec.strides[i]);
      }
    }
  }
  if (empty) {
    extent = 0;
  }
  if (extent > max_bytes) {
    throw MailboxError(Errc::WrongSize,
            "tensor " + shape_str(spec.shape) + " " + dtype_name(spec.dtype) + " spans " +
            std::to_string(extent) + " bytes, the mailbox holds at most " +
            std::to_string(max_bytes));
  }
  if (spec.encoding.size() >= kEncodingChars) {
    throw MailboxError(Errc::WrongType, "encoding '" + spec.encoding + "' is too long");
  }
  if (!spec.encoding.empty()) {
    const EncodingInfo * enc = find_encoding(spec.encoding);
    if (enc == nullptr) {
      throw MailboxError(Errc::WrongType, "unsupported frame encoding '" + spec.encoding + "'");
    }
    const bool shape_ok = (ndim == 3 && spec.shape[2] == enc->channels) ||
      (ndim == 2 && enc->channels == 1);
    if (!shape_ok || spec.dtype != enc->dtype) {
      throw MailboxError(Errc::WrongType,
              "a " + spec.encoding + " frame must be (height, width" +
              (enc->channels == 1 ? std::string("") : ", " + std::to_string(enc->channels)) +
              ") " + dtype_name(enc->dtype) + ", got " + shape_str(spec.shape) + " " +
              dtype_name(spec.dtype));
    }
  }
  return extent;
}

// ---------------------------------------------------------------------------------------------

SegmentGeometry Ftm::geometry(const FtmConfig & config)
{
  if (config.slots < 2 || config.slots > kMaxFtmSlots) {
    throw MailboxError(Errc::InvalidArgument,
            "FTM slots must be 2.." + std::to_string(kMaxFtmSlots) + ", got " +
            std::to_string(config.slots));
  }
  if (config.max_bytes == 0 || config.max_bytes > kMaxFtmBytes) {
    throw MailboxError(Errc::InvalidArgument,
            "FTM max_bytes must be 1.." + std::to_string(kMaxFtmBytes) + ", got " +
            std::to_string(config.max_bytes));
  }
  SegmentGeometry g;
  g.kind = SegmentKind::Ftm;
  g.capacity = config.slots;
  g.payload_bytes = config.max_bytes;
  g.stride = round_up(kFtmSlotHeaderBytes + config.max_bytes, kPageBytes);
  g.data_offset = round_up(kControlOffset + sizeof(FtmControl), kPageBytes);
  g.total_bytes = g.data_offset + g.stride * g.capacity;
  g.policy = Policy::Reject;
  return g;
}

std::shared_ptr<Ftm> Ftm::create(const std::string & name, const FtmConfig & config, OpenMode mode)
{
  // Sequences start at the creation time in microseconds (and above those of a segment this
  // one replaces), so a descriptor of an older segment with the same name never matches.
  uint64_t first = realtime_ns() / 1000;
  if (mode == OpenMode::Replace && Segment::exists(name)) {
    try {
      const uint64_t old = Ftm::attach(name, 0)->stats().next_sequence;
      first = old >= first ? old + 1 : first;
    } catch (const MailboxError &) {
      // Not a readable FTM: nothing to stay above.
    }
  }
  auto seg = Segment::create(name, geometry(config), mode, [first](Segment & s) {
        s.control<FtmControl>()->next_sequence.value = first;
      });
  return std::shared_ptr<Ftm>(new Ftm(std::move(seg)));
}

std::shared_ptr<Ftm> Ftm::attach(const std::string & name, uint64_t ready_timeout_ms)
{
  auto seg = Segment::attach(name, SegmentKind::Ftm, ready_timeout_ms);
  const SegmentHeader * h = seg->header();
  if (h->capacity > kMaxFtmSlots || h->payload_bytes == 0 || h->payload_bytes > kMaxFtmBytes ||
    h->stride < kFtmSlotHeaderBytes + h->payload_bytes)
  {
    throw MailboxError(Errc::Corrupt, "refusing segment " + seg->name() + ": bad FTM geometry");
  }
  return std::shared_ptr<Ftm>(new Ftm(std::move(seg)));
}

FtmConfig Ftm::config() const noexcept
{
  FtmConfig c;
  c.slots = seg_->header()->capacity;
  c.max_bytes = seg_->header()->payload_bytes;
  return c;
}

FtmStats Ftm::stats() const noexcept
{
  auto * ctl = seg_->control<FtmControl>();
  FtmStats s;
  s.next_sequence = load_acquire(&ctl->next_sequence.value);
  s.busy = detail::load_relaxed(&ctl->busy.value);
  s.abandoned = detail::load_relaxed(&ctl->abandoned.value);
  return s;
}

std::optional<Descriptor> Ftm::latest() const noexcept
{
  std::optional<Descriptor> best;
  const uint32_t n = seg_->header()->capacity;
  for (uint32_t k = 0; k < n; ++k) {
    const uint64_t s = load_acquire(&slot_header(k)->state);
    if (word_kind(s) == kCommittedBit && (!best || word_value(s) > best->sequence)) {
      best = Descriptor{k, word_value(s)};
    }
  }
  return best;
}

bool Ftm::wait_newer(uint64_t after_sequence, uint64_t timeout_ns)
{
  return seg_->wait_commit(timeout_ns, [this, after_sequence]() {
             const auto d = latest();
             return d && d->sequence > after_sequence;
           });
}

// ---------------------------------------------------------------------------------------------

FtmWriter::FtmWriter(std::shared_ptr<Ftm> ftm)
: ftm_(std::move(ftm)), token_(self_token()), fork_gen_(fork_generation())
{
  Ftm * f = ftm_.get();
  widx_ = register_participant(f->segment(), token_, [f](uint32_t reclaimed) {
        const uint32_t n = f->segment().header()->capacity;
        for (uint32_t k = 0; k < n; ++k) {
          uint64_t s = writing_word(reclaimed);
          detail::cas(&f->slot_header(k)->state, s, kEmpty);
        }
      });
}

FtmWriter::~FtmWriter()
{
  if (fork_gen_ != fork_generation()) {
    return;
  }
  abort();
  unregister_participant(ftm_->segment(), widx_, token_);
}

void FtmWriter::check_fork() const
{
  if (fork_gen_ != fork_generation()) {
    throw MailboxError(Errc::UsedAfterFork,
            "FTM writer made before fork() used in the child: make a new one there");
  }
}

uint8_t * FtmWriter::loan(uint64_t nbytes)
{
  check_fork();
  if (loan_slot_ >= 0) {
    throw MailboxError(Errc::InvalidArgument, "commit() or abort() the current loan first");
  }
  Segment & seg = ftm_->segment();
  const SegmentHeader * sh = seg.header();
  if (nbytes > sh->payload_bytes) {
    throw MailboxError(Errc::WrongSize,
            "tensor of " + std::to_string(nbytes) + " bytes does not fit FTM " + ftm_->name() +
            " (max_bytes " + std::to_string(sh->payload_bytes) + ")");
  }
  auto * ctl = seg.control<FtmControl>();
  const uint32_t n = sh->capacity;
  const uint64_t start = detail::fetch_add(&ctl->next_slot.value, 1);
  const uint64_t now = monotonic_ms();
  for (uint32_t i = 0; i < n; ++i) {
    const auto k = static_cast<uint32_t>((start + i) % n);
    FtmSlotHeader * h = ftm_->slot_header(k);
    const uint64_t s = load_acquire(&h->state);
    bool takeover = false;
    if (word_kind(s) == kWritingBit) {
      const auto owner = static_cast<uint32_t>(word_value(s));
      const uint64_t tok = load_acquire(&seg.participant_tokens()[owner % kMaxParticipants]);
      if (!seg.liveness_enabled() || (tok != 0 && token_alive(tok))) {
        continue;  // someone is writing it
      }
      takeover = true;  // its writer died mid-write
    }
    if (slot_leased(h, now)) {
      continue;
    }
    uint64_t expected = s;
    if (!detail::cas_seq_cst(&h->state, expected, writing_word(widx_))) {
      continue;
    }
    // Dekker hand-shake with readers: a lease taken before our claim is visible now.
    if (slot_leased(h, now)) {
      uint64_t mine = writing_word(widx_);
      detail::cas_seq_cst(&h->state, mine, s);
      continue;
    }
    if (takeover) {
      detail::fetch_add_relaxed(&ctl->abandoned.value, 1);
    }
    h->write_start_ms = now;
    loan_slot_ = k;
    loan_prev_state_ = s;
    loan_bytes_ = nbytes;
    return ftm_->payload(k);
  }
  detail::fetch_add_relaxed(&ctl->busy.value, 1);
  throw MailboxError(Errc::Busy,
          "every slot of FTM " + ftm_->name() + " (" + std::to_string(n) +
          ") is leased by a reader or being written");
}

Descriptor FtmWriter::commit(const TensorSpec & spec)
{
  check_fork();
  if (loan_slot_ < 0) {
    throw MailboxError(Errc::InvalidArgument, "commit() without a loan");
  }
  const uint64_t extent = validate_spec(spec, ftm_->segment().header()->payload_bytes);
  if (extent > loan_bytes_) {
    throw MailboxError(Errc::WrongSize,
            "tensor spans " + std::to_string(extent) + " bytes but the loan holds " +
            std::to_string(loan_bytes_));
  }
  const auto k = static_cast<uint32_t>(loan_slot_);
  FtmSlotHeader * h = ftm_->slot_header(k);
  TensorMeta & m = h->meta;
  const uint32_t item = dtype_size(spec.dtype);
  m.stamp = spec.stamp;
  m.nbytes = extent;
  m.dtype = static_cast<uint32_t>(spec.dtype);
  m.ndim = static_cast<uint32_t>(spec.shape.size());
  int64_t contiguous = item;
  for (size_t i = spec.shape.size(); i-- > 0; ) {
    m.shape[i] = spec.shape[i];
    m.strides[i] = spec.strides.empty() ? contiguous : spec.strides[i];
    contiguous *= spec.shape[i];
  }
  std::memset(m.encoding, 0, sizeof(m.encoding));
  std::memcpy(m.encoding, spec.encoding.data(), spec.encoding.size());
  if (!spec.encoding.empty()) {
    m.height = static_cast<uint32_t>(m.shape[0]);
    m.width = static_cast<uint32_t>(m.shape[1]);
    m.step = static_cast<uint32_t>(m.strides[0]);
  } else {
    m.height = spec.height;
    m.width = spec.width;
    m.step = spec.step;
  }
  auto * ctl = ftm_->segment().control<FtmControl>();
  const uint64_t seq = detail::fetch_add(&ctl->next_sequence.value, 1);
  m.sequence = seq;
  loan_slot_ = -1;
  uint64_t expected = writing_word(widx_);
  if (!detail::cas(&h->state, expected, committed_word(seq))) {
    throw MailboxError(Errc::Abandoned,
            "write to FTM " + ftm_->name() + " slot " + std::to_string(k) +
            " was taken over (this writer looked dead); the frame was dropped");
  }
  ftm_->segment().notify_commit();
  return Descriptor{k, seq};
}

void FtmWriter::abort() noexcept
{
  if (loan_slot_ >= 0) {
    uint64_t expected = writing_word(widx_);
    detail::cas(&ftm_->slot_header(static_cast<uint32_t>(loan_slot_))->state, expected, kEmpty);
    loan_slot_ = -1;
  }
}

Descriptor FtmWriter::write(const void * data, const TensorSpec & spec)
{
  const uint64_t extent = validate_spec(spec, ftm_->segment().header()->payload_bytes);
  uint8_t * dst = loan(extent);
  std::memcpy(dst, data, extent);
  return commit(spec);
}

// ---------------------------------------------------------------------------------------------

FtmLease::FtmLease(FtmLease && o) noexcept
: ftm_(std::move(o.ftm_)), slot_(o.slot_), entry_(o.entry_), word_(o.word_), data_(o.data_),
  meta_(o.meta_)
{
  o.ftm_.reset();
  o.data_ = nullptr;
}

FtmLease & FtmLease::operator=(FtmLease && o) noexcept
{
  if (this != &o) {
    release();
    ftm_ = std::move(o.ftm_);
    slot_ = o.slot_;
    entry_ = o.entry_;
    word_ = o.word_;
    data_ = o.data_;
    meta_ = o.meta_;
    o.ftm_.reset();
    o.data_ = nullptr;
  }
  return *this;
}

FtmLease::~FtmLease() {release();}

bool FtmLease::valid() const noexcept
{
  if (!ftm_) {
    return false;
  }
  FtmSlotHeader * h = ftm_->slot_header(slot_);
  return load_seq_cst(&h->leases[entry_]) == word_ && lease_expiry(word_) > monotonic_ms() &&
         load_seq_cst(&h->state) == committed_word(meta_.sequence);
}

bool FtmLease::renew(uint64_t lease_ms) noexcept
{
  if (!valid() || lease_ms == 0 || lease_ms > kMaxLeaseMs) {
    return false;
  }
  FtmSlotHeader * h = ftm_->slot_header(slot_);
  uint64_t expected = word_;
  const uint64_t next = lease_word(monotonic_ms() + lease_ms);
  if (!detail::cas_seq_cst(&h->leases[entry_], expected, next)) {
    return false;
  }
  word_ = next;
  return load_seq_cst(&h->state) == committed_word(meta_.sequence);
}

void FtmLease::release() noexcept
{
  if (ftm_) {
    uint64_t expected = word_;
    detail::cas_seq_cst(&ftm_->slot_header(slot_)->leases[entry_], expected, 0);
    ftm_.reset();
    data_ = nullptr;
  }
}

uint64_t FtmLease::expiry_ms() const noexcept {return lease_expiry(word_);}

// ---------------------------------------------------------------------------------------------

FtmReader::FtmReader(std::shared_ptr<Ftm> ftm)
: name_(ftm->name()), ftm_(std::move(ftm)) {}

FtmReader::FtmReader(const std::string & name)
: name_(Segment::normalize_name(name)), ftm_(Ftm::attach(name)) {}

void FtmReader::refresh()
{
  if (ftm_->segment().retired()) {
    try {
      ftm_ = Ftm::attach(name_);
    } catch (const MailboxError & e) {
      throw MailboxError(Errc::Retired,
              "FTM " + name_ + " was replaced or closed by its writer and cannot be "
              "re-attached: " + e.what());
    }
  }
}

std::shared_ptr<Ftm> FtmReader::ftm()
{
  refresh();
  return ftm_;
}

FtmLease FtmReader::acquire(uint32_t slot, uint64_t sequence, uint64_t lease_ms)
{
  refresh();
  const uint32_t n = ftm_->segment().header()->capacity;
  if (slot >= n) {
    throw MailboxError(Errc::BadDescriptor,
            "slot " + std::to_string(slot) + " is out of range for FTM " + name_ + " (" +
            std::to_string(n) + " slots)");
  }
  if (sequence == 0 || sequence >= (1ull << 62)) {
    throw MailboxError(Errc::BadDescriptor, "sequence " + std::to_string(sequence) + " is invalid");
  }
  if (lease_ms == 0 || lease_ms > kMaxLeaseMs) {
    throw MailboxError(Errc::InvalidArgument,
            "lease_ms must be 1.." + std::to_string(kMaxLeaseMs));
  }
  FtmSlotHeader * h = ftm_->slot_header(slot);
  const uint64_t want = committed_word(sequence);
  auto stale = [&](uint64_t s) {
      std::string now;
      if (word_kind(s) == kCommittedBit) {
        now = "now holds sequence " + std::to_string(word_value(s));
      } else if (word_kind(s) == kWritingBit) {
        now = "is being rewritten";
      } else {
        now = "is empty";
      }
      return MailboxError(Errc::Stale,
               "stale frame: FTM " + name_ + " slot " + std::to_string(slot) + " " + now +
               ", descriptor wants sequence " + std::to_string(sequence));
    };
  const uint64_t s0 = load_acquire(&h->state);
  if (s0 != want && word_kind(s0) != kWritingBit) {
    throw stale(s0);
  }
  const uint64_t now = monotonic_ms();
  const uint64_t word = lease_word(now + lease_ms);
  int entry = -1;
  for (uint32_t e = 0; e < kLeasesPerSlot && entry < 0; ++e) {
    uint64_t w = load_seq_cst(&h->leases[e]);
    if ((w == 0 || lease_expiry(w) <= now) && detail::cas_seq_cst(&h->leases[e], w, word)) {
      entry = static_cast<int>(e);
    }
  }
  if (entry < 0) {
    throw MailboxError(Errc::Busy,
            "all " + std::to_string(kLeasesPerSlot) + " leases of FTM " + name_ + " slot " +
            std::to_string(slot) + " are held");
  }
  uint64_t s = load_seq_cst(&h->state);
  // A writer that claimed the slot just before seeing our lease backs off within a few
  // instructions: give it that long before calling the frame stale.
  for (int spin = 0; s != want && word_kind(s) == kWritingBit && spin < 2000; ++spin) {
    SAGE_PAUSE();
    s = load_seq_cst(&h->state);
  }
  if (s != want) {
    uint64_t mine = word;
    detail::cas_seq_cst(&h->leases[entry], mine, 0);
    throw stale(s);
  }
  FtmLease lease;
  lease.ftm_ = ftm_;
  lease.slot_ = slot;
  lease.entry_ = static_cast<uint32_t>(entry);
  lease.word_ = word;
  lease.data_ = ftm_->payload(slot);
  lease.meta_ = h->meta;
  return lease;
}

TensorMeta FtmReader::read_copy(uint32_t slot, uint64_t sequence, void * out, uint64_t capacity)
{
  refresh();
  const uint32_t n = ftm_->segment().header()->capacity;
  if (slot >= n || sequence == 0) {
    throw MailboxError(Errc::BadDescriptor,
            "descriptor (slot " + std::to_string(slot) + ", sequence " +
            std::to_string(sequence) + ") is invalid for FTM " + name_);
  }
  FtmSlotHeader * h = ftm_->slot_header(slot);
  const uint64_t want = committed_word(sequence);
  const auto stale = [&]() {
      return MailboxError(Errc::Stale,
               "stale frame: FTM " + name_ + " slot " + std::to_string(slot) +
               " no longer holds sequence " + std::to_string(sequence));
    };
  if (load_acquire(&h->state) != want) {
    throw stale();
  }
  TensorMeta meta = h->meta;
  detail::fence_acquire();
  if (detail::load_relaxed(&h->state) != want) {
    throw stale();
  }
  if (meta.nbytes > capacity) {
    throw MailboxError(Errc::WrongSize,
            "buffer of " + std::to_string(capacity) + " bytes cannot hold the " +
            std::to_string(meta.nbytes) + "-byte tensor");
  }
  std::memcpy(out, ftm_->payload(slot), meta.nbytes);
  detail::fence_acquire();
  if (detail::load_relaxed(&h->state) != want) {
    throw stale();  // rewritten while we copied: the copy may be torn
  }
  return meta;
}

}  // namespace sage::mailbox
