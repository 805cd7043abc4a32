// Self-checking records used by the stress tests and benchmarks (C++ and Python): a record
// names its producer and counter and carries a checksum and a fill pattern derived from them,
// so a consumer can tell a torn or corrupt record from a good one.
#pragma once

#include <cstdint>
#include <cstring>

namespace sage::mailbox::detail
{

struct StressHeader
{
  uint32_t tag;       // producer id
  uint32_t length;    // record length in bytes
  uint64_t counter;   // per-producer sequence, from 0
  uint64_t check;     // mix(tag, counter, length)
};
static_assert(sizeof(StressHeader) == 24, "StressHeader layout");

inline uint64_t stress_mix(uint32_t tag, uint64_t counter, uint32_t length)
{
  uint64_t x = counter * 0x9E3779B97F4A7C15ull ^ (static_cast<uint64_t>(tag) << 32) ^ length;
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  return x;
}

inline uint8_t stress_fill(uint32_t tag, uint64_t counter, uint32_t i)
{
  return static_cast<uint8_t>(counter * 131u + tag * 7u + i);
}

/// Write a stress record of `length` (>= sizeof(StressHeader)) bytes into `out`.
inline void stress_make(void * out, uint32_t tag, uint64_t counter, uint32_t length)
{
  StressHeader h{tag, length, counter, stress_mix(tag, counter, length)};
  std::memcpy(out, &h, sizeof h);
  auto * p = static_cast<uint8_t *>(out);
  for (uint32_t i = sizeof h; i < length; ++i) {
    p[i] = stress_fill(tag, counter, i);
  }
}

/// Check a stress record; fills `*h` with its header. False if torn or corrupt.
inline bool stress_check(const void * data, uint32_t length, StressHeader * h)
{
  if (length < sizeof(StressHeader)) {
    return false;
  }
  std::memcpy(h, data, sizeof *h);
  if (h->length != length || h->check != stress_mix(h->tag, h->counter, length)) {
    return false;
  }
  const auto * p = static_cast<const uint8_t *>(data);
  for (uint32_t i = sizeof(StressHeader); i < length; ++i) {
    if (p[i] != stress_fill(h->tag, h->counter, i)) {
      return false;
    }
  }
  return true;
}

}  // namespace sage::mailbox::detail
