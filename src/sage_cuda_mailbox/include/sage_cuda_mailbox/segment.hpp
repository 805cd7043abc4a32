// A named POSIX shared-memory segment holding one mailbox (PBM or FTM).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "sage_cuda_mailbox/layout.hpp"

namespace sage::mailbox
{

/// How `create` treats an existing segment of the same name.
enum class OpenMode {
  Create,          ///< fail with AlreadyExists if the name is taken
  CreateOrAttach,  ///< attach if the existing segment has the same geometry, else LayoutMismatch
  Replace,         ///< retire and unlink an existing segment, then create a fresh one
};

/// Geometry of a segment, computed by the PBM/FTM classes from their configuration.
struct SegmentGeometry
{
  SegmentKind kind{SegmentKind::Pbm};
  uint32_t capacity{0};
  uint64_t payload_bytes{0};
  uint64_t stride{0};
  uint64_t data_offset{0};
  uint64_t total_bytes{0};
  Policy policy{Policy::Reject};
};

class GpuRegistration;

/// One mapping of a segment. Shared by the handles (producers, consumers, ...) made from it.
class Segment
{
public:
  using Initializer = std::function<void (Segment &)>;

  /// Create (or attach to, or replace, per `mode`) the segment `name` with geometry `geo`.
  /// `init` runs on a freshly created segment before it is marked ready.
  /// Throws MailboxError: InvalidArgument, AlreadyExists, LayoutMismatch, Corrupt, System.
  static std::shared_ptr<Segment> create(
    const std::string & name, const SegmentGeometry & geo, OpenMode mode,
    const Initializer & init);

  /// Attach to an existing segment of kind `kind`, validating its header. Waits up to
  /// `ready_timeout_ms` for a creator that is still initialising it.
  /// Throws MailboxError: NotFound, Corrupt, LayoutMismatch, NotReady, Retired, System.
  static std::shared_ptr<Segment> attach(
    const std::string & name, SegmentKind kind, uint64_t ready_timeout_ms = 1000);

  /// Remove the name (mappings stay valid until unmapped). False if it did not exist.
  static bool unlink(const std::string & name);
  /// Whether a segment with this name exists.
  static bool exists(const std::string & name);
  /// Validate a segment name and return its POSIX form ("/name"). Throws InvalidArgument.
  static std::string normalize_name(const std::string & name);

  ~Segment();
  Segment(const Segment &) = delete;
  Segment & operator=(const Segment &) = delete;

  const std::string & name() const noexcept {return name_;}
  bool created() const noexcept {return created_;}
  uint8_t * base() const noexcept {return base_;}
  uint64_t size() const noexcept {return size_;}
  SegmentHeader * header() const noexcept {return reinterpret_cast<SegmentHeader *>(base_);}
  uint64_t * participant_tokens() const noexcept
  {
    return reinterpret_cast<ParticipantTable *>(base_ + kParticipantsOffset)->token;
  }
  template <class T>
  T * control() const noexcept {return reinterpret_cast<T *>(base_ + kControlOffset);}
  uint8_t * slot(uint64_t index) const noexcept
  {
    return base_ + header()->data_offset + index * header()->stride;
  }
  SegmentGeometry geometry() const noexcept;

  /// Whether the owner retired this segment (it was replaced or closed): reattach by name.
  bool retired() const noexcept;
  /// Mark the segment retired (readers holding it reattach by name).
  void retire() noexcept;
  /// Whether liveness checks of other processes are meaningful (same PID namespace).
  bool liveness_enabled() const noexcept {return liveness_enabled_;}

  /// Register the mapping with the GPU (cudaHostRegister, mapped + portable), once.
  /// Returns false when no CUDA runtime/device exists (the CPU path keeps working).
  bool register_with_gpu();
  /// Device pointer of a host address inside this segment, or nullptr when not registered.
  void * device_pointer(const void * host) const noexcept;
  bool gpu_registered() const noexcept;

  /// Bump the futex word and wake waiters, if any (call after a commit).
  void notify_commit() noexcept;
  /// Block until a commit is notified, the timeout passes, or `ready()` returns true.
  /// `ready` is evaluated after registering as a waiter, so no wake-up is lost.
  bool wait_commit(uint64_t timeout_ns, const std::function<bool ()> & ready);

private:
  Segment() = default;
  static std::shared_ptr<Segment> map_existing(
    const std::string & pname, SegmentKind kind, uint64_t ready_timeout_ms);

  std::string name_;
  bool created_{false};
  bool liveness_enabled_{true};
  int fd_{-1};
  uint8_t * base_{nullptr};
  uint64_t size_{0};
  std::unique_ptr<GpuRegistration> gpu_;
};

/// Register a participant (producer/writer) token in the table; returns its index.
/// Dead entries are reclaimed; `on_reclaim(index)` runs first so leftovers can be cleaned.
/// Throws MailboxError(TooManyParticipants).
uint32_t register_participant(
  Segment & seg, uint64_t token, const std::function<void (uint32_t)> & on_reclaim);
void unregister_participant(Segment & seg, uint32_t index, uint64_t token) noexcept;

/// Geometry validation shared by the PBM and FTM classes.
uint64_t round_up(uint64_t value, uint64_t multiple) noexcept;

}  // namespace sage::mailbox
