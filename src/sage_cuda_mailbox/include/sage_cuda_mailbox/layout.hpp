// Shared-memory layout of a mailbox segment (identical for every process and for the GPU).
//
//   offset 0      SegmentHeader      (256 B: immutable geometry + checksum, then mutable state)
//   offset 256    ParticipantTable   (512 B: one liveness token per producer / writer)
//   offset 768    PbmControl | FtmControl
//   data_offset   slot 0, slot 1, ... (each `stride` bytes)
//
// Every field is plain POD; fields written by more than one party are only accessed through
// detail/atomics.hpp. Bump kLayoutVersion on any change: attach refuses other versions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace sage::mailbox
{

constexpr uint64_t kMagic = 0x31584F424C49414DULL;  // "MAILBOX1" read as little-endian bytes
constexpr uint32_t kLayoutVersion = 1;
constexpr uint32_t kMaxParticipants = 64;  // 6 bits in the PBM/FTM slot state words
constexpr uint32_t kMaxConsumers = 32;
constexpr uint32_t kMaxDims = 8;
constexpr uint32_t kLeasesPerSlot = 8;
constexpr uint32_t kEncodingChars = 16;
constexpr uint64_t kPageBytes = 4096;

enum class SegmentKind : uint32_t { Pbm = 1, Ftm = 2 };

/// PBM behaviour when the ring is full.
enum class Policy : uint32_t {
  Reject = 0,     ///< push fails with Full until every consumer has read the oldest record
  Overwrite = 1,  ///< push overwrites the oldest record; consumers detect laps and torn reads
};

/// Segment lifecycle (SegmentHeader::state).
enum class SegmentState : uint32_t { Initializing = 0, Ready = 1, Retired = 2 };

struct SegmentHeader
{
  // Immutable after creation; covered by `checksum`.
  uint64_t magic;
  uint32_t version;
  uint32_t kind;            // SegmentKind
  uint64_t total_bytes;     // size of the whole segment
  uint64_t data_offset;     // offset of slot 0 (page aligned)
  uint64_t stride;          // bytes from one slot to the next
  uint64_t payload_bytes;   // PBM: record size; FTM: max bytes of one tensor
  uint32_t capacity;        // number of slots
  uint32_t policy;          // Policy (PBM only)
  uint64_t created_ns;      // CLOCK_REALTIME at creation
  uint64_t pid_namespace;   // inode of the creator's PID namespace (liveness checks need it)
  uint64_t checksum;        // FNV-1a over the bytes before this field
  uint8_t reserved0[128 - 80];
  // Mutable (atomics).
  uint32_t state;             // SegmentState
  uint32_t device_producers;  // >0 while a GPU may push (waiters then poll in short slices)
  uint32_t notify;            // futex word: bumped on a commit when someone waits
  uint32_t waiters;           // number of threads blocked on `notify`
  uint8_t reserved1[256 - 144];
};
static_assert(sizeof(SegmentHeader) == 256, "SegmentHeader layout");
static_assert(offsetof(SegmentHeader, checksum) == 72, "checksum offset");
static_assert(offsetof(SegmentHeader, state) == 128, "state offset");

/// One liveness token per registered producer/writer: pid (22 bits) | start time << 22.
struct ParticipantTable
{
  uint64_t token[kMaxParticipants];
};
static_assert(sizeof(ParticipantTable) == 512, "ParticipantTable layout");

/// A 64-bit counter alone on its cache line (no false sharing between hot counters).
struct alignas(64) PaddedU64
{
  uint64_t value;
  uint8_t pad[56];
};
static_assert(sizeof(PaddedU64) == 64, "PaddedU64 layout");

/// One PBM consumer: its cursor (next ticket to read) and counters, on its own cache line.
struct alignas(64) ConsumerEntry
{
  uint64_t cursor;     // next ticket this consumer reads
  uint64_t token;      // liveness token of the owner; 0 = free entry
  uint64_t delivered;  // records returned
  uint64_t lost;       // records skipped because producers lapped this consumer (overwrite)
  uint64_t torn;       // reads discarded because the slot was rewritten during the copy
  uint64_t abandoned;  // records skipped because their producer died mid-write
  uint64_t reserved[2];
};
static_assert(sizeof(ConsumerEntry) == 64, "ConsumerEntry layout");

struct PbmControl
{
  PaddedU64 head;       // next ticket to claim (producers advance it, helping each other)
  PaddedU64 tail_hint;  // a lower bound of every consumer cursor (reject policy)
  PaddedU64 rejected;   // pushes refused because the ring was full
  PaddedU64 abandoned;  // records abandoned because their producer died
  ConsumerEntry consumers[kMaxConsumers];
};
static_assert(sizeof(PbmControl) == 256 + 64 * kMaxConsumers, "PbmControl layout");

/// PBM slot header; the record follows it. `seq` packs ticket, producer index and state.
struct PbmSlotHeader
{
  uint64_t seq;
  uint32_t length;
  uint32_t reserved;
};
static_assert(sizeof(PbmSlotHeader) == 16, "PbmSlotHeader layout");

/// Element type of a tensor held in an FTM slot (values are stable: they live in segments).
enum class DType : uint32_t {
  Invalid = 0, U8 = 1, I8 = 2, U16 = 3, I16 = 4, U32 = 5, I32 = 6, U64 = 7, I64 = 8,
  F16 = 9, F32 = 10, F64 = 11, Bool = 12,
};

/// Metadata of the tensor or frame held in an FTM slot.
struct TensorMeta
{
  uint64_t sequence;                 // unique per commit within a segment
  double stamp;                      // capture time, seconds (the producer's clock)
  uint64_t nbytes;                   // bytes of the payload that the tensor spans
  uint32_t dtype;                    // DType
  uint32_t ndim;
  int64_t shape[kMaxDims];
  int64_t strides[kMaxDims];         // in bytes
  uint32_t width;                    // frames: pixels per row (0 for plain tensors)
  uint32_t height;                   // frames: rows
  uint32_t step;                     // frames: bytes per row
  uint32_t reserved;
  char encoding[kEncodingChars];     // frames: "rgb8", ...; NUL padded
};
static_assert(sizeof(TensorMeta) == 192, "TensorMeta layout");

/// FTM slot header; the payload starts kFtmSlotHeaderBytes after the slot start.
struct FtmSlotHeader
{
  uint64_t state;                    // EMPTY | WRITING(writer index) | COMMITTED(sequence)
  uint64_t write_start_ms;           // CLOCK_MONOTONIC ms when the current write began
  uint64_t leases[kLeasesPerSlot];   // reader leases: pid << 42 | expiry ms; 0 = free
  TensorMeta meta;
};
static_assert(sizeof(FtmSlotHeader) == 272, "FtmSlotHeader layout");
constexpr uint64_t kFtmSlotHeaderBytes = 512;  // payload alignment (GPU and SIMD friendly)

struct FtmControl
{
  PaddedU64 next_sequence;  // sequence of the next commit
  PaddedU64 next_slot;      // round-robin hint for the next slot to write
  PaddedU64 busy;           // loans refused because every slot was leased or being written
  PaddedU64 abandoned;      // writes taken over from dead writers
};

constexpr uint64_t kParticipantsOffset = sizeof(SegmentHeader);
constexpr uint64_t kControlOffset = kParticipantsOffset + sizeof(ParticipantTable);

static_assert(std::is_standard_layout<SegmentHeader>::value, "POD layout");
static_assert(std::is_trivially_copyable<TensorMeta>::value, "POD layout");

}  // namespace sage::mailbox
