// sage_cuda_mailbox._mailbox.testing: native loops for the stress tests and the benchmark.
// They run with the GIL released, so Python test processes measure the mailbox, not Python.
#include <pybind11/pybind11.h>

#include <sched.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "bindings.hpp"
#include "sage_cuda_mailbox/detail/stress_record.hpp"
#include "sage_cuda_mailbox/error.hpp"
#include "sage_cuda_mailbox/pbm.hpp"
#include "sage_cuda_mailbox/process.hpp"

namespace py = pybind11;

namespace sage::mailbox::python
{

namespace
{

constexpr uint32_t kMaxTags = 64;

py::dict produce_stress(const PyPbmProducer & self, uint32_t tag, uint64_t count, double timeout_s)
{
  PbmProducer & p = self.get();
  const uint32_t rs = p.pbm().config().record_size;
  if (rs < sizeof(detail::StressHeader)) {
    throw MailboxError(Errc::WrongSize, "stress records need at least 24 bytes");
  }
  std::vector<uint8_t> buf(rs);
  uint64_t pushed = 0;
  uint64_t full = 0;
  uint64_t busy = 0;
  {
    py::gil_scoped_release nogil;
    const uint64_t deadline = monotonic_ns() + static_cast<uint64_t>(timeout_s * 1e9);
    while (pushed < count) {
      detail::stress_make(buf.data(), tag, pushed, rs);
      const PushStatus st = p.try_push(buf.data(), rs);
      if (st == PushStatus::Ok) {
        ++pushed;
        continue;
      }
      (st == PushStatus::Full ? full : busy) += 1;
      if (((full + busy) & 1023) == 0 && monotonic_ns() > deadline) {
        break;
      }
      sched_yield();
    }
  }
  py::dict d;
  d["pushed"] = pushed;
  d["full"] = full;
  d["busy"] = busy;
  return d;
}

py::dict consume_stress(
  const PyPbmConsumer & self, uint32_t producers, uint64_t expected_total, double timeout_s,
  double idle_s)
{
  PbmConsumer & c = self.get();
  const uint32_t rs = c.pbm().config().record_size;
  const bool reject = c.pbm().config().policy == Policy::Reject;
  if (producers == 0 || producers > kMaxTags) {
    throw MailboxError(Errc::InvalidArgument, "producers must be 1..64");
  }
  std::vector<uint8_t> buf(rs);
  std::vector<int64_t> last(producers, -1);
  std::vector<uint64_t> per(producers, 0);
  uint64_t delivered = 0;
  uint64_t corrupt = 0;
  uint64_t duplicates = 0;
  uint64_t gaps = 0;
  {
    py::gil_scoped_release nogil;
    const uint64_t deadline = monotonic_ns() + static_cast<uint64_t>(timeout_s * 1e9);
    uint64_t last_data = monotonic_ns();
    uint64_t spins = 0;
    for (;;) {
      uint32_t len = 0;
      if (c.try_pop(buf.data(), rs, &len) != PopStatus::Ok) {
        if (reject && delivered >= expected_total) {
          break;
        }
        if ((++spins & 255) == 0) {
          const uint64_t now = monotonic_ns();
          if (now > deadline || (!reject && delivered > 0 &&
            now - last_data > static_cast<uint64_t>(idle_s * 1e9)))
          {
            break;
          }
        }
        sched_yield();
        continue;
      }
      last_data = monotonic_ns();
      detail::StressHeader h{};
      if (!detail::stress_check(buf.data(), len, &h) || h.tag >= producers) {
        ++corrupt;
        continue;
      }
      ++delivered;
      ++per[h.tag];
      const auto counter = static_cast<int64_t>(h.counter);
      if (counter <= last[h.tag]) {
        ++duplicates;
      } else {
        if (reject && counter != last[h.tag] + 1) {
          ++gaps;
        }
        last[h.tag] = counter;
      }
    }
  }
  const ConsumerStats s = c.stats();
  py::dict d;
  d["delivered"] = delivered;
  d["corrupt"] = corrupt;
  d["duplicates"] = duplicates;
  d["gaps"] = gaps;
  d["lost"] = s.lost;
  d["torn"] = s.torn;
  d["abandoned"] = s.abandoned;
  py::list pl;
  for (uint64_t v : per) {
    pl.append(v);
  }
  d["per_producer"] = pl;
  return d;
}

double rate(uint64_t n, std::chrono::steady_clock::duration d)
{
  const double s = std::chrono::duration<double>(d).count();
  return s > 0 ? static_cast<double>(n) / s : 0.0;
}

py::dict native_rates(const std::string & name, uint32_t record_size, uint64_t count)
{
  using clock = std::chrono::steady_clock;
  if (record_size < sizeof(detail::StressHeader)) {
    throw MailboxError(Errc::WrongSize, "record_size must be >= 24");
  }
  double push_rate = 0;
  double pop_rate = 0;
  double pipelined = 0;
  {
    py::gil_scoped_release nogil;
    std::vector<uint8_t> rec(record_size);
    detail::stress_make(rec.data(), 0, 0, record_size);
    std::vector<uint8_t> out(record_size);
    // Push: one producer, no consumer (nothing can refuse it).
    {
      Segment::unlink(name);
      auto pbm = Pbm::create(name, PbmConfig{record_size, 4096, Policy::Reject});
      PbmProducer p(pbm);
      const auto t0 = clock::now();
      for (uint64_t i = 0; i < count; ++i) {
        p.try_push(rec.data(), record_size);
      }
      push_rate = rate(count, clock::now() - t0);
    }
    // Pop: fill the ring, time only the pops, repeat.
    {
      Segment::unlink(name);
      const uint32_t cap = 4096;
      auto pbm = Pbm::create(name, PbmConfig{record_size, cap, Policy::Reject});
      PbmConsumer c(pbm);
      PbmProducer p(pbm);
      uint64_t popped = 0;
      clock::duration spent{};
      while (popped < count) {
        for (uint32_t i = 0; i < cap; ++i) {
          p.try_push(rec.data(), record_size);
        }
        const auto t0 = clock::now();
        uint32_t len = 0;
        while (c.try_pop(out.data(), record_size, &len) == PopStatus::Ok) {
          ++popped;
        }
        spent += clock::now() - t0;
      }
      pop_rate = rate(popped, spent);
    }
    // Pipelined: a producer thread and a consumer thread through a 4096-slot reject ring.
    {
      Segment::unlink(name);
      auto pbm = Pbm::create(name, PbmConfig{record_size, 4096, Policy::Reject});
      PbmConsumer c(pbm);
      const auto t0 = clock::now();
      std::thread producer([&] {
          PbmProducer p(pbm);
          for (uint64_t i = 0; i < count; ) {
            if (p.try_push(rec.data(), record_size) == PushStatus::Ok) {
              ++i;
            } else {
              sched_yield();
            }
          }
        });
      uint64_t got = 0;
      uint32_t len = 0;
      while (got < count) {
        if (c.try_pop(out.data(), record_size, &len) == PopStatus::Ok) {
          ++got;
        } else {
          sched_yield();
        }
      }
      producer.join();
      pipelined = rate(count, clock::now() - t0);
    }
    Segment::unlink(name);
  }
  py::dict d;
  d["record_size"] = record_size;
  d["records"] = count;
  d["push_per_s"] = push_rate;
  d["pop_per_s"] = pop_rate;
  d["pipelined_per_s"] = pipelined;
  return d;
}

}  // namespace

void bind_testing(py::module_ & m)
{
  py::module_ t = m.def_submodule("testing", "Native loops for stress tests and benchmarks.");
  t.def("produce_stress", &produce_stress, py::arg("producer"), py::arg("tag"), py::arg("count"),
    py::arg("timeout_s") = 60.0);
  t.def("consume_stress", &consume_stress, py::arg("consumer"), py::arg("producers"),
    py::arg("expected_total"), py::arg("timeout_s") = 60.0, py::arg("idle_s") = 1.0);
  t.def("native_rates", &native_rates, py::arg("name"), py::arg("record_size") = 32,
    py::arg("count") = 1000000);
  t.def("make_record", [](uint32_t tag, uint64_t counter, uint32_t length) {
      if (length < sizeof(detail::StressHeader)) {
        throw MailboxError(Errc::WrongSize, "length must be >= 24");
      }
      std::string s(length, '\0');
      detail::stress_make(s.data(), tag, counter, length);
      return py::bytes(s);
    }, py::arg("tag"), py::arg("counter"), py::arg("length"));
  t.def("check_record", [](py::bytes data) -> py::object {
      const std::string s = data;
      detail::StressHeader h{};
      if (!detail::stress_check(s.data(), static_cast<uint32_t>(s.size()), &h)) {
        return py::none();
      }
      return py::make_tuple(h.tag, h.counter);
    }, py::arg("data"));
}

}  // namespace sage::mailbox::python
