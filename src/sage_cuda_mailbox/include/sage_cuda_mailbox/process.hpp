// Process identity and liveness, used to recover from participants that die mid-operation.
#pragma once

#include <cstdint>

namespace sage::mailbox
{

/// Token of the calling process: pid (22 bits) | start time in clock ticks (42 bits) << 22.
/// The start time guards against pid reuse. Never 0.
uint64_t self_token();

/// Whether the process named by `token` still runs (false for zombies and reused pids).
/// Only meaningful for processes in the caller's PID namespace.
bool token_alive(uint64_t token);

/// Pid encoded in a token.
inline uint32_t token_pid(uint64_t token) {return static_cast<uint32_t>(token & 0x3FFFFFu);}

/// Inode of the caller's PID namespace (0 when unknown).
uint64_t pid_namespace_id();

/// CLOCK_MONOTONIC in ns / ms (shared by every process on the machine).
uint64_t monotonic_ns();
uint64_t monotonic_ms();
/// CLOCK_REALTIME in ns.
uint64_t realtime_ns();

/// Incremented in the child after every fork(); handles compare it to refuse use across fork.
uint64_t fork_generation();

/// Block on a futex word in shared memory until it differs from `expected` or the timeout
/// (ns) passes. Returns immediately on platforms without futexes.
void futex_wait(uint32_t * word, uint32_t expected, uint64_t timeout_ns);
/// Wake every waiter on a futex word in shared memory.
void futex_wake_all(uint32_t * word);

}  // namespace sage::mailbox
