// Host side of the CUDA support: the runtime is loaded with dlopen, so this library builds and
// runs without CUDA and uses the GPU only where a runtime and a device exist.
#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <string>

#include "sage_cuda_mailbox/cuda.hpp"
#include "sage_cuda_mailbox/error.hpp"

namespace sage::mailbox
{

namespace
{

// Subset of the CUDA runtime API (stable C ABI since CUDA 4).
using cuda_err_t = int;
constexpr cuda_err_t kCudaSuccess = 0;
constexpr unsigned kHostRegisterPortable = 0x01;
constexpr unsigned kHostRegisterMapped = 0x02;

struct CudaRuntime
{
  void * handle{nullptr};
  cuda_err_t (*get_device_count)(int *){nullptr};
  cuda_err_t (*host_register)(void *, size_t, unsigned){nullptr};
  cuda_err_t (*host_unregister)(void *){nullptr};
  cuda_err_t (*host_get_device_pointer)(void **, void *, unsigned){nullptr};
  const char * (*get_error_string)(cuda_err_t){nullptr};
  bool available{false};
  std::string reason;
};

template <class F>
bool load_symbol(void * handle, const char * name, F & fn)
{
  fn = reinterpret_cast<F>(::dlsym(handle, name));
  return fn != nullptr;
}

CudaRuntime & runtime()
{
  static CudaRuntime rt;
  static std::once_flag once;
  std::call_once(once, []() {
      const char * disable = std::getenv("SAGE_MAILBOX_DISABLE_CUDA");
      if (disable != nullptr && disable[0] != '\0' && disable[0] != '0') {
        rt.reason = "disabled by SAGE_MAILBOX_DISABLE_CUDA";
        return;
      }
      const char * names[] = {"libcudart.so", "libcudart.so.13", "libcudart.so.12",
        "libcudart.so.11.0"};
      for (const char * n : names) {
        rt.handle = ::dlopen(n, RTLD_NOW | RTLD_LOCAL);
        if (rt.handle != nullptr) {
          break;
        }
      }
      if (rt.handle == nullptr) {
        rt.reason = "no CUDA runtime library (libcudart) found";
        return;
      }
      const bool ok = load_symbol(rt.handle, "cudaGetDeviceCount", rt.get_device_count) &&
      load_symbol(rt.handle, "cudaHostRegister", rt.host_register) &&
      load_symbol(rt.handle, "cudaHostUnregister", rt.host_unregister) &&
      load_symbol(rt.handle, "cudaHostGetDevicePointer", rt.host_get_device_pointer) &&
      load_symbol(rt.handle, "cudaGetErrorString", rt.get_error_string);
      if (!ok) {
        rt.reason = "the CUDA runtime library lacks expected symbols";
        return;
      }
      int count = 0;
      const cuda_err_t err = rt.get_device_count(&count);
      if (err != kCudaSuccess || count <= 0) {
        rt.reason = std::string("no CUDA device: ") +
        (err != kCudaSuccess ? rt.get_error_string(err) : "device count is 0");
        return;
      }
      rt.available = true;
    });
  return rt;
}

}  // namespace

bool cuda_available() noexcept
{
  try {
    return runtime().available;
  } catch (...) {
    return false;
  }
}

std::string cuda_unavailable_reason()
{
  return runtime().available ? std::string() : runtime().reason;
}

bool cuda_device_code_built() noexcept
{
#if defined(SAGE_MAILBOX_CUDA_BUILT) && SAGE_MAILBOX_CUDA_BUILT
  return true;
#else
  return false;
#endif
}

GpuRegistration::GpuRegistration(void * host, size_t bytes)
: host_(host), bytes_(bytes)
{
  CudaRuntime & rt = runtime();
  if (!rt.available) {
    throw MailboxError(Errc::CudaUnavailable, "CUDA unavailable: " + rt.reason);
  }
  cuda_err_t err = rt.host_register(host, bytes, kHostRegisterMapped | kHostRegisterPortable);
  if (err != kCudaSuccess) {
    throw MailboxError(Errc::Cuda, std::string("cudaHostRegister: ") + rt.get_error_string(err));
  }
  err = rt.host_get_device_pointer(&device_, host, 0);
  if (err != kCudaSuccess) {
    rt.host_unregister(host);
    throw MailboxError(Errc::Cuda,
            std::string("cudaHostGetDevicePointer: ") + rt.get_error_string(err));
  }
}

GpuRegistration::~GpuRegistration()
{
  if (host_ != nullptr && runtime().available) {
    runtime().host_unregister(host_);
  }
}

}  // namespace sage::mailbox
