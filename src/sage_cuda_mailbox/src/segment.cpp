#include "sage_cuda_mailbox/segment.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "sage_cuda_mailbox/cuda.hpp"
#include "sage_cuda_mailbox/detail/atomics.hpp"
#include "sage_cuda_mailbox/error.hpp"
#include "sage_cuda_mailbox/process.hpp"

namespace sage::mailbox
{

const char * errc_name(Errc code) noexcept
{
  switch (code) {
    case Errc::InvalidArgument: return "invalid_argument";
    case Errc::NotFound: return "not_found";
    case Errc::AlreadyExists: return "already_exists";
    case Errc::LayoutMismatch: return "layout_mismatch";
    case Errc::Corrupt: return "corrupt";
    case Errc::NotReady: return "not_ready";
    case Errc::Retired: return "retired";
    case Errc::TooManyParticipants: return "too_many_participants";
    case Errc::System: return "system";
    case Errc::WrongSize: return "wrong_size";
    case Errc::WrongType: return "wrong_type";
    case Errc::BadDescriptor: return "bad_descriptor";
    case Errc::Stale: return "stale";
    case Errc::Busy: return "busy";
    case Errc::Abandoned: return "abandoned";
    case Errc::UsedAfterFork: return "used_after_fork";
    case Errc::CudaUnavailable: return "cuda_unavailable";
    case Errc::Cuda: return "cuda";
  }
  return "unknown";
}

namespace
{

using detail::load32_acquire;
using detail::store32_release;

[[noreturn]] void throw_errno(const std::string & what, int err)
{
  throw MailboxError(Errc::System, what + ": " + std::strerror(err));
}

uint64_t header_checksum(const SegmentHeader & h)
{
  // FNV-1a over the immutable fields (everything before `checksum`).
  const auto * p = reinterpret_cast<const uint8_t *>(&h);
  uint64_t x = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < offsetof(SegmentHeader, checksum); ++i) {
    x ^= p[i];
    x *= 0x100000001b3ull;
  }
  return x;
}

const char * kind_name(uint32_t kind)
{
  switch (kind) {
    case static_cast<uint32_t>(SegmentKind::Pbm): return "PBM";
    case static_cast<uint32_t>(SegmentKind::Ftm): return "FTM";
    default: return "unknown";
  }
}

void sleep_ms(uint64_t ms)
{
  timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>((ms % 1000) * 1000000)};
  ::nanosleep(&ts, nullptr);
}

// Geometry and sanity checks of a ready header against the mapped size. Returns "" if fine.
std::string check_header(const SegmentHeader & h, uint64_t mapped, SegmentKind kind)
{
  std::ostringstream err;
  if (h.magic != kMagic) {
    err << "not a SAGE mailbox segment (bad magic 0x" << std::hex << h.magic << ")";
  } else if (h.version != kLayoutVersion) {
    err << "layout version " << h.version << ", this library reads version " << kLayoutVersion;
  } else if (h.checksum != header_checksum(h)) {
    err << "header checksum mismatch (corrupt header)";
  } else if (h.total_bytes != mapped) {
    err << "size mismatch: header says " << h.total_bytes << " bytes, segment has " << mapped;
  } else if (h.capacity == 0 || h.stride == 0 || h.data_offset < kControlOffset ||
    h.data_offset % kPageBytes != 0 ||
    h.data_offset + static_cast<uint64_t>(h.capacity) * h.stride != h.total_bytes)
  {
    err << "inconsistent geometry (capacity " << h.capacity << ", stride " << h.stride
        << ", data offset " << h.data_offset << ")";
  } else if (h.kind != static_cast<uint32_t>(kind)) {
    return std::string("kind ") + kind_name(h.kind) + ", expected " +
           kind_name(static_cast<uint32_t>(kind));
  }
  return err.str();
}

bool same_geometry(const SegmentGeometry & a, const SegmentGeometry & b)
{
  return a.kind == b.kind && a.capacity == b.capacity && a.payload_bytes == b.payload_bytes &&
         a.stride == b.stride && a.data_offset == b.data_offset &&
         a.total_bytes == b.total_bytes && a.policy == b.policy;
}

std::string describe(const SegmentGeometry & g)
{
  std::ostringstream s;
  s << kind_name(static_cast<uint32_t>(g.kind)) << " capacity " << g.capacity << ", payload "
    << g.payload_bytes << " B, policy " << static_cast<uint32_t>(g.policy);
  return s.str();
}

}  // namespace

uint64_t round_up(uint64_t value, uint64_t multiple) noexcept
{
  return (value + multiple - 1) / multiple * multiple;
}

std::string Segment::normalize_name(const std::string & name)
{
  std::string body = (!name.empty() && name[0] == '/') ? name.substr(1) : name;
  if (body.empty() || body.size() > 200) {
    throw MailboxError(Errc::InvalidArgument,
            "segment name must have 1..200 characters, got '" + name + "'");
  }
  for (const char c : body) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
      c == '_' || c == '-' || c == '.';
    if (!ok) {
      throw MailboxError(Errc::InvalidArgument,
              "segment name '" + name + "' may only hold letters, digits, '_', '-', '.'");
    }
  }
  if (body == "." || body == "..") {
    throw MailboxError(Errc::InvalidArgument, "segment name '" + name + "' is reserved");
  }
  return "/" + body;
}

bool Segment::unlink(const std::string & name)
{
  const std::string pname = normalize_name(name);
  if (::shm_unlink(pname.c_str()) == 0) {
    return true;
  }
  if (errno == ENOENT) {
    return false;
  }
  throw_errno("shm_unlink " + pname, errno);
}

bool Segment::exists(const std::string & name)
{
  const std::string pname = normalize_name(name);
  const int fd = ::shm_open(pname.c_str(), O_RDONLY, 0);
  if (fd < 0) {
    return false;
  }
  ::close(fd);
  return true;
}

std::shared_ptr<Segment> Segment::create(
  const std::string & name, const SegmentGeometry & geo, OpenMode mode, const Initializer & init)
{
  const std::string pname = normalize_name(name);
  if (mode == OpenMode::Replace && exists(pname)) {
    try {
      auto old = map_existing(pname, geo.kind, 0);
      old->retire();
    } catch (const MailboxError &) {
      // Corrupt or foreign: nothing to retire, just unlink it.
    }
    unlink(pname);
  }
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int fd = ::shm_open(pname.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      if (errno != EEXIST) {
        throw_errno("shm_open " + pname, errno);
      }
      if (mode == OpenMode::Create) {
        throw MailboxError(Errc::AlreadyExists, "segment " + pname + " already exists");
      }
      if (mode == OpenMode::CreateOrAttach) {
        std::shared_ptr<Segment> seg;
        try {
          seg = map_existing(pname, geo.kind, 1000);
        } catch (const MailboxError & e) {
          if (e.code() == Errc::NotFound) {
            continue;  // unlinked meanwhile: try to create again
          }
          throw;
        }
        const SegmentGeometry have = seg->geometry();
        if (!same_geometry(have, geo)) {
          throw MailboxError(Errc::LayoutMismatch,
                  "segment " + pname + " exists as " + describe(have) + ", requested " +
                  describe(geo));
        }
        return seg;
      }
      // Replace: someone recreated it between unlink and open; replace again.
      unlink(pname);
      continue;
    }
    // We own a fresh, empty object: size it, map it, initialise it, then mark it ready.
    ::fchmod(fd, 0600);  // the umask cannot widen it, but be explicit
    int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(geo.total_bytes));
    if (rc == EOPNOTSUPP || rc == EINVAL) {
      rc = ::ftruncate(fd, static_cast<off_t>(geo.total_bytes)) == 0 ? 0 : errno;
    }
    if (rc != 0) {
      ::close(fd);
      ::shm_unlink(pname.c_str());
      throw_errno("allocating " + std::to_string(geo.total_bytes) + " bytes for " + pname, rc);
    }
    void * p = ::mmap(nullptr, geo.total_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      ::shm_unlink(pname.c_str());
      throw_errno("mmap " + pname, err);
    }
    std::shared_ptr<Segment> seg(new Segment());
    seg->name_ = pname;
    seg->created_ = true;
    seg->fd_ = fd;
    seg->base_ = static_cast<uint8_t *>(p);
    seg->size_ = geo.total_bytes;
    SegmentHeader * h = seg->header();
    h->magic = kMagic;
    h->version = kLayoutVersion;
    h->kind = static_cast<uint32_t>(geo.kind);
    h->total_bytes = geo.total_bytes;
    h->data_offset = geo.data_offset;
    h->stride = geo.stride;
    h->payload_bytes = geo.payload_bytes;
    h->capacity = geo.capacity;
    h->policy = static_cast<uint32_t>(geo.policy);
    h->created_ns = realtime_ns();
    h->pid_namespace = pid_namespace_id();
    h->checksum = header_checksum(*h);
    if (init) {
      init(*seg);
    }
    store32_release(&h->state, static_cast<uint32_t>(SegmentState::Ready));
    return seg;
  }
  throw MailboxError(Errc::System, "could not create segment " + pname + " (name contended)");
}

std::shared_ptr<Segment> Segment::attach(
  const std::string & name, SegmentKind kind, uint64_t ready_timeout_ms)
{
  return map_existing(normalize_name(name), kind, ready_timeout_ms);
}

std::shared_ptr<Segment> Segment::map_existing(
  const std::string & pname, SegmentKind kind, uint64_t ready_timeout_ms)
{
  const int fd = ::shm_open(pname.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) {
    if (errno == ENOENT) {
      throw MailboxError(Errc::NotFound, "no mailbox segment named " + pname);
    }
    if (errno == EACCES) {
      throw MailboxError(Errc::System,
              "no permission to open " + pname + " (mailbox segments are mode 0600: "
              "every process must run as the same user)");
    }
    throw_errno("shm_open " + pname, errno);
  }
  // A creator sizes the object right after creating it and marks it ready last: wait for both.
  const uint64_t deadline = monotonic_ms() + ready_timeout_ms;
  uint64_t size = 0;
  for (;;) {
    struct stat sb{};
    if (::fstat(fd, &sb) != 0) {
      const int err = errno;
      ::close(fd);
      throw_errno("fstat " + pname, err);
    }
    size = static_cast<uint64_t>(sb.st_size);
    if (size >= sizeof(SegmentHeader)) {
      break;
    }
    if (monotonic_ms() >= deadline) {
      ::close(fd);
      if (size == 0) {
        throw MailboxError(Errc::NotReady,
                "segment " + pname + " was never initialised (its creator may have died)");
      }
      throw MailboxError(Errc::Corrupt,
              "segment " + pname + " is too small (" + std::to_string(size) +
              " bytes) to be a mailbox");
    }
    sleep_ms(1);
  }
  void * p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    ::close(fd);
    throw_errno("mmap " + pname, err);
  }
  std::shared_ptr<Segment> seg(new Segment());
  seg->name_ = pname;
  seg->fd_ = fd;
  seg->base_ = static_cast<uint8_t *>(p);
  seg->size_ = size;
  SegmentHeader * h = seg->header();
  for (;;) {
    if (h->magic != 0 && h->magic != kMagic) {
      break;  // not ours at all: check_header says so
    }
    const uint32_t state = load32_acquire(&h->state);
    if (state == static_cast<uint32_t>(SegmentState::Retired)) {
      throw MailboxError(Errc::Retired, "segment " + pname + " was retired by its owner");
    }
    if (state != static_cast<uint32_t>(SegmentState::Initializing)) {
      break;
    }
    if (monotonic_ms() >= deadline) {
      throw MailboxError(Errc::NotReady,
              "segment " + pname + " was never marked ready (its creator may have died)");
    }
    sleep_ms(1);
  }
  const std::string problem = check_header(*h, size, kind);
  if (!problem.empty()) {
    const bool mismatch = problem.rfind("kind ", 0) == 0;
    throw MailboxError(mismatch ? Errc::LayoutMismatch : Errc::Corrupt,
            "refusing segment " + pname + ": " + problem);
  }
  if (load32_acquire(&h->state) != static_cast<uint32_t>(SegmentState::Ready)) {
    throw MailboxError(Errc::Corrupt,
            "refusing segment " + pname + ": invalid state word " + std::to_string(h->state));
  }
  seg->liveness_enabled_ = h->pid_namespace == pid_namespace_id();
  return seg;
}

Segment::~Segment()
{
  gpu_.reset();
  if (base_ != nullptr) {
    ::munmap(base_, size_);
  }
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

SegmentGeometry Segment::geometry() const noexcept
{
  const SegmentHeader * h = header();
  SegmentGeometry g;
  g.kind = static_cast<SegmentKind>(h->kind);
  g.capacity = h->capacity;
  g.payload_bytes = h->payload_bytes;
  g.stride = h->stride;
  g.data_offset = h->data_offset;
  g.total_bytes = h->total_bytes;
  g.policy = static_cast<Policy>(h->policy);
  return g;
}

bool Segment::retired() const noexcept
{
  return load32_acquire(&header()->state) == static_cast<uint32_t>(SegmentState::Retired);
}

void Segment::retire() noexcept
{
  store32_release(&header()->state, static_cast<uint32_t>(SegmentState::Retired));
  detail::fetch_add32(&header()->notify, 1);
  futex_wake_all(&header()->notify);
}

bool Segment::register_with_gpu()
{
  if (gpu_) {
    return true;
  }
  if (!cuda_available()) {
    return false;
  }
  gpu_ = std::make_unique<GpuRegistration>(base_, size_);
  return true;
}

bool Segment::gpu_registered() const noexcept {return gpu_ != nullptr;}

void * Segment::device_pointer(const void * host) const noexcept
{
  if (!gpu_) {
    return nullptr;
  }
  const auto off = static_cast<const uint8_t *>(host) - base_;
  if (off < 0 || static_cast<uint64_t>(off) >= size_) {
    return nullptr;
  }
  return static_cast<uint8_t *>(gpu_->device_base()) + off;
}

void Segment::notify_commit() noexcept
{
  SegmentHeader * h = header();
  detail::fence_seq_cst();
  if (detail::load32_relaxed(&h->waiters) != 0) {
    detail::fetch_add32(&h->notify, 1);
    futex_wake_all(&h->notify);
  }
}

bool Segment::wait_commit(uint64_t timeout_ns, const std::function<bool ()> & ready)
{
  SegmentHeader * h = header();
  const uint64_t deadline = monotonic_ns() + timeout_ns;
  for (;;) {
    if (ready()) {
      return true;
    }
    const uint64_t now = monotonic_ns();
    if (now >= deadline || retired()) {
      return ready();
    }
    detail::fetch_add32(&h->waiters, 1);
    const uint32_t seen = detail::load32_acquire(&h->notify);
    bool ok = ready();
    if (!ok) {
      // GPU producers cannot wake a futex: poll in short slices while any may push.
      uint64_t slice = deadline - now;
      const uint64_t cap = detail::load32_relaxed(&h->device_producers) != 0 ?
        200000ull : 50000000ull;
      if (slice > cap) {
        slice = cap;
      }
      futex_wait(&h->notify, seen, slice);
    }
    detail::fetch_sub32(&h->waiters, 1);
    if (ok) {
      return true;
    }
  }
}

uint32_t register_participant(
  Segment & seg, uint64_t token, const std::function<void (uint32_t)> & on_reclaim)
{
  uint64_t * tokens = seg.participant_tokens();
  for (uint32_t i = 0; i < kMaxParticipants; ++i) {
    uint64_t expected = 0;
    if (detail::load_acquire(&tokens[i]) == 0 && detail::cas(&tokens[i], expected, token)) {
      return i;
    }
  }
  if (seg.liveness_enabled()) {
    for (uint32_t i = 0; i < kMaxParticipants; ++i) {
      uint64_t old = detail::load_acquire(&tokens[i]);
      if (old != 0 && !token_alive(old) && detail::cas(&tokens[i], old, token)) {
        on_reclaim(i);
        return i;
      }
    }
  }
  throw MailboxError(Errc::TooManyParticipants,
          "segment " + seg.name() + " already has " + std::to_string(kMaxParticipants) +
          " live producers/writers");
}

void unregister_participant(Segment & seg, uint32_t index, uint64_t token) noexcept
{
  uint64_t expected = token;
  detail::cas(&seg.participant_tokens()[index], expected, 0);
}

}  // namespace sage::mailbox
