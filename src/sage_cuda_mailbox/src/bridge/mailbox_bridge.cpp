// sage_cuda_mailbox::MailboxBridge: bridges sensor_msgs/Image and the FTM for C++ graphs.
//
//   mode image_to_ftm: Image in -> frame written once into the FTM -> sage_interfaces/FrameRef out
//   mode ftm_to_image: FrameRef in -> frame read under a lease -> Image out (for Image-only nodes)
//
// Built only where rclcpp is found; written against the API common to Humble and Jazzy.
#include <cstring>
#include <memory>
#include <string>

#include "rclcpp/rclcpp.hpp"
#include "rclcpp_components/register_node_macro.hpp"
#include "sage_interfaces/msg/frame_ref.hpp"
#include "sensor_msgs/msg/image.hpp"

#include "sage_cuda_mailbox/error.hpp"
#include "sage_cuda_mailbox/ftm.hpp"

namespace sage_cuda_mailbox
{

namespace mb = sage::mailbox;

namespace
{

rcl_interfaces::msg::ParameterDescriptor describe(
  const std::string & text, int64_t lo = 0, int64_t hi = 0)
{
  rcl_interfaces::msg::ParameterDescriptor d;
  d.description = text;
  d.read_only = true;  // the segment is opened once, at construction
  if (hi > lo) {
    rcl_interfaces::msg::IntegerRange r;
    r.from_value = lo;
    r.to_value = hi;
    r.step = 0;
    d.integer_range.push_back(r);
  }
  return d;
}

// Element type and channel count of the encodings the FTM accepts.
bool encoding_layout(const std::string & enc, mb::DType * dtype, int64_t * channels)
{
  struct Row
  {
    const char * name;
    mb::DType dtype;
    int64_t channels;
  };
  static const Row rows[] = {
    {"rgb8", mb::DType::U8, 3}, {"bgr8", mb::DType::U8, 3}, {"rgba8", mb::DType::U8, 4},
    {"bgra8", mb::DType::U8, 4}, {"mono8", mb::DType::U8, 1}, {"mono16", mb::DType::U16, 1},
    {"8UC1", mb::DType::U8, 1}, {"8UC3", mb::DType::U8, 3}, {"8UC4", mb::DType::U8, 4},
    {"16UC1", mb::DType::U16, 1}, {"32FC1", mb::DType::F32, 1},
  };
  for (const Row & r : rows) {
    if (enc == r.name) {
      *dtype = r.dtype;
      *channels = r.channels;
      return true;
    }
  }
  return false;
}

}  // namespace

class MailboxBridge : public rclcpp::Node
{
public:
  explicit MailboxBridge(const rclcpp::NodeOptions & options)
  : rclcpp::Node("mailbox_bridge", options)
  {
    mode_ = declare_parameter<std::string>(
      "mode", "image_to_ftm", describe("image_to_ftm or ftm_to_image"));
    segment_ = declare_parameter<std::string>(
      "segment", "sage_frames", describe("shared-memory segment name of the FTM"));
    const int64_t slots = declare_parameter<int64_t>(
      "slots", 4, describe("FTM slots (image_to_ftm)", 2, 1024));
    const int64_t max_bytes = declare_parameter<int64_t>(
      "max_bytes", 1280 * 720 * 3, describe("bytes of the largest frame (image_to_ftm)", 1,
      1ll << 30));
    lease_ms_ = declare_parameter<int64_t>(
      "lease_ms", 1000, describe("lease of a frame being copied out (ftm_to_image)", 1, 60000));
    const std::string image_topic = declare_parameter<std::string>(
      "image_topic", "/sage/camera/image_raw", describe("sensor_msgs/Image topic"));
    const std::string ref_topic = declare_parameter<std::string>(
      "frame_ref_topic", "/sage/camera/frame_ref", describe("sage_interfaces/FrameRef topic"));

    // Subscriptions take any publisher (best effort); publishers are reliable so that both
    // reliable and best-effort subscribers match.
    const auto pub_qos = rclcpp::QoS(rclcpp::KeepLast(5)).reliable();
    if (mode_ == "image_to_ftm") {
      auto ftm = open_writer_segment(
        static_cast<uint32_t>(slots), static_cast<uint64_t>(max_bytes));
      writer_ = std::make_unique<mb::FtmWriter>(ftm);
      ref_pub_ = create_publisher<sage_interfaces::msg::FrameRef>(ref_topic, pub_qos);
      image_sub_ = create_subscription<sensor_msgs::msg::Image>(
        image_topic, rclcpp::SensorDataQoS(),
        [this](sensor_msgs::msg::Image::ConstSharedPtr msg) {on_image(*msg);});
    } else if (mode_ == "ftm_to_image") {
      image_pub_ = create_publisher<sensor_msgs::msg::Image>(image_topic, pub_qos);
      ref_sub_ = create_subscription<sage_interfaces::msg::FrameRef>(
        ref_topic, rclcpp::SensorDataQoS(),
        [this](sage_interfaces::msg::FrameRef::ConstSharedPtr msg) {on_ref(*msg);});
    } else {
      throw std::invalid_argument("mode must be image_to_ftm or ftm_to_image, got '" + mode_ + "'");
    }
    RCLCPP_INFO(get_logger(), "mailbox bridge %s on segment '%s'", mode_.c_str(),
      segment_.c_str());
  }

private:
  std::shared_ptr<mb::Ftm> open_writer_segment(uint32_t slots, uint64_t max_bytes)
  {
    const mb::FtmConfig cfg{slots, max_bytes};
    try {
      return mb::Ftm::create(segment_, cfg, mb::OpenMode::CreateOrAttach);
    } catch (const mb::MailboxError & e) {
      if (e.code() != mb::Errc::LayoutMismatch && e.code() != mb::Errc::Corrupt &&
        e.code() != mb::Errc::NotReady)
      {
        throw;
      }
      RCLCPP_WARN(get_logger(), "replacing segment '%s': %s", segment_.c_str(), e.what());
      return mb::Ftm::create(segment_, cfg, mb::OpenMode::Replace);
    }
  }

  void on_image(const sensor_msgs::msg::Image & msg)
  {
    try {
      mb::TensorSpec spec;
      int64_t channels = 0;
      if (!encoding_layout(msg.encoding, &spec.dtype, &channels)) {
        throw mb::MailboxError(mb::Errc::WrongType, "unsupported encoding '" + msg.encoding + "'");
      }
      const int64_t item = mb::dtype_size(spec.dtype);
      if (msg.is_bigendian && item > 1) {
        throw mb::MailboxError(mb::Errc::WrongType, "big-endian images are refused");
      }
      if (channels == 1) {
        spec.shape = {msg.height, msg.width};
        spec.strides = {msg.step, item};
      } else {
        spec.shape = {msg.height, msg.width, channels};
        spec.strides = {msg.step, channels * item, item};
      }
      spec.encoding = msg.encoding;
      spec.stamp = rclcpp::Time(msg.header.stamp).seconds();
      const uint64_t extent = mb::validate_spec(spec, writer_->ftm().config().max_bytes);
      if (msg.data.size() < extent) {
        throw mb::MailboxError(mb::Errc::WrongSize, "image data is shorter than height * step");
      }
      uint8_t * dst = writer_->loan(extent);
      std::memcpy(dst, msg.data.data(), extent);
      const mb::Descriptor d = writer_->commit(spec);
      sage_interfaces::msg::FrameRef ref;
      ref.header = msg.header;
      ref.segment = segment_;
      ref.slot = d.slot;
      ref.sequence = d.sequence;
      ref.width = msg.width;
      ref.height = msg.height;
      ref.step = msg.step;
      ref.encoding = msg.encoding;
      ref_pub_->publish(ref);
    } catch (const mb::MailboxError & e) {
      if (writer_->has_loan()) {
        writer_->abort();
      }
      ++errors_;
      RCLCPP_WARN_THROTTLE(get_logger(), *get_clock(), 5000, "frame dropped (%lu so far): %s",
        static_cast<unsigned long>(errors_), e.what());
    }
  }

  void on_ref(const sage_interfaces::msg::FrameRef & ref)
  {
    try {
      if (!reader_) {
        reader_ = std::make_unique<mb::FtmReader>(segment_);
      }
      const std::string want = segment_[0] == '/' ? segment_.substr(1) : segment_;
      const std::string got = (!ref.segment.empty() && ref.segment[0] == '/') ?
        ref.segment.substr(1) : ref.segment;
      if (got != want) {
        throw mb::MailboxError(mb::Errc::BadDescriptor,
                "descriptor names segment '" + ref.segment + "', bridge reads '" + segment_ + "'");
      }
      mb::FtmLease lease = reader_->acquire(ref.slot, ref.sequence,
          static_cast<uint64_t>(lease_ms_));
      const mb::TensorMeta & m = lease.meta();
      sensor_msgs::msg::Image img;
      img.header = ref.header;
      img.height = m.height;
      img.width = m.width;
      img.step = m.step;
      img.encoding = ref.encoding;
      img.is_bigendian = false;
      img.data.assign(lease.data(), lease.data() + m.nbytes);
      lease.release();
      image_pub_->publish(img);
    } catch (const mb::MailboxError & e) {
      ++errors_;
      RCLCPP_WARN_THROTTLE(get_logger(), *get_clock(), 5000, "frame ref dropped (%lu so far): %s",
        static_cast<unsigned long>(errors_), e.what());
    }
  }

  std::string mode_;
  std::string segment_;
  int64_t lease_ms_{1000};
  uint64_t errors_{0};
  std::unique_ptr<mb::FtmWriter> writer_;
  std::unique_ptr<mb::FtmReader> reader_;
  rclcpp::Publisher<sage_interfaces::msg::FrameRef>::SharedPtr ref_pub_;
  rclcpp::Publisher<sensor_msgs::msg::Image>::SharedPtr image_pub_;
  rclcpp::Subscription<sensor_msgs::msg::Image>::SharedPtr image_sub_;
  rclcpp::Subscription<sage_interfaces::msg::FrameRef>::SharedPtr ref_sub_;
};

}  // namespace sage_cuda_mailbox

RCLCPP_COMPONENTS_REGISTER_NODE(sage_cuda_mailbox::MailboxBridge)
