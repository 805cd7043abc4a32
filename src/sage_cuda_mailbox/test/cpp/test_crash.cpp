// Faults: participants killed (SIGKILL) in the middle of an operation, in other processes.
#include <sched.h>
#include <signal.h>

#include <cstring>
#include <random>
#include <vector>

#include "gtest_compat.hpp"
#include "sage_cuda_mailbox/detail/stress_record.hpp"
#include "sage_cuda_mailbox/error.hpp"
#include "sage_cuda_mailbox/ftm.hpp"
#include "sage_cuda_mailbox/pbm.hpp"
#include "sage_cuda_mailbox/process.hpp"
#include "test_util.hpp"

using namespace sage::mailbox;  // NOLINT: test file
using test_util::Pipe;
using test_util::ShmName;

namespace
{

constexpr uint32_t kRec = 64;

// Pop everything available, checking every record; returns the number of good records.
uint64_t drain(PbmConsumer & c, uint64_t * bad, std::vector<uint64_t> * counters_of_tag = nullptr)
{
  std::vector<uint8_t> buf(kRec);
  uint64_t good = 0;
  uint32_t len = 0;
  while (c.try_pop(buf.data(), kRec, &len) == PopStatus::Ok) {
    detail::StressHeader h{};
    if (detail::stress_check(buf.data(), len, &h)) {
      ++good;
      if (counters_of_tag != nullptr) {
        counters_of_tag->push_back(h.counter);
      }
    } else {
      ++*bad;
    }
  }
  return good;
}

}  // namespace

TEST(Crash, producer_killed_mid_write_does_not_wedge_consumers)
{
  ShmName name("pbm_kill_loan");
  auto pbm = Pbm::create(name, PbmConfig{kRec, 16, Policy::Reject});
  PbmConsumer consumer(pbm);
  Pipe ready;
  const pid_t child = test_util::spawn([&] {
        auto mine = Pbm::attach(name);
        PbmProducer producer(mine);
        PushStatus st{};
        uint8_t * p = producer.loan(&st);
        std::memset(p, 0xAB, kRec / 2);  // half a record, then "crash"
        const char c = 'r';
        ready.send(&c, 1);
        ::pause();
        return 0;
      });
  char c = 0;
  ASSERT_TRUE(ready.recv(&c, 1));
  EXPECT_EQ(test_util::kill_and_reap(child), 128 + SIGKILL);
  PbmProducer survivor(pbm);
  std::vector<uint8_t> rec(kRec);
  for (uint64_t i = 0; i < 40; ++i) {  // more than the ring: needs the dead slot recycled
    detail::stress_make(rec.data(), 7, i, kRec);
    PushStatus st = survivor.try_push(rec.data(), kRec);
    for (int spin = 0; st == PushStatus::Full && spin < 1000; ++spin) {
      uint64_t bad = 0;
      drain(consumer, &bad);
      st = survivor.try_push(rec.data(), kRec);
    }
    ASSERT_EQ(st, PushStatus::Ok);
  }
  uint64_t bad = 0;
  drain(consumer, &bad);
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(consumer.stats().delivered, 40u);
  EXPECT_EQ(consumer.stats().abandoned, 1u);
}

TEST(Crash, producers_killed_at_random_moments_never_corrupt_or_wedge)
{
  ShmName name("pbm_kill_random");
  auto pbm = Pbm::create(name, PbmConfig{kRec, 64, Policy::Overwrite});
  PbmConsumer consumer(pbm);
  std::mt19937 rng(1234);
  uint64_t bad = 0;
  uint64_t good = 0;
  for (int round = 0; round < 12; ++round) {
    Pipe started;
    const pid_t child = test_util::spawn([&] {
          auto mine = Pbm::attach(name);
          PbmProducer producer(mine);
          std::vector<uint8_t> rec(kRec);
          const char c = 's';
          started.send(&c, 1);
          for (uint64_t i = 0;; ++i) {
            detail::stress_make(rec.data(), 100 + round, i, kRec);
            producer.try_push(rec.data(), kRec);
          }
          return 0;
        });
    char c = 0;
    ASSERT_TRUE(started.recv(&c, 1));
    ::usleep(200 + rng() % 3000);
    test_util::kill_and_reap(child);
    good += drain(consumer, &bad);
  }
  // A live producer still gets every record through after all those deaths.
  PbmProducer survivor(pbm);
  std::vector<uint8_t> rec(kRec);
  for (uint64_t i = 0; i < 10; ++i) {
    detail::stress_make(rec.data(), 1, i, kRec);
    ASSERT_EQ(survivor.try_push(rec.data(), kRec), PushStatus::Ok);
  }
  std::vector<uint64_t> tail;
  std::vector<uint8_t> buf(kRec);
  uint32_t len = 0;
  while (consumer.try_pop(buf.data(), kRec, &len) == PopStatus::Ok) {
    detail::StressHeader h{};
    ASSERT_TRUE(detail::stress_check(buf.data(), len, &h));
    if (h.tag == 1) {
      tail.push_back(h.counter);
    }
  }
  EXPECT_EQ(bad, 0u);
  EXPECT_GT(good, 0u);
  ASSERT_EQ(tail.size(), 10u);
  EXPECT_EQ(tail.back(), 9u);
}

TEST(Crash, reject_policy_producers_killed_at_random_lose_nothing_they_committed)
{
  ShmName name("pbm_kill_reject");
  auto pbm = Pbm::create(name, PbmConfig{kRec, 32, Policy::Reject});
  PbmConsumer consumer(pbm);
  std::mt19937 rng(99);
  uint64_t bad = 0;
  for (int round = 0; round < 8; ++round) {
    Pipe started;
    const pid_t child = test_util::spawn([&] {
          auto mine = Pbm::attach(name);
          PbmProducer producer(mine);
          std::vector<uint8_t> rec(kRec);
          const char c = 's';
          started.send(&c, 1);
          for (uint64_t i = 0;; ) {
            detail::stress_make(rec.data(), 1, i, kRec);
            if (producer.try_push(rec.data(), kRec) == PushStatus::Ok) {
              ++i;
            } else {
              sched_yield();
            }
          }
          return 0;
        });
    char c = 0;
    ASSERT_TRUE(started.recv(&c, 1));
    std::vector<uint64_t> counters;
    const uint64_t until = monotonic_ns() + (500 + rng() % 3000) * 1000ull;
    while (monotonic_ns() < until) {
      drain(consumer, &bad, &counters);
    }
    test_util::kill_and_reap(child);
    drain(consumer, &bad, &counters);
    // Each round's producer counts from 0: what it committed arrives in order, without gaps.
    for (size_t i = 0; i < counters.size(); ++i) {
      ASSERT_EQ(counters[i], i);
    }
  }
  EXPECT_EQ(bad, 0u);
}

TEST(Crash, a_dead_consumer_stops_holding_reject_producers_back)
{
  ShmName name("pbm_dead_consumer");
  auto pbm = Pbm::create(name, PbmConfig{kRec, 8, Policy::Reject});
  Pipe ready;
  const pid_t child = test_util::spawn([&] {
        auto mine = Pbm::attach(name);
        PbmConsumer consumer(mine);
        const char c = 'r';
        ready.send(&c, 1);
        ::pause();
        return 0;
      });
  char c = 0;
  ASSERT_TRUE(ready.recv(&c, 1));
  PbmProducer producer(pbm);
  std::vector<uint8_t> rec(kRec);
  for (uint64_t i = 0; i < 8; ++i) {
    detail::stress_make(rec.data(), 1, i, kRec);
    ASSERT_EQ(producer.try_push(rec.data(), kRec), PushStatus::Ok);
  }
  EXPECT_EQ(producer.try_push(rec.data(), kRec), PushStatus::Full);  // alive but not reading
  test_util::kill_and_reap(child);
  PushStatus st = PushStatus::Full;
  const uint64_t deadline = monotonic_ns() + 2000000000ull;
  while (st == PushStatus::Full && monotonic_ns() < deadline) {
    st = producer.try_push(rec.data(), kRec);
    ::usleep(1000);
  }
  EXPECT_EQ(st, PushStatus::Ok);
  EXPECT_EQ(pbm->stats().consumers, 0u);
}

TEST(Crash, dead_producers_free_their_table_entries)
{
  ShmName name("pbm_table");
  auto pbm = Pbm::create(name, PbmConfig{kRec, 8, Policy::Reject});
  Pipe ready;
  const pid_t child = test_util::spawn([&] {
        auto mine = Pbm::attach(name);
        std::vector<std::unique_ptr<PbmProducer>> all;
        for (uint32_t i = 0; i < kMaxParticipants; ++i) {
          all.push_back(std::make_unique<PbmProducer>(mine));
        }
        const char c = 'r';
        ready.send(&c, 1);
        ::pause();
        return 0;
      });
  char c = 0;
  ASSERT_TRUE(ready.recv(&c, 1));
  EXPECT_THROW(PbmProducer none(pbm), MailboxError);
  test_util::kill_and_reap(child);
  EXPECT_NO_THROW(PbmProducer reclaimed(pbm));
}

TEST(Crash, writer_killed_mid_frame_never_shows_the_half_frame)
{
  ShmName name("ftm_kill_writer");
  auto ftm = Ftm::create(name, FtmConfig{2, 48});
  TensorSpec spec;
  spec.shape = {4, 4, 3};
  spec.encoding = "rgb8";
  std::vector<uint8_t> good(48, 0x11);
  Descriptor kept;
  {
    FtmWriter writer(ftm);
    kept = writer.write(good.data(), spec);
  }
  Pipe ready;
  const pid_t child = test_util::spawn([&] {
        auto mine = Ftm::attach(name);
        FtmWriter writer(mine);
        uint8_t * p = writer.loan(48);
        std::memset(p, 0xEE, 20);
        const char c = 'r';
        ready.send(&c, 1);
        ::pause();
        return 0;
      });
  char c = 0;
  ASSERT_TRUE(ready.recv(&c, 1));
  FtmReader reader(ftm);
  // While the writer is alive and mid-write, its slot is simply not readable.
  EXPECT_EQ(ftm->latest()->sequence, kept.sequence);
  test_util::kill_and_reap(child);
  FtmWriter next(ftm);
  FtmLease hold = reader.acquire(kept.slot, kept.sequence);  // the other slot stays intact
  const Descriptor d = next.write(good.data(), spec);        // takes the dead writer's slot over
  EXPECT_NE(d.slot, kept.slot);
  EXPECT_EQ(ftm->stats().abandoned, 1u);
  FtmLease lease = reader.acquire(d.slot, d.sequence);
  EXPECT_EQ(std::memcmp(lease.data(), good.data(), 48), 0);
  EXPECT_EQ(std::memcmp(hold.data(), good.data(), 48), 0);
}

TEST(Crash, reader_killed_holding_a_lease_frees_the_slot_when_it_expires)
{
  ShmName name("ftm_kill_reader");
  auto ftm = Ftm::create(name, FtmConfig{2, 48});
  FtmWriter writer(ftm);
  TensorSpec spec;
  spec.shape = {48};
  std::vector<uint8_t> data(48, 1);
  const Descriptor a = writer.write(data.data(), spec);
  const Descriptor b = writer.write(data.data(), spec);
  Pipe ready;
  const pid_t child = test_util::spawn([&] {
        FtmReader reader(name.str());
        FtmLease la = reader.acquire(a.slot, a.sequence, 100);
        FtmLease lb = reader.acquire(b.slot, b.sequence, 100);
        const char c = 'r';
        ready.send(&c, 1);
        ::pause();
        return 0;
      });
  char c = 0;
  ASSERT_TRUE(ready.recv(&c, 1));
  test_util::kill_and_reap(child);
  bool busy = false;
  try {
    writer.write(data.data(), spec);
  } catch (const MailboxError & e) {
    busy = e.code() == Errc::Busy;
  }
  EXPECT_TRUE(busy);  // the leases outlive their reader until they expire
  ::usleep(150000);
  EXPECT_NO_THROW(writer.write(data.data(), spec));
}
