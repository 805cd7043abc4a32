#include "sage_cuda_mailbox/process.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

namespace sage::mailbox
{
namespace
{

constexpr uint64_t kPidMask = 0x3FFFFFull;             // 22 bits: Linux pid_max <= 2^22
constexpr uint64_t kStartMask = (1ull << 42) - 1;      // 42 bits of clock ticks

struct ProcStat
{
  bool found{false};
  char state{'?'};
  uint64_t start_time{0};
};

// Fields of /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces and ')', so
// parse from the last ')'. Field 3 is the state, field 22 the start time in clock ticks.
ProcStat read_proc_stat(uint32_t pid)
{
  ProcStat out;
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%u/stat", pid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return out;
  }
  char buf[1024];
  const ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0) {
    return out;
  }
  buf[n] = '\0';
  const char * p = std::strrchr(buf, ')');
  if (p == nullptr || p[1] == '\0') {
    return out;
  }
  p += 2;  // ") "
  out.found = true;
  out.state = *p;
  int field = 3;
  while (*p != '\0' && field < 22) {
    if (*p == ' ') {
      ++field;
    }
    ++p;
  }
  if (field == 22) {
    out.start_time = std::strtoull(p, nullptr, 10);
  }
  return out;
}

bool proc_available()
{
  static const bool available = ::access("/proc/self/stat", R_OK) == 0;
  return available;
}

std::atomic<uint64_t> g_fork_generation{0};

void on_fork_child() {g_fork_generation.fetch_add(1, std::memory_order_relaxed);}

struct ForkHook
{
  ForkHook() {::pthread_atfork(nullptr, nullptr, &on_fork_child);}
};
const ForkHook g_fork_hook;

uint64_t clock_ns(clockid_t id)
{
  timespec ts{};
  ::clock_gettime(id, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

uint64_t self_token()
{
  // Reading /proc costs microseconds: compute once per process (fork() makes a new one).
  static std::atomic<uint64_t> cached_token{0};
  static std::atomic<uint64_t> cached_generation{~0ull};
  const uint64_t gen = fork_generation();
  if (cached_generation.load(std::memory_order_acquire) == gen) {
    const uint64_t t = cached_token.load(std::memory_order_relaxed);
    if (t != 0) {
      return t;
    }
  }
  const auto pid = static_cast<uint32_t>(::getpid());
  const ProcStat st = read_proc_stat(pid);
  const uint64_t token =
    (static_cast<uint64_t>(pid) & kPidMask) | ((st.start_time & kStartMask) << 22);
  cached_token.store(token, std::memory_order_relaxed);
  cached_generation.store(gen, std::memory_order_release);
  return token;
}

bool token_alive(uint64_t token)
{
  if (token == 0) {
    return false;
  }
  const uint32_t pid = token_pid(token);
  if (!proc_available()) {
    return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
  }
  const ProcStat st = read_proc_stat(pid);
  if (!st.found || st.state == 'Z' || st.state == 'X' || st.state == 'x') {
    return false;
  }
  const uint64_t start = token >> 22;
  return start == 0 || start == (st.start_time & kStartMask);
}

uint64_t pid_namespace_id()
{
  struct stat sb{};
  if (::stat("/proc/self/ns/pid", &sb) != 0) {
    return 0;
  }
  return static_cast<uint64_t>(sb.st_ino);
}

uint64_t monotonic_ns() {return clock_ns(CLOCK_MONOTONIC);}
uint64_t monotonic_ms() {return clock_ns(CLOCK_MONOTONIC) / 1000000ull;}
uint64_t realtime_ns() {return clock_ns(CLOCK_REALTIME);}

uint64_t fork_generation() {return g_fork_generation.load(std::memory_order_relaxed);}

void futex_wait(uint32_t * word, uint32_t expected, uint64_t timeout_ns)
{
#if defined(__linux__)
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(timeout_ns / 1000000000ull);
  ts.tv_nsec = static_cast<long>(timeout_ns % 1000000000ull);
  // Not FUTEX_PRIVATE: the word lives in memory shared between processes.
  ::syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, nullptr, 0);
#else
  (void)word;
  (void)expected;
  timespec ts{0, static_cast<long>(timeout_ns < 1000000ull ? timeout_ns : 1000000ull)};
  ::nanosleep(&ts, nullptr);
#endif
}

void futex_wake_all(uint32_t * word)
{
#if defined(__linux__)
  ::syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
#else
  (void)word;
#endif
}

}  // namespace sage::mailbox
