// Helpers of the C++ tests: unique segment names, cleanup, fork-based child processes.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>

#include "sage_cuda_mailbox/segment.hpp"

namespace test_util
{

/// A segment name unique to this process and call; unlinked when the guard goes away.
class ShmName
{
public:
  explicit ShmName(const std::string & what)
  {
    static std::atomic<int> counter{0};
    name_ = "sage_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
      what;
  }
  ~ShmName() {sage::mailbox::Segment::unlink(name_);}
  const std::string & str() const {return name_;}
  operator const std::string &() const {return name_;}

private:
  std::string name_;
};

/// A pipe for one-byte hand-shakes and small results between parent and child.
struct Pipe
{
  int fds[2]{-1, -1};
  Pipe() {(void)::pipe(fds);}
  ~Pipe() {close_read(); close_write();}
  void close_read() {if (fds[0] >= 0) {::close(fds[0]); fds[0] = -1;}}
  void close_write() {if (fds[1] >= 0) {::close(fds[1]); fds[1] = -1;}}
  bool send(const void * p, size_t n)
  {
    return ::write(fds[1], p, n) == static_cast<ssize_t>(n);
  }
  bool recv(void * p, size_t n)
  {
    size_t got = 0;
    while (got < n) {
      const ssize_t r = ::read(fds[0], static_cast<char *>(p) + got, n - got);
      if (r <= 0) {
        return false;
      }
      got += static_cast<size_t>(r);
    }
    return true;
  }
};

/// Fork a child running `body` (its return value is the exit code; exceptions exit 99).
inline pid_t spawn(const std::function<int()> & body)
{
  const pid_t pid = ::fork();
  if (pid == 0) {
    int code = 99;
    try {
      code = body();
    } catch (...) {
      code = 99;
    }
    ::_exit(code);
  }
  return pid;
}

/// Wait for a child; returns its exit code, or 128 + signal number.
inline int reap(pid_t pid)
{
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) {
    return -1;
  }
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  return -1;
}

/// SIGKILL a child and reap it.
inline int kill_and_reap(pid_t pid)
{
  ::kill(pid, SIGKILL);
  return reap(pid);
}

inline uint64_t env_u64(const char * name, uint64_t fallback)
{
  const char * v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? std::strtoull(v, nullptr, 10) : fallback;
}

}  // namespace test_util
