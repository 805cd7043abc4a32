// PBM behaviour: order, policies, consumers, loans, bad input.
#include <sched.h>

#include <cstring>
#include <thread>
#include <vector>

#include "gtest_compat.hpp"
#include "sage_cuda_mailbox/detail/stress_record.hpp"
#include "sage_cuda_mailbox/error.hpp"
#include "sage_cuda_mailbox/pbm.hpp"
#include "sage_cuda_mailbox/process.hpp"
#include "test_util.hpp"

using namespace sage::mailbox;  // NOLINT: test file
using test_util::ShmName;

namespace
{

PushStatus push_u64(PbmProducer & p, uint64_t v)
{
  return p.try_push(&v, sizeof v);
}

bool pop_u64(PbmConsumer & c, uint64_t * v)
{
  uint8_t buf[64];
  uint32_t len = 0;
  if (c.try_pop(buf, sizeof buf, &len) != PopStatus::Ok) {
    return false;
  }
  std::memcpy(v, buf, sizeof *v);
  return len == sizeof *v;
}

}  // namespace

TEST(Pbm, records_arrive_in_order_with_their_bytes)
{
  ShmName name("order");
  auto pbm = Pbm::create(name, PbmConfig{8, 16, Policy::Reject});
  PbmConsumer consumer(pbm);
  PbmProducer producer(pbm);
  for (uint64_t i = 0; i < 40; ++i) {
    ASSERT_EQ(push_u64(producer, i * 3), PushStatus::Ok);
    uint64_t v = 0;
    ASSERT_TRUE(pop_u64(consumer, &v));
    EXPECT_EQ(v, i * 3);
  }
  uint64_t v = 0;
  EXPECT_FALSE(pop_u64(consumer, &v));
  EXPECT_EQ(consumer.stats().delivered, 40u);
}

TEST(Pbm, short_records_keep_their_length)
{
  ShmName name("len");
  auto pbm = Pbm::create(name, PbmConfig{32, 4, Policy::Reject});
  PbmConsumer consumer(pbm);
  PbmProducer producer(pbm);
  ASSERT_EQ(producer.try_push("abc", 3), PushStatus::Ok);
  char buf[32];
  uint32_t len = 0;
  ASSERT_EQ(consumer.try_pop(buf, sizeof buf, &len), PopStatus::Ok);
  EXPECT_EQ(len, 3u);
  EXPECT_EQ(std::string(buf, len), "abc");
}

TEST(Pbm, wrong_sizes_are_refused)
{
  ShmName name("size");
  auto pbm = Pbm::create(name, PbmConfig{16, 4, Policy::Reject});
  PbmProducer producer(pbm);
  PbmConsumer consumer(pbm);
  char big[17] = {};
  EXPECT_THROW(producer.try_push(big, 17), MailboxError);
  EXPECT_THROW(producer.try_push(big, 0), MailboxError);
  char small[8];
  uint32_t len = 0;
  EXPECT_THROW(consumer.try_pop(small, sizeof small, &len), MailboxError);
  try {
    producer.try_push(big, 17);
  } catch (const MailboxError & e) {
    EXPECT_EQ(e.code(), Errc::WrongSize);
  }
}

TEST(Pbm, reject_policy_refuses_when_the_slowest_consumer_is_a_ring_behind)
{
  ShmName name("reject");
  auto pbm = Pbm::create(name, PbmConfig{8, 4, Policy::Reject});
  PbmConsumer fast(pbm);
  auto slow = std::make_unique<PbmConsumer>(pbm);
  PbmProducer producer(pbm);
  for (uint64_t i = 0; i < 4; ++i) {
    ASSERT_EQ(push_u64(producer, i), PushStatus::Ok);
  }
  EXPECT_EQ(push_u64(producer, 4), PushStatus::Full);
  uint64_t v = 0;
  while (pop_u64(fast, &v)) {
  }
  EXPECT_EQ(push_u64(producer, 4), PushStatus::Full);  // the slow one still holds the ring
  EXPECT_EQ(pbm->stats().rejected, 2u);
  ASSERT_TRUE(pop_u64(*slow, &v));
  EXPECT_EQ(v, 0u);
  EXPECT_EQ(push_u64(producer, 4), PushStatus::Ok);
  slow.reset();  // a consumer that leaves stops holding producers back
  for (uint64_t i = 5; i < 8; ++i) {
    while (pop_u64(fast, &v)) {
    }
    EXPECT_EQ(push_u64(producer, i), PushStatus::Ok);
  }
}

TEST(Pbm, without_consumers_reject_policy_never_refuses)
{
  ShmName name("noconsumer");
  auto pbm = Pbm::create(name, PbmConfig{8, 4, Policy::Reject});
  PbmProducer producer(pbm);
  for (uint64_t i = 0; i < 100; ++i) {
    ASSERT_EQ(push_u64(producer, i), PushStatus::Ok);
  }
}

TEST(Pbm, overwrite_policy_laps_a_stalled_consumer_and_counts_the_loss)
{
  ShmName name("overwrite");
  auto pbm = Pbm::create(name, PbmConfig{8, 8, Policy::Overwrite});
  PbmConsumer consumer(pbm);
  PbmProducer producer(pbm);
  for (uint64_t i = 0; i < 100; ++i) {
    ASSERT_EQ(push_u64(producer, i), PushStatus::Ok);  // never refused, never blocked
  }
  std::vector<uint64_t> got;
  uint64_t v = 0;
  while (pop_u64(consumer, &v)) {
    got.push_back(v);
  }
  ASSERT_FALSE(got.empty());
  EXPECT_LE(got.size(), 8u);
  EXPECT_EQ(got.back(), 99u);
  for (size_t i = 1; i < got.size(); ++i) {
    EXPECT_EQ(got[i], got[i - 1] + 1);
  }
  const ConsumerStats s = consumer.stats();
  EXPECT_EQ(s.delivered + s.lost + s.torn, 100u);
  EXPECT_GE(s.lost, 92u);
}

TEST(Pbm, every_consumer_sees_every_record)
{
  ShmName name("broadcast");
  auto pbm = Pbm::create(name, PbmConfig{8, 64, Policy::Reject});
  std::vector<std::unique_ptr<PbmConsumer>> consumers;
  for (int i = 0; i < 5; ++i) {
    consumers.push_back(std::make_unique<PbmConsumer>(pbm));
  }
  PbmProducer producer(pbm);
  for (uint64_t i = 0; i < 50; ++i) {
    ASSERT_EQ(push_u64(producer, i), PushStatus::Ok);
  }
  for (auto & c : consumers) {
    for (uint64_t i = 0; i < 50; ++i) {
      uint64_t v = 0;
      ASSERT_TRUE(pop_u64(*c, &v));
      EXPECT_EQ(v, i);
    }
  }
}

TEST(Pbm, a_late_consumer_starts_at_the_head_or_at_the_oldest_record)
{
  ShmName name("late");
  auto pbm = Pbm::create(name, PbmConfig{8, 8, Policy::Overwrite});
  PbmProducer producer(pbm);
  for (uint64_t i = 0; i < 20; ++i) {
    push_u64(producer, i);
  }
  PbmConsumer now(pbm);
  PbmConsumer oldest(pbm, true);
  uint64_t v = 0;
  EXPECT_FALSE(pop_u64(now, &v));
  ASSERT_TRUE(pop_u64(oldest, &v));
  EXPECT_EQ(v, 12u);
}

TEST(Pbm, aborted_loan_is_skipped_and_sent_loan_is_delivered)
{
  ShmName name("loan");
  auto pbm = Pbm::create(name, PbmConfig{16, 8, Policy::Reject});
  PbmConsumer consumer(pbm);
  PbmProducer producer(pbm);
  PushStatus st{};
  uint8_t * p = producer.loan(&st);
  ASSERT_EQ(st, PushStatus::Ok);
  std::memcpy(p, "dropped", 7);
  producer.abort();
  p = producer.loan(&st);
  ASSERT_TRUE(p != nullptr);
  std::memcpy(p, "kept", 4);
  EXPECT_EQ(producer.send(4), PushStatus::Ok);
  char buf[16];
  uint32_t len = 0;
  ASSERT_EQ(consumer.try_pop(buf, sizeof buf, &len), PopStatus::Ok);
  EXPECT_EQ(std::string(buf, len), "kept");
  EXPECT_EQ(consumer.stats().abandoned, 1u);
}

TEST(Pbm, an_open_loan_holds_back_consumers_until_sent)
{
  ShmName name("loanorder");
  auto pbm = Pbm::create(name, PbmConfig{8, 8, Policy::Reject});
  PbmConsumer consumer(pbm);
  PbmProducer a(pbm);
  PbmProducer b(pbm);
  PushStatus st{};
  uint8_t * p = a.loan(&st);
  ASSERT_EQ(push_u64(b, 2), PushStatus::Ok);
  uint64_t v = 0;
  EXPECT_FALSE(pop_u64(consumer, &v));  // ticket 0 is still being written by a live producer
  uint64_t one = 1;
  std::memcpy(p, &one, 8);
  ASSERT_EQ(a.send(8), PushStatus::Ok);
  ASSERT_TRUE(pop_u64(consumer, &v));
  EXPECT_EQ(v, 1u);
  ASSERT_TRUE(pop_u64(consumer, &v));
  EXPECT_EQ(v, 2u);
}

TEST(Pbm, consumers_are_limited_and_freed_on_close)
{
  ShmName name("limit");
  auto pbm = Pbm::create(name, PbmConfig{8, 8, Policy::Reject});
  std::vector<std::unique_ptr<PbmConsumer>> all;
  for (uint32_t i = 0; i < kMaxConsumers; ++i) {
    all.push_back(std::make_unique<PbmConsumer>(pbm));
  }
  EXPECT_EQ(pbm->stats().consumers, kMaxConsumers);
  EXPECT_THROW(PbmConsumer extra(pbm), MailboxError);
  all.pop_back();
  EXPECT_NO_THROW(PbmConsumer again(pbm));
}

TEST(Pbm, pop_wait_wakes_on_a_push_from_another_thread)
{
  ShmName name("wait");
  auto pbm = Pbm::create(name, PbmConfig{8, 8, Policy::Reject});
  PbmConsumer consumer(pbm);
  std::thread t([&] {
      PbmProducer producer(pbm);
      ::usleep(20000);
      push_u64(producer, 77);
    });
  uint8_t buf[8];
  uint32_t len = 0;
  const PopStatus st = consumer.pop_wait(buf, sizeof buf, &len, 5000000000ull);
  t.join();
  ASSERT_EQ(st, PopStatus::Ok);
  uint64_t v = 0;
  std::memcpy(&v, buf, 8);
  EXPECT_EQ(v, 77u);
  EXPECT_EQ(consumer.pop_wait(buf, sizeof buf, &len, 1000000ull), PopStatus::Empty);
}

TEST(Pbm, handles_made_before_fork_refuse_to_work_in_the_child)
{
  ShmName name("fork");
  auto pbm = Pbm::create(name, PbmConfig{8, 8, Policy::Reject});
  PbmProducer producer(pbm);
  const pid_t pid = test_util::spawn([&] {
        try {
          push_u64(producer, 1);
        } catch (const MailboxError & e) {
          return e.code() == Errc::UsedAfterFork ? 0 : 2;
        }
        return 1;
      });
  EXPECT_EQ(test_util::reap(pid), 0);
  EXPECT_EQ(push_u64(producer, 1), PushStatus::Ok);  // the parent's handle still works
}

TEST(Pbm, threads_with_overwrite_policy_never_deliver_a_torn_record)
{
  ShmName name("torn_threads");
  auto pbm = Pbm::create(name, PbmConfig{512, 8, Policy::Overwrite});
  PbmConsumer consumer(pbm);
  std::atomic<bool> stop{false};
  std::thread producer_thread([&] {
      PbmProducer producer(pbm);
      std::vector<uint8_t> rec(512);
      for (uint64_t i = 0; !stop.load(); ++i) {
        detail::stress_make(rec.data(), 1, i, 512);
        producer.try_push(rec.data(), 512);
      }
    });
  std::vector<uint8_t> buf(512);
  uint64_t good = 0;
  uint64_t bad = 0;
  int64_t last = -1;
  const uint64_t deadline = monotonic_ns() + 300000000ull;
  while (monotonic_ns() < deadline) {
    uint32_t len = 0;
    if (consumer.try_pop(buf.data(), 512, &len) == PopStatus::Ok) {
      detail::StressHeader h{};
      if (detail::stress_check(buf.data(), len, &h) && static_cast<int64_t>(h.counter) > last) {
        ++good;
        last = static_cast<int64_t>(h.counter);
      } else {
        ++bad;
      }
    } else {
      sched_yield();
    }
  }
  stop = true;
  producer_thread.join();
  EXPECT_EQ(bad, 0u);
  EXPECT_GT(good, 0u);
}
