// FTM behaviour: metadata, zero-copy leases, stale descriptors, busy slots, bad input.
#include <cstring>
#include <numeric>
#include <thread>
#include <vector>

#include "gtest_compat.hpp"
#include "sage_cuda_mailbox/error.hpp"
#include "sage_cuda_mailbox/ftm.hpp"
#include "sage_cuda_mailbox/process.hpp"
#include "test_util.hpp"

using namespace sage::mailbox;  // NOLINT: test file
using test_util::ShmName;

namespace
{

TensorSpec rgb(uint32_t h, uint32_t w, double stamp = 1.5)
{
  TensorSpec s;
  s.dtype = DType::U8;
  s.shape = {h, w, 3};
  s.stamp = stamp;
  s.encoding = "rgb8";
  return s;
}

std::vector<uint8_t> frame_bytes(size_t n, uint8_t seed)
{
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) {
    v[i] = static_cast<uint8_t>(seed + i * 7);
  }
  return v;
}

Errc code_of(const std::function<void()> & fn)
{
  try {
    fn();
  } catch (const MailboxError & e) {
    return e.code();
  }
  return static_cast<Errc>(0);
}

}  // namespace

TEST(Ftm, a_written_frame_is_read_in_place_with_its_metadata)
{
  ShmName name("roundtrip");
  auto ftm = Ftm::create(name, FtmConfig{3, 48 * 64 * 3});
  FtmWriter writer(ftm);
  const auto bytes = frame_bytes(48 * 64 * 3, 3);
  const Descriptor d = writer.write(bytes.data(), rgb(48, 64, 12.25));
  FtmReader reader(name.str());
  FtmLease lease = reader.acquire(d.slot, d.sequence);
  ASSERT_TRUE(lease.held());
  const TensorMeta & m = lease.meta();
  EXPECT_EQ(m.sequence, d.sequence);
  EXPECT_EQ(m.stamp, 12.25);
  EXPECT_EQ(m.ndim, 3u);
  EXPECT_EQ(m.shape[0], 48);
  EXPECT_EQ(m.shape[1], 64);
  EXPECT_EQ(m.shape[2], 3);
  EXPECT_EQ(m.strides[0], 64 * 3);
  EXPECT_EQ(m.strides[2], 1);
  EXPECT_EQ(m.width, 64u);
  EXPECT_EQ(m.height, 48u);
  EXPECT_EQ(m.step, 192u);
  EXPECT_EQ(std::string(m.encoding), "rgb8");
  EXPECT_EQ(std::memcmp(lease.data(), bytes.data(), bytes.size()), 0);
  // Zero copy: the reader's pointer is the slot's payload in the shared segment.
  EXPECT_TRUE(lease.data() == reader.ftm()->payload(d.slot));
  EXPECT_TRUE(lease.valid());
}

TEST(Ftm, sequences_grow_and_slots_rotate)
{
  ShmName name("rotate");
  auto ftm = Ftm::create(name, FtmConfig{4, 64});
  FtmWriter writer(ftm);
  TensorSpec s;
  s.dtype = DType::F32;
  s.shape = {4, 4};
  std::vector<float> data(16, 1.0f);
  uint64_t last = 0;
  std::vector<uint32_t> slots;
  for (int i = 0; i < 8; ++i) {
    const Descriptor d = writer.write(data.data(), s);
    EXPECT_GT(d.sequence, last);
    last = d.sequence;
    slots.push_back(d.slot);
  }
  EXPECT_EQ(slots[0], slots[4]);
  EXPECT_NE(slots[0], slots[1]);
  EXPECT_EQ(ftm->latest()->sequence, last);
}

TEST(Ftm, a_descriptor_whose_slot_moved_on_is_stale)
{
  ShmName name("stale");
  auto ftm = Ftm::create(name, FtmConfig{2, 3 * 4 * 4});
  FtmWriter writer(ftm);
  const auto bytes = frame_bytes(48, 1);
  const Descriptor first = writer.write(bytes.data(), rgb(4, 4));
  writer.write(bytes.data(), rgb(4, 4));
  writer.write(bytes.data(), rgb(4, 4));  // reuses the first slot
  FtmReader reader(ftm);
  EXPECT_EQ(code_of([&] {reader.acquire(first.slot, first.sequence);}), Errc::Stale);
  std::vector<uint8_t> out(48);
  EXPECT_EQ(code_of([&] {reader.read_copy(first.slot, first.sequence, out.data(), 48);}),
    Errc::Stale);
}

TEST(Ftm, impossible_descriptors_are_refused)
{
  ShmName name("baddesc");
  auto ftm = Ftm::create(name, FtmConfig{2, 64});
  FtmReader reader(ftm);
  EXPECT_EQ(code_of([&] {reader.acquire(2, 5);}), Errc::BadDescriptor);
  EXPECT_EQ(code_of([&] {reader.acquire(0, 0);}), Errc::BadDescriptor);
  EXPECT_EQ(code_of([&] {reader.acquire(0, 5);}), Errc::Stale);  // empty slot
}

TEST(Ftm, a_leased_slot_is_never_rewritten)
{
  ShmName name("lease");
  auto ftm = Ftm::create(name, FtmConfig{3, 48});
  FtmWriter writer(ftm);
  const auto first_bytes = frame_bytes(48, 9);
  const Descriptor first = writer.write(first_bytes.data(), rgb(4, 4));
  FtmReader reader(ftm);
  FtmLease lease = reader.acquire(first.slot, first.sequence, 10000);
  for (int i = 0; i < 20; ++i) {
    const auto other = frame_bytes(48, static_cast<uint8_t>(100 + i));
    const Descriptor d = writer.write(other.data(), rgb(4, 4));
    EXPECT_NE(d.slot, first.slot);
  }
  EXPECT_TRUE(lease.valid());
  EXPECT_EQ(std::memcmp(lease.data(), first_bytes.data(), 48), 0);
  lease.release();
  bool reused = false;
  for (int i = 0; i < 3; ++i) {
    reused = reused || writer.write(first_bytes.data(), rgb(4, 4)).slot == first.slot;
  }
  EXPECT_TRUE(reused);
}

TEST(Ftm, every_slot_leased_makes_the_writer_busy_not_blocked)
{
  ShmName name("busy");
  auto ftm = Ftm::create(name, FtmConfig{2, 48});
  FtmWriter writer(ftm);
  FtmReader reader(ftm);
  const auto bytes = frame_bytes(48, 0);
  const Descriptor a = writer.write(bytes.data(), rgb(4, 4));
  const Descriptor b = writer.write(bytes.data(), rgb(4, 4));
  FtmLease la = reader.acquire(a.slot, a.sequence);
  FtmLease lb = reader.acquire(b.slot, b.sequence);
  EXPECT_EQ(code_of([&] {writer.write(bytes.data(), rgb(4, 4));}), Errc::Busy);
  EXPECT_EQ(ftm->stats().busy, 1u);
  lb.release();
  EXPECT_EQ(writer.write(bytes.data(), rgb(4, 4)).slot, b.slot);
}

TEST(Ftm, an_expired_lease_frees_the_slot)
{
  ShmName name("expiry");
  auto ftm = Ftm::create(name, FtmConfig{2, 48});
  FtmWriter writer(ftm);
  FtmReader reader(ftm);
  const auto bytes = frame_bytes(48, 0);
  const Descriptor a = writer.write(bytes.data(), rgb(4, 4));
  const Descriptor b = writer.write(bytes.data(), rgb(4, 4));
  FtmLease la = reader.acquire(a.slot, a.sequence, 20);
  FtmLease lb = reader.acquire(b.slot, b.sequence, 20);
  ::usleep(40000);
  EXPECT_FALSE(la.valid());
  EXPECT_NO_THROW(writer.write(bytes.data(), rgb(4, 4)));
}

TEST(Ftm, a_renewed_lease_stays_valid)
{
  ShmName name("renew");
  auto ftm = Ftm::create(name, FtmConfig{2, 48});
  FtmWriter writer(ftm);
  FtmReader reader(ftm);
  const auto bytes = frame_bytes(48, 0);
  const Descriptor a = writer.write(bytes.data(), rgb(4, 4));
  FtmLease la = reader.acquire(a.slot, a.sequence, 30);
  EXPECT_TRUE(la.renew(5000));
  ::usleep(50000);
  EXPECT_TRUE(la.valid());
}

TEST(Ftm, sizes_dtypes_and_encodings_are_checked)
{
  ShmName name("badinput");
  auto ftm = Ftm::create(name, FtmConfig{2, 100});
  FtmWriter writer(ftm);
  std::vector<uint8_t> buf(1000);
  EXPECT_EQ(code_of([&] {writer.loan(101);}), Errc::WrongSize);
  EXPECT_EQ(code_of([&] {writer.write(buf.data(), rgb(10, 10));}), Errc::WrongSize);
  TensorSpec four = rgb(2, 2);
  four.shape = {2, 2, 4};
  EXPECT_EQ(code_of([&] {writer.write(buf.data(), four);}), Errc::WrongType);
  TensorSpec f32 = rgb(2, 2);
  f32.dtype = DType::F32;
  EXPECT_EQ(code_of([&] {writer.write(buf.data(), f32);}), Errc::WrongType);
  TensorSpec unknown = rgb(2, 2);
  unknown.encoding = "yuv422_weird";
  EXPECT_EQ(code_of([&] {writer.write(buf.data(), unknown);}), Errc::WrongType);
  TensorSpec negative;
  negative.shape = {2, 2};
  negative.strides = {-2, 1};
  EXPECT_EQ(code_of([&] {writer.write(buf.data(), negative);}), Errc::WrongType);
  TensorSpec odd;
  odd.dtype = DType::F32;
  odd.shape = {2, 2};
  odd.strides = {6, 4};
  EXPECT_EQ(code_of([&] {writer.write(buf.data(), odd);}), Errc::WrongType);
  EXPECT_EQ(code_of([] {dtype_from_name("complex64");}), Errc::WrongType);
  // The refused writes left no slot claimed.
  EXPECT_NO_THROW(writer.write(buf.data(), rgb(2, 2)));
  EXPECT_NO_THROW(writer.write(buf.data(), rgb(2, 2)));
}

TEST(Ftm, a_loan_that_is_committed_with_a_larger_tensor_is_refused)
{
  ShmName name("loansize");
  auto ftm = Ftm::create(name, FtmConfig{2, 100});
  FtmWriter writer(ftm);
  writer.loan(12);
  EXPECT_EQ(code_of([&] {writer.commit(rgb(2, 4));}), Errc::WrongSize);
  writer.abort();
  EXPECT_FALSE(writer.has_loan());
}

TEST(Ftm, read_copy_returns_the_bytes_and_checks_the_buffer)
{
  ShmName name("copy");
  auto ftm = Ftm::create(name, FtmConfig{2, 48});
  FtmWriter writer(ftm);
  const auto bytes = frame_bytes(48, 5);
  const Descriptor d = writer.write(bytes.data(), rgb(4, 4));
  FtmReader reader(ftm);
  std::vector<uint8_t> out(48);
  const TensorMeta m = reader.read_copy(d.slot, d.sequence, out.data(), out.size());
  EXPECT_EQ(m.nbytes, 48u);
  EXPECT_EQ(out, bytes);
  EXPECT_EQ(code_of([&] {reader.read_copy(d.slot, d.sequence, out.data(), 10);}), Errc::WrongSize);
}

TEST(Ftm, a_reader_follows_a_replaced_segment_and_old_descriptors_go_stale)
{
  ShmName name("follow");
  auto ftm = Ftm::create(name, FtmConfig{2, 48});
  const auto bytes = frame_bytes(48, 5);
  Descriptor old_d;
  {
    FtmWriter writer(ftm);
    old_d = writer.write(bytes.data(), rgb(4, 4));
  }
  FtmReader reader(name.str());
  EXPECT_NO_THROW(reader.acquire(old_d.slot, old_d.sequence));
  auto fresh = Ftm::create(name, FtmConfig{2, 48}, OpenMode::Replace);
  FtmWriter writer(fresh);
  const Descriptor d = writer.write(bytes.data(), rgb(4, 4));
  EXPECT_GT(d.sequence, old_d.sequence);  // sequences never repeat across segments
  EXPECT_NO_THROW(reader.acquire(d.slot, d.sequence));
  EXPECT_EQ(code_of([&] {reader.acquire(old_d.slot, old_d.sequence);}), Errc::Stale);
}

TEST(Ftm, wait_newer_sees_a_commit_from_another_thread)
{
  ShmName name("waitnewer");
  auto ftm = Ftm::create(name, FtmConfig{2, 48});
  const auto bytes = frame_bytes(48, 5);
  std::thread t([&] {
      FtmWriter writer(ftm);
      ::usleep(20000);
      writer.write(bytes.data(), rgb(4, 4));
    });
  EXPECT_TRUE(ftm->wait_newer(0, 5000000000ull));
  t.join();
  EXPECT_FALSE(ftm->wait_newer(ftm->latest()->sequence, 1000000ull));
}
