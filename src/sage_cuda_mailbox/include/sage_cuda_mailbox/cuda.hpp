// CUDA side of the mailbox.
//
// Host part (always built, no CUDA needed at build time): the CUDA runtime is loaded with
// dlopen at run time; where it or a device is missing, cuda_available() is false and every
// mailbox keeps working on the CPU. Segment::register_with_gpu() maps a segment into the GPU's
// address space (cudaHostRegister, mapped + portable); on a Jetson, CPU and GPU share DRAM, so
// kernels read frames in place, with no copy.
//
// Device part (built with nvcc when SAGE_MAILBOX_CUDA is on, library sage_cuda_mailbox_cuda):
// device-side PBM push/pop over the same protocol as the host (detail/pbm_core.hpp) and
// kernels that read FTM frames in place. Declared in cuda_device.hpp.
#pragma once

#include <cstddef>
#include <string>

namespace sage::mailbox
{

/// Whether a CUDA runtime and at least one device are present (cached after the first call).
/// SAGE_MAILBOX_DISABLE_CUDA=1 in the environment forces false.
bool cuda_available() noexcept;
/// Why cuda_available() is false ("" when it is true).
std::string cuda_unavailable_reason();
/// Whether this build compiled the device code (nvcc).
bool cuda_device_code_built() noexcept;

/// RAII registration of a host range with the GPU.
class GpuRegistration
{
public:
  /// Throws MailboxError(CudaUnavailable) or (Cuda).
  GpuRegistration(void * host, size_t bytes);
  ~GpuRegistration();
  GpuRegistration(const GpuRegistration &) = delete;
  GpuRegistration & operator=(const GpuRegistration &) = delete;
  void * device_base() const noexcept {return device_;}
  void * host_base() const noexcept {return host_;}
  size_t bytes() const noexcept {return bytes_;}

private:
  void * host_{nullptr};
  void * device_{nullptr};
  size_t bytes_{0};
};

}  // namespace sage::mailbox
