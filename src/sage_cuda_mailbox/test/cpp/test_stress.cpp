// Cross-process stress: 4 producer processes x 2 consumer processes.
//
// Reject policy: every consumer receives every record exactly once, in per-producer order.
// Overwrite policy (small ring, large records, so laps and rewrites happen all the time): no
// consumer ever receives a torn or duplicated record.
// SAGE_MAILBOX_STRESS_RECORDS sets the records each producer pushes (default 1,000,000, so
// 4,000,000 records reach each of the 2 consumers under the reject policy).
#include <poll.h>
#include <sched.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "gtest_compat.hpp"
#include "sage_cuda_mailbox/detail/stress_record.hpp"
#include "sage_cuda_mailbox/pbm.hpp"
#include "sage_cuda_mailbox/process.hpp"
#include "test_util.hpp"

using namespace sage::mailbox;  // NOLINT: test file
using test_util::Pipe;
using test_util::ShmName;

namespace
{

constexpr uint32_t kProducers = 4;
constexpr uint32_t kConsumers = 2;

struct ConsumerResult
{
  uint64_t delivered;
  uint64_t corrupt;       // failed the record checksum: a torn or garbage record got through
  uint64_t out_of_order;  // reject: a producer's counter did not grow by exactly 1
  uint64_t duplicates;
  uint64_t lost;
  uint64_t torn_discarded;
  uint64_t abandoned;
  uint64_t per_producer[kProducers];
};

struct ProducerResult
{
  uint64_t pushed;
  uint64_t full;
  uint64_t busy;
};

// Consumer process: registers, says ready, pops until it has `expected` records (reject) or
// the parent says the producers are done and the ring is drained (overwrite).
int consumer_main(
  const std::string & name, uint32_t rec, bool reject, uint64_t expected, Pipe & ready,
  Pipe & done, Pipe & out)
{
  auto pbm = Pbm::attach(name);
  PbmConsumer consumer(pbm);
  const char c = 'r';
  ready.send(&c, 1);
  ConsumerResult r{};
  int64_t last[kProducers];
  for (auto & l : last) {
    l = -1;
  }
  std::vector<uint8_t> buf(rec);
  bool producers_done = false;
  uint64_t idle = 0;
  const uint64_t deadline = monotonic_ns() + 120ull * 1000000000ull;
  while (monotonic_ns() < deadline) {
    uint32_t len = 0;
    if (consumer.try_pop(buf.data(), rec, &len) != PopStatus::Ok) {
      if (reject && r.delivered >= expected) {
        break;
      }
      if (!reject && (++idle & 255) == 0) {
        if (producers_done) {
          break;  // drained after the producers finished
        }
        pollfd p{done.fds[0], POLLIN, 0};
        producers_done = ::poll(&p, 1, 0) > 0;
      }
      sched_yield();
      continue;
    }
    detail::StressHeader h{};
    if (!detail::stress_check(buf.data(), len, &h) || h.tag >= kProducers) {
      ++r.corrupt;
      continue;
    }
    ++r.delivered;
    ++r.per_producer[h.tag];
    const int64_t counter = static_cast<int64_t>(h.counter);
    if (counter <= last[h.tag]) {
      ++r.duplicates;
    } else if (reject ? counter != last[h.tag] + 1 : false) {
      ++r.out_of_order;
    }
    if (counter > last[h.tag]) {
      last[h.tag] = counter;
    }
  }
  const ConsumerStats s = consumer.stats();
  r.lost = s.lost;
  r.torn_discarded = s.torn;
  r.abandoned = s.abandoned;
  out.send(&r, sizeof r);
  return 0;
}

int producer_main(const std::string & name, uint32_t rec, uint32_t tag, uint64_t count, Pipe & out)
{
  auto pbm = Pbm::attach(name);
  PbmProducer producer(pbm);
  std::vector<uint8_t> buf(rec);
  ProducerResult r{};
  for (uint64_t i = 0; i < count; ) {
    detail::stress_make(buf.data(), tag, i, rec);
    const PushStatus st = producer.try_push(buf.data(), rec);
    if (st == PushStatus::Ok) {
      ++i;
      ++r.pushed;
    } else {
      if (st == PushStatus::Full) {
        ++r.full;
      } else {
        ++r.busy;
      }
      sched_yield();
    }
  }
  out.send(&r, sizeof r);
  return 0;
}

struct RunResult
{
  ConsumerResult consumers[kConsumers];
  ProducerResult producers[kProducers];
  double seconds;
};

RunResult run(const std::string & name, const PbmConfig & cfg, uint64_t total)
{
  auto pbm = Pbm::create(name, cfg);
  const bool reject = cfg.policy == Policy::Reject;
  const uint64_t per_producer = total / kProducers;
  std::vector<Pipe> ready(kConsumers);
  std::vector<Pipe> done(kConsumers);
  std::vector<Pipe> cout(kConsumers);
  std::vector<Pipe> pout(kProducers);
  std::vector<pid_t> consumers;
  std::vector<pid_t> producers;
  for (uint32_t i = 0; i < kConsumers; ++i) {
    consumers.push_back(test_util::spawn([&, i] {
        return consumer_main(name, cfg.record_size, reject, per_producer * kProducers, ready[i],
        done[i], cout[i]);
      }));
  }
  for (auto & p : ready) {
    char c = 0;
    p.recv(&c, 1);
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (uint32_t i = 0; i < kProducers; ++i) {
    producers.push_back(test_util::spawn([&, i] {
        return producer_main(name, cfg.record_size, i, per_producer, pout[i]);
      }));
  }
  RunResult rr{};
  for (uint32_t i = 0; i < kProducers; ++i) {
    pout[i].recv(&rr.producers[i], sizeof(ProducerResult));
    test_util::reap(producers[i]);
  }
  for (auto & d : done) {
    const char c = 'd';
    d.send(&c, 1);
  }
  for (uint32_t i = 0; i < kConsumers; ++i) {
    cout[i].recv(&rr.consumers[i], sizeof(ConsumerResult));
    test_util::reap(consumers[i]);
  }
  rr.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rr;
}

}  // namespace

TEST(Stress, reject_policy_delivers_every_record_exactly_once_to_every_consumer)
{
  ShmName name("stress_reject");
  const uint64_t per_producer = test_util::env_u64("SAGE_MAILBOX_STRESS_RECORDS", 1000000);
  const uint64_t total = per_producer * kProducers;
  const RunResult rr = run(name, PbmConfig{32, 4096, Policy::Reject}, total);
  std::printf("reject: %llu records x %u consumers in %.2f s (%.0f records/s pushed)\n",
    static_cast<unsigned long long>(per_producer * kProducers), kConsumers, rr.seconds,
    per_producer * kProducers / rr.seconds);
  for (const auto & p : rr.producers) {
    EXPECT_EQ(p.pushed, per_producer);
  }
  for (const auto & c : rr.consumers) {
    EXPECT_EQ(c.delivered, per_producer * kProducers);
    EXPECT_EQ(c.corrupt, 0u);
    EXPECT_EQ(c.duplicates, 0u);
    EXPECT_EQ(c.out_of_order, 0u);
    EXPECT_EQ(c.lost, 0u);
    EXPECT_EQ(c.torn_discarded, 0u);
    EXPECT_EQ(c.abandoned, 0u);
    for (uint32_t t = 0; t < kProducers; ++t) {
      EXPECT_EQ(c.per_producer[t], per_producer);
    }
  }
}

TEST(Stress, overwrite_policy_never_delivers_a_torn_or_repeated_record)
{
  ShmName name("stress_overwrite");
  // 4 KiB records in a 16-slot ring: a copy takes long enough that producers rewrite slots
  // while consumers read them, so the seqlock check is exercised, not just present.
  const uint64_t total =
    test_util::env_u64("SAGE_MAILBOX_STRESS_RECORDS", 1000000) / 4 / kProducers * kProducers;
  const RunResult rr = run(name, PbmConfig{4096, 16, Policy::Overwrite}, total);
  uint64_t torn = 0;
  for (const auto & c : rr.consumers) {
    torn += c.torn_discarded;
    EXPECT_EQ(c.corrupt, 0u);
    EXPECT_EQ(c.duplicates, 0u);
    EXPECT_GT(c.delivered, 0u);
    // Every ticket is accounted for: delivered, lapped (lost) or discarded as torn.
    EXPECT_EQ(c.delivered + c.lost + c.torn_discarded + c.abandoned, total);
  }
  std::printf("overwrite: %llu records in %.2f s; consumers got %llu and %llu, lost %llu and "
    "%llu, discarded %llu torn reads\n", static_cast<unsigned long long>(total), rr.seconds,
    static_cast<unsigned long long>(rr.consumers[0].delivered),
    static_cast<unsigned long long>(rr.consumers[1].delivered),
    static_cast<unsigned long long>(rr.consumers[0].lost),
    static_cast<unsigned long long>(rr.consumers[1].lost),
    static_cast<unsigned long long>(torn));
}
