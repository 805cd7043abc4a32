// Segment creation, permissions and header validation on attach.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "gtest_compat.hpp"
#include "sage_cuda_mailbox/cuda.hpp"
#include "sage_cuda_mailbox/error.hpp"
#include "sage_cuda_mailbox/ftm.hpp"
#include "sage_cuda_mailbox/pbm.hpp"
#include "test_util.hpp"

using sage::mailbox::Errc;
using sage::mailbox::Ftm;
using sage::mailbox::FtmConfig;
using sage::mailbox::MailboxError;
using sage::mailbox::OpenMode;
using sage::mailbox::Pbm;
using sage::mailbox::PbmConfig;
using sage::mailbox::Policy;
using sage::mailbox::Segment;
using sage::mailbox::SegmentHeader;
using test_util::ShmName;

namespace
{

Errc code_of(const std::function<void()> & fn, std::string * what = nullptr)
{
  try {
    fn();
  } catch (const MailboxError & e) {
    if (what != nullptr) {
      *what = e.what();
    }
    return e.code();
  }
  return static_cast<Errc>(0);
}

// Map an existing segment raw, to damage it the way a bug or a foreign writer could.
template <class F>
void poke(const std::string & name, F && f)
{
  const int fd = ::shm_open(("/" + name).c_str(), O_RDWR, 0);
  ASSERT_GE(fd, 0);
  struct stat sb{};
  ::fstat(fd, &sb);
  void * p = ::mmap(nullptr, sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  f(static_cast<SegmentHeader *>(p));
  ::munmap(p, sb.st_size);
  ::close(fd);
}

}  // namespace

TEST(Segment, created_segment_is_private_to_its_user)
{
  ShmName name("mode");
  auto pbm = Pbm::create(name, PbmConfig{32, 64, Policy::Reject});
  struct stat sb{};
  ASSERT_EQ(::stat(("/dev/shm/" + name.str()).c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
  EXPECT_EQ(pbm->name(), "/" + name.str());
  EXPECT_TRUE(pbm->segment().created());
}

TEST(Segment, attach_reads_back_the_creators_geometry)
{
  ShmName name("geom");
  Pbm::create(name, PbmConfig{40, 128, Policy::Overwrite});
  auto other = Pbm::attach(name);
  EXPECT_EQ(other->config().record_size, 40u);
  EXPECT_EQ(other->config().capacity, 128u);
  EXPECT_EQ(other->config().policy, Policy::Overwrite);
  EXPECT_FALSE(other->segment().created());
}

TEST(Segment, missing_segment_is_not_found)
{
  ShmName name("missing");
  EXPECT_EQ(code_of([&] {Pbm::attach(name);}), Errc::NotFound);
}

TEST(Segment, bad_names_are_refused)
{
  for (const std::string & bad : std::vector<std::string>{"", "a/b", "with space", "..",
      std::string(300, 'x')})
  {
    EXPECT_EQ(code_of([&] {Pbm::create(bad, PbmConfig{});}), Errc::InvalidArgument) << bad;
  }
}

TEST(Segment, bad_geometry_is_refused)
{
  ShmName name("badgeo");
  EXPECT_EQ(code_of([&] {Pbm::create(name, PbmConfig{0, 64, Policy::Reject});}),
    Errc::InvalidArgument);
  EXPECT_EQ(code_of([&] {Pbm::create(name, PbmConfig{16, 100, Policy::Reject});}),
    Errc::InvalidArgument);
  EXPECT_EQ(code_of([&] {Ftm::create(name, FtmConfig{1, 100});}), Errc::InvalidArgument);
  EXPECT_EQ(code_of([&] {Ftm::create(name, FtmConfig{4, 0});}), Errc::InvalidArgument);
  EXPECT_FALSE(Segment::exists(name));
}

TEST(Segment, exclusive_create_of_an_existing_name_fails)
{
  ShmName name("excl");
  Pbm::create(name, PbmConfig{});
  EXPECT_EQ(code_of([&] {Pbm::create(name, PbmConfig{});}), Errc::AlreadyExists);
}

TEST(Segment, create_or_attach_refuses_another_geometry)
{
  ShmName name("coa");
  auto a = Pbm::create(name, PbmConfig{32, 64, Policy::Reject}, OpenMode::CreateOrAttach);
  auto b = Pbm::create(name, PbmConfig{32, 64, Policy::Reject}, OpenMode::CreateOrAttach);
  EXPECT_FALSE(b->segment().created());
  std::string what;
  EXPECT_EQ(code_of([&] {Pbm::create(name, PbmConfig{64, 64, Policy::Reject},
      OpenMode::CreateOrAttach);}, &what), Errc::LayoutMismatch);
  EXPECT_NE(what.find("exists as"), std::string::npos) << what;
}

TEST(Segment, attaching_with_the_wrong_kind_is_a_mismatch)
{
  ShmName name("kind");
  Pbm::create(name, PbmConfig{});
  std::string what;
  EXPECT_EQ(code_of([&] {Ftm::attach(name);}, &what), Errc::LayoutMismatch);
  EXPECT_NE(what.find("kind PBM, expected FTM"), std::string::npos) << what;
}

TEST(Segment, foreign_segment_is_refused_as_corrupt)
{
  ShmName name("foreign");
  const int fd = ::shm_open(("/" + name.str()).c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  std::string junk(8192, '\x5a');
  ASSERT_EQ(::write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  ::close(fd);
  std::string what;
  EXPECT_EQ(code_of([&] {Pbm::attach(name);}, &what), Errc::Corrupt);
  EXPECT_NE(what.find("bad magic"), std::string::npos) << what;
}

TEST(Segment, other_layout_version_is_refused)
{
  ShmName name("version");
  Pbm::create(name, PbmConfig{});
  poke(name, [](SegmentHeader * h) {h->version = 99;});
  std::string what;
  EXPECT_EQ(code_of([&] {Pbm::attach(name);}, &what), Errc::Corrupt);
  EXPECT_NE(what.find("layout version 99"), std::string::npos) << what;
}

TEST(Segment, damaged_header_fails_its_checksum)
{
  ShmName name("checksum");
  Pbm::create(name, PbmConfig{});
  poke(name, [](SegmentHeader * h) {h->capacity = 4096;});
  std::string what;
  EXPECT_EQ(code_of([&] {Pbm::attach(name);}, &what), Errc::Corrupt);
  EXPECT_NE(what.find("checksum"), std::string::npos) << what;
}

TEST(Segment, resized_segment_is_refused)
{
  ShmName name("resized");
  auto pbm = Pbm::create(name, PbmConfig{});
  const int fd = ::shm_open(("/" + name.str()).c_str(), O_RDWR, 0);
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(pbm->segment().size() + 4096)), 0);
  ::close(fd);
  std::string what;
  EXPECT_EQ(code_of([&] {Pbm::attach(name);}, &what), Errc::Corrupt);
  EXPECT_NE(what.find("size mismatch"), std::string::npos) << what;
}

TEST(Segment, never_initialised_segment_is_not_ready)
{
  ShmName name("empty");
  const int fd = ::shm_open(("/" + name.str()).c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  EXPECT_EQ(code_of([&] {Pbm::attach(name, 30);}), Errc::NotReady);
}

TEST(Segment, replace_retires_the_old_segment)
{
  ShmName name("replace");
  auto old = Ftm::create(name, FtmConfig{2, 64});
  auto fresh = Ftm::create(name, FtmConfig{4, 128}, OpenMode::Replace);
  EXPECT_TRUE(old->segment().retired());
  EXPECT_FALSE(fresh->segment().retired());
  EXPECT_EQ(Ftm::attach(name)->config().slots, 4u);
}

TEST(Segment, cuda_is_detected_at_run_time)
{
  // No GPU on CI machines: registration must report false and leave the CPU path working.
  ShmName name("cuda");
  auto pbm = Pbm::create(name, PbmConfig{});
  if (sage::mailbox::cuda_available()) {
    GTEST_SKIP() << "a GPU is present";
  }
  EXPECT_FALSE(pbm->segment().register_with_gpu());
  EXPECT_FALSE(pbm->segment().gpu_registered());
  EXPECT_FALSE(sage::mailbox::cuda_unavailable_reason().empty());
}
