// Errors of the mailbox library: one code enum, one exception type carrying it.
//
// Hot-path outcomes that are part of normal operation (a full ring, an empty ring) are status
// enums returned by the operation (see pbm.hpp); exceptions are for refusals the caller must
// fix or handle: bad input, a mismatched or corrupt segment, a stale descriptor.
#pragma once

#include <stdexcept>
#include <string>

namespace sage::mailbox
{

enum class Errc : int {
  InvalidArgument = 1,     ///< a size, count, name or option is out of range
  NotFound = 2,            ///< no segment with that name
  AlreadyExists = 3,       ///< exclusive create of an existing segment
  LayoutMismatch = 4,      ///< the segment exists with another kind/geometry/version
  Corrupt = 5,             ///< bad magic, checksum or size: not a (valid) mailbox segment
  NotReady = 6,            ///< the creator never finished initialising the segment
  Retired = 7,             ///< the segment was replaced or closed by its owner
  TooManyParticipants = 8, ///< every producer/consumer entry is taken by a live process
  System = 9,              ///< an OS call failed (errno in the message)
  WrongSize = 10,          ///< a record or tensor does not fit the mailbox
  WrongType = 11,          ///< a dtype, shape or encoding is refused
  BadDescriptor = 12,      ///< a slot index or sequence that cannot be valid
  Stale = 13,              ///< the slot no longer holds the described frame
  Busy = 14,               ///< every slot is leased or being written (nothing blocks)
  Abandoned = 15,          ///< this write was taken over because its writer looked dead
  UsedAfterFork = 16,      ///< a handle made before fork() was used in the child
  CudaUnavailable = 17,    ///< no CUDA runtime or device: use the CPU path
  Cuda = 18,               ///< a CUDA call failed
};

const char * errc_name(Errc code) noexcept;

class MailboxError : public std::runtime_error
{
public:
  MailboxError(Errc code, const std::string & what)
  : std::runtime_error(what), code_(code) {}
  Errc code() const noexcept {return code_;}

private:
  Errc code_;
};

}  // namespace sage::mailbox
