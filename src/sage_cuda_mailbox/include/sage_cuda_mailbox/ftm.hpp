// FTM: focus tensor mailbox. Slots holding one tensor or frame each, with metadata, read in
// place (zero copy) under a lease.
//
// Rules that keep a reader's view stable:
//  * a writer claims a slot (CAS of its state word to WRITING) only when no unexpired lease is
//    held on it, and re-checks the leases after the claim (Dekker hand-shake, seq_cst), backing
//    off if a reader got in first; so a leased slot is never rewritten;
//  * a reader takes a lease, then checks that the slot still holds the described sequence; a
//    descriptor whose slot moved on is refused as Stale;
//  * a lease expires (default 1 s) so a reader that dies or stalls cannot pin a slot forever;
//  * a writer killed mid-write leaves a WRITING state naming a dead writer: the next writer
//    takes the slot over; readers never see the half-written data (it is not COMMITTED).
// Without a lease, read_copy() copies under a seqlock check (Stale if rewritten meanwhile).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sage_cuda_mailbox/layout.hpp"
#include "sage_cuda_mailbox/segment.hpp"

namespace sage::mailbox
{

struct FtmConfig
{
  uint32_t slots{4};            ///< 2 .. 1024
  uint64_t max_bytes{1 << 20};  ///< bytes of the largest tensor (1 .. 1 GiB)
};

/// Where a committed tensor lives: what a FrameRef message carries.
struct Descriptor
{
  uint32_t slot{0};
  uint64_t sequence{0};
};

/// Description of a tensor to commit.
struct TensorSpec
{
  DType dtype{DType::U8};
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  ///< bytes; empty = C-contiguous
  double stamp{0.0};
  std::string encoding;          ///< frames: "rgb8", ...; empty for plain tensors
  uint32_t width{0};
  uint32_t height{0};
  uint32_t step{0};
};

/// Bytes of one element of `dtype` (0 for Invalid).
uint32_t dtype_size(DType dtype) noexcept;
const char * dtype_name(DType dtype) noexcept;
/// Parse a dtype name ("uint8", "float32", ...). Throws MailboxError(WrongType).
DType dtype_from_name(const std::string & name);
/// Check a spec and return the bytes it spans. Throws MailboxError(WrongType / WrongSize).
uint64_t validate_spec(const TensorSpec & spec, uint64_t max_bytes);

struct FtmStats
{
  uint64_t next_sequence{0};
  uint64_t busy{0};       ///< loans refused (every slot leased or being written)
  uint64_t abandoned{0};  ///< writes taken over from dead writers
};

class Ftm
{
public:
  static std::shared_ptr<Ftm> create(
    const std::string & name, const FtmConfig & config, OpenMode mode = OpenMode::Create);
  static std::shared_ptr<Ftm> attach(const std::string & name, uint64_t ready_timeout_ms = 1000);
  static SegmentGeometry geometry(const FtmConfig & config);

  const std::string & name() const noexcept {return seg_->name();}
  FtmConfig config() const noexcept;
  FtmStats stats() const noexcept;
  Segment & segment() const noexcept {return *seg_;}
  FtmSlotHeader * slot_header(uint32_t slot) const noexcept
  {
    return reinterpret_cast<FtmSlotHeader *>(seg_->slot(slot));
  }
  uint8_t * payload(uint32_t slot) const noexcept {return seg_->slot(slot) + kFtmSlotHeaderBytes;}

  /// Descriptor of the newest committed tensor, if any.
  std::optional<Descriptor> latest() const noexcept;
  /// Wait until a tensor newer than `after_sequence` is committed (true) or the timeout passes.
  bool wait_newer(uint64_t after_sequence, uint64_t timeout_ns);

private:
  explicit Ftm(std::shared_ptr<Segment> seg) : seg_(std::move(seg)) {}
  std::shared_ptr<Segment> seg_;
};

/// A writer. Not thread safe: one per thread (up to 64 per segment).
class FtmWriter
{
public:
  explicit FtmWriter(std::shared_ptr<Ftm> ftm);
  ~FtmWriter();
  FtmWriter(const FtmWriter &) = delete;
  FtmWriter & operator=(const FtmWriter &) = delete;

  /// Claim a free slot for `nbytes` and return its payload to fill in place.
  /// Throws MailboxError: WrongSize (nbytes > max_bytes), Busy (every slot leased or being
  /// written; never blocks), UsedAfterFork.
  uint8_t * loan(uint64_t nbytes);
  /// Publish the loaned slot. Throws WrongType/WrongSize (bad spec), Abandoned.
  Descriptor commit(const TensorSpec & spec);
  /// Give the loaned slot up (it becomes empty).
  void abort() noexcept;
  bool has_loan() const noexcept {return loan_slot_ >= 0;}
  uint64_t loan_bytes() const noexcept {return loan_bytes_;}

  /// loan + copy + commit of a C-contiguous tensor described by `spec`.
  Descriptor write(const void * data, const TensorSpec & spec);

  Ftm & ftm() const noexcept {return *ftm_;}

private:
  void check_fork() const;
  std::shared_ptr<Ftm> ftm_;
  uint64_t token_{0};
  uint32_t widx_{0};
  uint64_t fork_gen_{0};
  int64_t loan_slot_{-1};
  uint64_t loan_prev_state_{0};
  uint64_t loan_bytes_{0};
};

/// A read lease: the slot is not rewritten while the lease is held and unexpired.
class FtmLease
{
public:
  FtmLease() = default;
  FtmLease(FtmLease && other) noexcept;
  FtmLease & operator=(FtmLease && other) noexcept;
  ~FtmLease();

  bool held() const noexcept {return ftm_ != nullptr;}
  const uint8_t * data() const noexcept {return data_;}
  const TensorMeta & meta() const noexcept {return meta_;}
  Descriptor descriptor() const noexcept {return {slot_, meta_.sequence};}
  const std::shared_ptr<Ftm> & ftm() const noexcept {return ftm_;}
  /// Whether the view is still guaranteed: lease unexpired and slot unchanged.
  bool valid() const noexcept;
  /// Extend the lease by `lease_ms` from now. False if it had already expired or been lost.
  bool renew(uint64_t lease_ms) noexcept;
  /// Give the lease back (the data pointer must not be used afterwards).
  void release() noexcept;
  uint64_t expiry_ms() const noexcept;

private:
  friend class FtmReader;
  std::shared_ptr<Ftm> ftm_;
  uint32_t slot_{0};
  uint32_t entry_{0};
  uint64_t word_{0};
  const uint8_t * data_{nullptr};
  TensorMeta meta_{};
};

/// A reader. Follows the segment by name if the owner replaces it.
class FtmReader
{
public:
  explicit FtmReader(std::shared_ptr<Ftm> ftm);
  /// Attach by name (lazily re-attaches when the segment is replaced).
  explicit FtmReader(const std::string & name);

  /// Lease the tensor `(slot, sequence)` for `lease_ms`.
  /// Throws MailboxError: BadDescriptor (slot out of range, sequence 0), Stale (the slot moved
  /// on or is being rewritten), Busy (every lease entry of the slot is taken).
  FtmLease acquire(uint32_t slot, uint64_t sequence, uint64_t lease_ms = 1000);
  /// Copy the tensor out (no lease) into `out` (capacity bytes); returns its metadata.
  /// Throws BadDescriptor, Stale, WrongSize (capacity too small).
  TensorMeta read_copy(uint32_t slot, uint64_t sequence, void * out, uint64_t capacity);

  std::shared_ptr<Ftm> ftm();

private:
  void refresh();
  std::string name_;
  std::shared_ptr<Ftm> ftm_;
};

}  // namespace sage::mailbox
