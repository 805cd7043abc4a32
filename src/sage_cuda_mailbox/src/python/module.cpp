// pybind11 module sage_cuda_mailbox._mailbox: private; the typed facade is
// sage_cuda_mailbox/__init__.py (+ _mailbox.pyi). Errors raise the classes of
// sage_cuda_mailbox.errors; blocking waits and large copies release the GIL.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "bindings.hpp"
#include "sage_cuda_mailbox/cuda.hpp"
#include "sage_cuda_mailbox/error.hpp"
#include "sage_cuda_mailbox/ftm.hpp"
#include "sage_cuda_mailbox/pbm.hpp"
#include "sage_cuda_mailbox/process.hpp"

namespace py = pybind11;

namespace sage::mailbox::python
{

namespace
{

// ------------------------------------------------------------------------------ errors

[[noreturn]] void raise(Errc code, const std::string & what) {throw MailboxError(code, what);}

void translate(const MailboxError & e)
{
  try {
    py::object errors = py::module_::import("sage_cuda_mailbox.errors");
    py::object cls = errors.attr("error_class")(errc_name(e.code()));
    py::object exc = cls(e.what(), errc_name(e.code()));
    PyErr_SetObject(cls.ptr(), exc.ptr());
  } catch (py::error_already_set &) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
}

// ------------------------------------------------------------------------------ helpers

OpenMode parse_mode(const std::string & mode)
{
  if (mode == "create") {
    return OpenMode::Create;
  }
  if (mode == "create_or_attach") {
    return OpenMode::CreateOrAttach;
  }
  if (mode == "replace") {
    return OpenMode::Replace;
  }
  raise(Errc::InvalidArgument,
    "mode must be 'create', 'create_or_attach' or 'replace', got '" + mode + "'");
}

Policy parse_policy(const std::string & policy)
{
  if (policy == "reject") {
    return Policy::Reject;
  }
  if (policy == "overwrite") {
    return Policy::Overwrite;
  }
  raise(Errc::InvalidArgument, "policy must be 'reject' or 'overwrite', got '" + policy + "'");
}

const char * policy_name(Policy p) {return p == Policy::Reject ? "reject" : "overwrite";}

uint32_t checked_u32(int64_t v, const char * what)
{
  if (v < 0 || v > 0xFFFFFFFFll) {
    raise(Errc::InvalidArgument, std::string(what) + " out of range: " + std::to_string(v));
  }
  return static_cast<uint32_t>(v);
}

/// A contiguous read-only byte view of any buffer-protocol object (bytes fast path).
struct Bytes
{
  const uint8_t * data{nullptr};
  size_t size{0};
  Py_buffer view{};
  bool has_view{false};

  explicit Bytes(py::handle obj)
  {
    if (PyBytes_Check(obj.ptr())) {
      data = reinterpret_cast<const uint8_t *>(PyBytes_AS_STRING(obj.ptr()));
      size = static_cast<size_t>(PyBytes_GET_SIZE(obj.ptr()));
      return;
    }
    if (PyObject_GetBuffer(obj.ptr(), &view, PyBUF_C_CONTIGUOUS) != 0) {
      PyErr_Clear();
      raise(Errc::WrongType, "expected bytes or a C-contiguous buffer, got " +
        std::string(py::str(py::type::of(obj).attr("__name__"))));
    }
    has_view = true;
    data = static_cast<const uint8_t *>(view.buf);
    size = static_cast<size_t>(view.len);
  }
  ~Bytes()
  {
    if (has_view) {
      PyBuffer_Release(&view);
    }
  }
  Bytes(const Bytes &) = delete;
  Bytes & operator=(const Bytes &) = delete;
};

/// A writable contiguous view of a buffer-protocol object.
struct WritableBytes
{
  Py_buffer view{};
  explicit WritableBytes(py::handle obj)
  {
    if (PyObject_GetBuffer(obj.ptr(), &view, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) != 0) {
      PyErr_Clear();
      raise(Errc::WrongType, "expected a writable C-contiguous buffer");
    }
  }
  ~WritableBytes() {PyBuffer_Release(&view);}
  uint8_t * data() const {return static_cast<uint8_t *>(view.buf);}
  size_t size() const {return static_cast<size_t>(view.len);}
  WritableBytes(const WritableBytes &) = delete;
  WritableBytes & operator=(const WritableBytes &) = delete;
};

uint64_t seconds_to_ns(double seconds)
{
  if (!(seconds >= 0.0)) {
    raise(Errc::InvalidArgument, "timeout must be >= 0 seconds");
  }
  return seconds > 1e9 ? static_cast<uint64_t>(1e18) : static_cast<uint64_t>(seconds * 1e9);
}

// Buffer-protocol format characters by dtype.
const char * format_of(DType d)
{
  switch (d) {
    case DType::U8: return "B";
    case DType::I8: return "b";
    case DType::U16: return "H";
    case DType::I16: return "h";
    case DType::U32: return "I";
    case DType::I32: return "i";
    case DType::U64: return "Q";
    case DType::I64: return "q";
    case DType::F16: return "e";
    case DType::F32: return "f";
    case DType::F64: return "d";
    case DType::Bool: return "?";
    default: return "B";
  }
}

DType dtype_of_format(const std::string & fmt, size_t itemsize)
{
  std::string f = fmt;
  if (!f.empty() && (f[0] == '<' || f[0] == '=' || f[0] == '@' || f[0] == '!' || f[0] == '>')) {
    if (f[0] == '>' || f[0] == '!') {
      raise(Errc::WrongType, "big-endian arrays are refused");
    }
    f = f.substr(1);
  }
  if (f.size() != 1) {
    raise(Errc::WrongType, "unsupported element format '" + fmt + "'");
  }
  const char c = f[0];
  switch (c) {
    case 'B': return DType::U8;
    case 'b': return DType::I8;
    case '?': return DType::Bool;
    case 'H': return DType::U16;
    case 'h': return DType::I16;
    case 'e': return DType::F16;
    case 'f': return DType::F32;
    case 'd': return DType::F64;
    case 'I': case 'L': case 'Q':
      return itemsize == 4 ? DType::U32 : itemsize == 8 ? DType::U64 : DType::Invalid;
    case 'i': case 'l': case 'q':
      return itemsize == 4 ? DType::I32 : itemsize == 8 ? DType::I64 : DType::Invalid;
    default:
      raise(Errc::WrongType, "unsupported element format '" + fmt + "'");
  }
}

py::dict meta_dict(const TensorMeta & m)
{
  py::dict d;
  py::tuple shape(m.ndim);
  py::tuple strides(m.ndim);
  for (uint32_t i = 0; i < m.ndim; ++i) {
    shape[i] = m.shape[i];
    strides[i] = m.strides[i];
  }
  d["sequence"] = m.sequence;
  d["stamp"] = m.stamp;
  d["nbytes"] = m.nbytes;
  d["dtype"] = dtype_name(static_cast<DType>(m.dtype));
  d["shape"] = shape;
  d["strides"] = strides;
  d["width"] = m.width;
  d["height"] = m.height;
  d["step"] = m.step;
  d["encoding"] = std::string(m.encoding, strnlen(m.encoding, kEncodingChars));
  return d;
}

// ------------------------------------------------------------------------------ DLPack
// The DLPack ABI (v1.0), declared here to keep the build free of an extra dependency.

struct DLDevice
{
  int32_t device_type;
  int32_t device_id;
};
struct DLDataType
{
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
};
struct DLTensor
{
  void * data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t * shape;
  int64_t * strides;
  uint64_t byte_offset;
};
struct DLManagedTensor
{
  DLTensor dl_tensor;
  void * manager_ctx;
  void (* deleter)(DLManagedTensor *);
};
struct DLPackVersion
{
  uint32_t major;
  uint32_t minor;
};
struct DLManagedTensorVersioned
{
  DLPackVersion version;
  void * manager_ctx;
  void (* deleter)(DLManagedTensorVersioned *);
  uint64_t flags;
  DLTensor dl_tensor;
};
constexpr int32_t kDLCPU = 1;
constexpr int32_t kDLCUDA = 2;
constexpr uint64_t kDLFlagReadOnly = 1;

DLDataType dl_dtype(DType d)
{
  const auto bits = static_cast<uint8_t>(dtype_size(d) * 8);
  switch (d) {
    case DType::I8: case DType::I16: case DType::I32: case DType::I64: return {0, bits, 1};
    case DType::U8: case DType::U16: case DType::U32: case DType::U64: return {1, bits, 1};
    case DType::F16: case DType::F32: case DType::F64: return {2, bits, 1};
    case DType::Bool: return {6, 8, 1};
    default: return {1, 8, 1};
  }
}

/// Keeps the exporting Python object (and so the lease) alive while a consumer holds the data.
struct DLContext
{
  PyObject * owner;
  int64_t shape[kMaxDims];
  int64_t strides[kMaxDims];
};

void release_owner(void * ctx)
{
  auto * c = static_cast<DLContext *>(ctx);
  if (c == nullptr) {
    return;
  }
  if (Py_IsInitialized()) {
    PyGILState_STATE g = PyGILState_Ensure();
    Py_XDECREF(c->owner);
    PyGILState_Release(g);
  }
  delete c;
}

void delete_legacy(DLManagedTensor * t)
{
  release_owner(t->manager_ctx);
  delete t;
}

void delete_versioned(DLManagedTensorVersioned * t)
{
  release_owner(t->manager_ctx);
  delete t;
}

void legacy_capsule_destructor(PyObject * cap)
{
  if (PyCapsule_IsValid(cap, "used_dltensor")) {
    return;  // a consumer took ownership
  }
  auto * t = static_cast<DLManagedTensor *>(PyCapsule_GetPointer(cap, "dltensor"));
  if (t == nullptr) {
    PyErr_Clear();
    return;
  }
  t->deleter(t);
}

void versioned_capsule_destructor(PyObject * cap)
{
  if (PyCapsule_IsValid(cap, "used_dltensor_versioned")) {
    return;
  }
  auto * t = static_cast<DLManagedTensorVersioned *>(
    PyCapsule_GetPointer(cap, "dltensor_versioned"));
  if (t == nullptr) {
    PyErr_Clear();
    return;
  }
  t->deleter(t);
}

// ------------------------------------------------------------------------------ tensor view

/// A tensor read from an FTM: a zero-copy view under a lease, or an owned copy.
struct TensorView
{
  FtmLease lease;
  std::vector<uint8_t> copy;  // owned bytes when not leased
  bool owned{false};
  TensorMeta meta{};
  uint32_t slot{0};
  std::string segment;

  const uint8_t * data() const
  {
    if (owned) {
      return copy.data();
    }
    if (!lease.held()) {
      raise(Errc::Stale, "the tensor view was released");
    }
    return lease.data();
  }
  DType dtype() const {return static_cast<DType>(meta.dtype);}
};

py::object dlpack_export(
  py::object self, const py::object & max_version, const py::object & dl_device,
  const py::object & copy)
{
  auto & v = self.cast<TensorView &>();
  if (!copy.is_none() && copy.cast<bool>()) {
    throw py::buffer_error("copy=True is not supported: call read_copy() for an owned copy");
  }
  const uint8_t * data = v.data();
  int32_t device_type = kDLCPU;
  if (!dl_device.is_none()) {
    const auto dev = dl_device.cast<std::tuple<int, int>>();
    device_type = std::get<0>(dev);
    if (device_type == kDLCUDA) {
      if (v.owned || v.lease.ftm()->segment().device_pointer(data) == nullptr) {
        throw py::buffer_error(
                "no CUDA view: the segment is not registered with a GPU (register_with_gpu())");
      }
      data = static_cast<const uint8_t *>(v.lease.ftm()->segment().device_pointer(data));
    } else if (device_type != kDLCPU) {
      throw py::buffer_error("unsupported DLPack device type " + std::to_string(device_type));
    }
  }
  const uint32_t item = dtype_size(v.dtype());
  auto * ctx = new DLContext{self.ptr(), {}, {}};
  for (uint32_t i = 0; i < v.meta.ndim; ++i) {
    ctx->shape[i] = v.meta.shape[i];
    ctx->strides[i] = v.meta.strides[i] / static_cast<int64_t>(item);  // DLPack: in elements
  }
  DLTensor t{};
  t.data = const_cast<uint8_t *>(data);
  t.device = DLDevice{device_type, 0};
  t.ndim = static_cast<int32_t>(v.meta.ndim);
  t.dtype = dl_dtype(v.dtype());
  t.shape = ctx->shape;
  t.strides = ctx->strides;
  t.byte_offset = 0;
  bool versioned = false;
  if (!max_version.is_none()) {
    const auto mv = max_version.cast<std::tuple<int, int>>();
    versioned = std::get<0>(mv) >= 1;
  }
  Py_INCREF(self.ptr());  // owned by ctx from here on
  if (versioned) {
    auto * m = new DLManagedTensorVersioned{};
    m->version = DLPackVersion{1, 0};
    m->manager_ctx = ctx;
    m->deleter = delete_versioned;
    m->flags = v.owned ? 0 : kDLFlagReadOnly;  // leased views are read-only
    m->dl_tensor = t;
    PyObject * cap = PyCapsule_New(m, "dltensor_versioned", versioned_capsule_destructor);
    if (cap == nullptr) {
      delete_versioned(m);
      throw py::error_already_set();
    }
    return py::reinterpret_steal<py::object>(cap);
  }
  auto * m = new DLManagedTensor{};
  m->dl_tensor = t;
  m->manager_ctx = ctx;
  m->deleter = delete_legacy;
  PyObject * cap = PyCapsule_New(m, "dltensor", legacy_capsule_destructor);
  if (cap == nullptr) {
    delete_legacy(m);
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::object>(cap);
}

// ------------------------------------------------------------------------------ wrappers

struct PyPbm
{
  std::shared_ptr<Pbm> pbm;
};

struct PyPbmLoan
{
  std::shared_ptr<PbmProducer> producer;
  uint8_t * data{nullptr};
  uint32_t size{0};
  bool open{false};
};

struct PyFtm
{
  std::shared_ptr<Ftm> ftm;
};

struct PyFtmWriter
{
  std::shared_ptr<FtmWriter> writer;
  FtmWriter & get() const
  {
    if (!writer) {
      raise(Errc::InvalidArgument, "the FTM writer is closed");
    }
    return *writer;
  }
};

struct PyFtmLoan
{
  std::shared_ptr<FtmWriter> writer;
  uint8_t * data{nullptr};
  uint64_t size{0};
  bool open{false};
};

struct PyFtmReader
{
  std::shared_ptr<FtmReader> reader;
  FtmReader & get() const
  {
    if (!reader) {
      raise(Errc::InvalidArgument, "the FTM reader is closed");
    }
    return *reader;
  }
};

py::object pop_bytes(PbmConsumer & c)
{
  const uint32_t rs = c.pbm().config().record_size;
  PyObject * b = PyBytes_FromStringAndSize(nullptr, rs);
  if (b == nullptr) {
    throw py::error_already_set();
  }
  uint32_t len = 0;
  PopStatus st{};
  try {
    st = c.try_pop(PyBytes_AS_STRING(b), rs, &len);
  } catch (...) {
    Py_DECREF(b);
    throw;
  }
  if (st != PopStatus::Ok) {
    Py_DECREF(b);
    return py::none();
  }
  if (len != rs) {
    _PyBytes_Resize(&b, len);
  }
  return py::reinterpret_steal<py::object>(b);
}

py::dict pbm_stats_dict(const Pbm & pbm)
{
  const PbmStats s = pbm.stats();
  py::dict d;
  d["head"] = s.head;
  d["rejected"] = s.rejected;
  d["abandoned"] = s.abandoned;
  d["consumers"] = s.consumers;
  return d;
}

TensorSpec spec_from(
  const std::vector<int64_t> & shape, const std::string & dtype, double stamp,
  const std::string & encoding, const std::optional<std::vector<int64_t>> & strides)
{
  TensorSpec spec;
  spec.dtype = dtype_from_name(dtype);
  spec.shape = shape;
  if (strides) {
    spec.strides = *strides;
  }
  spec.stamp = stamp;
  spec.encoding = encoding;
  return spec;
}

}  // namespace

PbmConsumer & PyPbmConsumer::get() const
{
  if (!consumer) {
    raise(Errc::InvalidArgument, "the PBM consumer is closed");
  }
  return *consumer;
}

PbmProducer & PyPbmProducer::get() const
{
  if (!producer) {
    raise(Errc::InvalidArgument, "the PBM producer is closed");
  }
  return *producer;
}

}  // namespace sage::mailbox::python

using namespace sage::mailbox;          // NOLINT
using namespace sage::mailbox::python;  // NOLINT

PYBIND11_MODULE(_mailbox, m)
{
  m.doc() = "Private compiled core of sage_cuda_mailbox (use the package's typed facade).";
  py::register_exception_translator([](std::exception_ptr p) {
      try {
        if (p) {
          std::rethrow_exception(p);
        }
      } catch (const MailboxError & e) {
        translate(e);
      }
    });

  m.attr("LAYOUT_VERSION") = kLayoutVersion;
  m.attr("MAX_CONSUMERS") = kMaxConsumers;
  m.attr("MAX_PRODUCERS") = kMaxParticipants;
  m.def("cuda_available", &cuda_available);
  m.def("cuda_unavailable_reason", &cuda_unavailable_reason);
  m.def("cuda_device_code_built", &cuda_device_code_built);
  m.def("unlink", [](const std::string & name) {return Segment::unlink(name);}, py::arg("name"));
  m.def("exists", [](const std::string & name) {return Segment::exists(name);}, py::arg("name"));
  m.def("monotonic_ns", &monotonic_ns);

  // ---------------------------------------------------------------- PBM
  py::class_<PyPbm>(m, "Pbm")
  .def_static("create", [](const std::string & name, int64_t record_size, int64_t capacity,
    const std::string & policy, const std::string & mode) {
      PbmConfig c{checked_u32(record_size, "record_size"), checked_u32(capacity, "capacity"),
        parse_policy(policy)};
      return PyPbm{Pbm::create(name, c, parse_mode(mode))};
    }, py::arg("name"), py::arg("record_size"), py::arg("capacity"),
    py::arg("policy") = "reject", py::arg("mode") = "create")
  .def_static("attach", [](const std::string & name, int64_t ready_timeout_ms) {
      return PyPbm{Pbm::attach(name, static_cast<uint64_t>(ready_timeout_ms))};
    }, py::arg("name"), py::arg("ready_timeout_ms") = 1000)
  .def_property_readonly("name", [](const PyPbm & p) {return p.pbm->name();})
  .def_property_readonly("record_size", [](const PyPbm & p) {return p.pbm->config().record_size;})
  .def_property_readonly("capacity", [](const PyPbm & p) {return p.pbm->config().capacity;})
  .def_property_readonly("policy", [](const PyPbm & p) {
      return policy_name(p.pbm->config().policy);
    })
  .def_property_readonly("created", [](const PyPbm & p) {return p.pbm->segment().created();})
  .def_property_readonly("retired", [](const PyPbm & p) {return p.pbm->segment().retired();})
  .def("stats", [](const PyPbm & p) {return pbm_stats_dict(*p.pbm);})
  .def("producer", [](const PyPbm & p) {
      return PyPbmProducer{std::make_shared<PbmProducer>(p.pbm)};
    })
  .def("consumer", [](const PyPbm & p, bool from_oldest) {
      return PyPbmConsumer{std::make_shared<PbmConsumer>(p.pbm, from_oldest)};
    }, py::arg("from_oldest") = false)
  .def("register_with_gpu", [](const PyPbm & p) {return p.pbm->segment().register_with_gpu();})
  .def("retire", [](const PyPbm & p) {p.pbm->segment().retire();});

  py::class_<PyPbmProducer>(m, "PbmProducer")
  .def("push", [](const PyPbmProducer & self, py::handle data) {
      Bytes b(data);
      const PushStatus st = self.get().try_push(b.data, static_cast<uint32_t>(
        b.size > 0xFFFFFFFFu ? 0xFFFFFFFFu : b.size));
      if (st == PushStatus::Abandoned) {
        raise(Errc::Abandoned, "the record was dropped: this producer was judged dead");
      }
      return st == PushStatus::Ok;
    }, py::arg("data"))
  .def("push_many", [](const PyPbmProducer & self, py::handle records) {
      Bytes b(records);
      PbmProducer & p = self.get();
      const uint32_t rs = p.pbm().config().record_size;
      if (b.size % rs != 0) {
        raise(Errc::WrongSize, "push_many needs a whole number of " + std::to_string(rs) +
          "-byte records, got " + std::to_string(b.size) + " bytes");
      }
      const size_t n = b.size / rs;
      size_t pushed = 0;
      {
        py::gil_scoped_release nogil;
        while (pushed < n && p.try_push(b.data + pushed * rs, rs) == PushStatus::Ok) {
          ++pushed;
        }
      }
      return pushed;
    }, py::arg("records"))
  .def("loan", [](const PyPbmProducer & self) -> py::object {
      PushStatus st{};
      uint8_t * p = self.get().loan(&st);
      if (p == nullptr) {
        return py::none();
      }
      return py::cast(PyPbmLoan{self.producer, p, self.get().pbm().config().record_size, true});
    })
  .def_property_readonly("index", [](const PyPbmProducer & self) {return self.get().index();})
  .def_property_readonly("pushed", [](const PyPbmProducer & self) {return self.get().pushed();})
  .def("close", [](PyPbmProducer & self) {self.producer.reset();});

  py::class_<PyPbmLoan>(m, "PbmLoan", py::buffer_protocol())
  .def_buffer([](PyPbmLoan & l) {
      if (!l.open) {
        raise(Errc::InvalidArgument, "the loan was already sent or aborted");
      }
      return py::buffer_info(l.data, 1, "B", 1, {static_cast<py::ssize_t>(l.size)}, {1}, false);
    })
  .def_property_readonly("size", [](const PyPbmLoan & l) {return l.size;})
  .def("send", [](PyPbmLoan & l, std::optional<int64_t> length) {
      if (!l.open) {
        raise(Errc::InvalidArgument, "the loan was already sent or aborted");
      }
      l.open = false;
      const PushStatus st = l.producer->send(length ? checked_u32(*length, "length") : l.size);
      if (st == PushStatus::Abandoned) {
        raise(Errc::Abandoned, "the record was dropped: this producer was judged dead");
      }
    }, py::arg("length") = py::none())
  .def("abort", [](PyPbmLoan & l) {
      if (l.open) {
        l.open = false;
        l.producer->abort();
      }
    });

  py::class_<PyPbmConsumer>(m, "PbmConsumer")
  .def("pop", [](const PyPbmConsumer & self) {return pop_bytes(self.get());})
  .def("pop_wait", [](const PyPbmConsumer & self, double timeout) -> py::object {
      PbmConsumer & c = self.get();
      const uint64_t ns = seconds_to_ns(timeout);
      py::object r = pop_bytes(c);
      if (!r.is_none() || ns == 0) {
        return r;
      }
      const uint64_t deadline = monotonic_ns() + ns;
      for (;;) {
        const uint64_t now = monotonic_ns();
        if (now >= deadline) {
          return py::none();
        }
        {
          py::gil_scoped_release nogil;
          c.wait(deadline - now < 50000000ull ? deadline - now : 50000000ull);
        }
        r = pop_bytes(c);
        if (!r.is_none()) {
          return r;
        }
      }
    }, py::arg("timeout"))
  .def("pop_into", [](const PyPbmConsumer & self, py::handle out) -> int64_t {
      WritableBytes w(out);
      uint32_t len = 0;
      if (self.get().try_pop(w.data(), static_cast<uint32_t>(w.size()), &len) != PopStatus::Ok) {
        return -1;
      }
      return len;
    }, py::arg("out"))
  .def("pop_many", [](const PyPbmConsumer & self, py::handle out) {
      WritableBytes w(out);
      PbmConsumer & c = self.get();
      const uint32_t rs = c.pbm().config().record_size;
      const size_t n = w.size() / rs;
      if (n == 0) {
        raise(Errc::WrongSize, "pop_many needs room for at least one " + std::to_string(rs) +
          "-byte record");
      }
      size_t got = 0;
      {
        py::gil_scoped_release nogil;
        uint32_t len = 0;
        while (got < n && c.try_pop(w.data() + got * rs, rs, &len) == PopStatus::Ok) {
          if (len < rs) {
            std::memset(w.data() + got * rs + len, 0, rs - len);
          }
          ++got;
        }
      }
      return got;
    }, py::arg("out"))
  .def("wait", [](const PyPbmConsumer & self, double timeout) {
      PbmConsumer & c = self.get();
      const uint64_t ns = seconds_to_ns(timeout);
      py::gil_scoped_release nogil;
      return c.wait(ns);
    }, py::arg("timeout"))
  .def("stats", [](const PyPbmConsumer & self) {
      const ConsumerStats s = self.get().stats();
      py::dict d;
      d["cursor"] = s.cursor;
      d["delivered"] = s.delivered;
      d["lost"] = s.lost;
      d["torn"] = s.torn;
      d["abandoned"] = s.abandoned;
      return d;
    })
  .def_property_readonly("index", [](const PyPbmConsumer & self) {return self.get().index();})
  .def("close", [](PyPbmConsumer & self) {self.consumer.reset();});

  // ---------------------------------------------------------------- FTM
  py::class_<PyFtm>(m, "Ftm")
  .def_static("create", [](const std::string & name, int64_t slots, int64_t max_bytes,
    const std::string & mode) {
      if (max_bytes <= 0) {
        raise(Errc::InvalidArgument, "max_bytes must be > 0");
      }
      FtmConfig c{checked_u32(slots, "slots"), static_cast<uint64_t>(max_bytes)};
      return PyFtm{Ftm::create(name, c, parse_mode(mode))};
    }, py::arg("name"), py::arg("slots"), py::arg("max_bytes"), py::arg("mode") = "create")
  .def_static("attach", [](const std::string & name, int64_t ready_timeout_ms) {
      return PyFtm{Ftm::attach(name, static_cast<uint64_t>(ready_timeout_ms))};
    }, py::arg("name"), py::arg("ready_timeout_ms") = 1000)
  .def_property_readonly("name", [](const PyFtm & f) {return f.ftm->name();})
  .def_property_readonly("slots", [](const PyFtm & f) {return f.ftm->config().slots;})
  .def_property_readonly("max_bytes", [](const PyFtm & f) {return f.ftm->config().max_bytes;})
  .def_property_readonly("created", [](const PyFtm & f) {return f.ftm->segment().created();})
  .def_property_readonly("retired", [](const PyFtm & f) {return f.ftm->segment().retired();})
  .def("stats", [](const PyFtm & f) {
      const FtmStats s = f.ftm->stats();
      py::dict d;
      d["next_sequence"] = s.next_sequence;
      d["busy"] = s.busy;
      d["abandoned"] = s.abandoned;
      return d;
    })
  .def("latest", [](const PyFtm & f) -> py::object {
      const auto d = f.ftm->latest();
      if (!d) {
        return py::none();
      }
      return py::make_tuple(d->slot, d->sequence);
    })
  .def("wait_newer", [](const PyFtm & f, uint64_t after, double timeout) {
      const uint64_t ns = seconds_to_ns(timeout);
      py::gil_scoped_release nogil;
      return f.ftm->wait_newer(after, ns);
    }, py::arg("after_sequence"), py::arg("timeout"))
  .def("writer", [](const PyFtm & f) {return PyFtmWriter{std::make_shared<FtmWriter>(f.ftm)};})
  .def("reader", [](const PyFtm & f) {return PyFtmReader{std::make_shared<FtmReader>(f.ftm)};})
  .def("register_with_gpu", [](const PyFtm & f) {return f.ftm->segment().register_with_gpu();})
  .def("retire", [](const PyFtm & f) {f.ftm->segment().retire();});

  py::class_<PyFtmWriter>(m, "FtmWriter")
  .def("loan", [](const PyFtmWriter & self, int64_t nbytes) {
      if (nbytes < 0) {
        raise(Errc::WrongSize, "nbytes must be >= 0");
      }
      uint8_t * p = self.get().loan(static_cast<uint64_t>(nbytes));
      return PyFtmLoan{self.writer, p, static_cast<uint64_t>(nbytes), true};
    }, py::arg("nbytes"))
  .def("write", [](const PyFtmWriter & self, py::buffer array, double stamp,
    const std::string & encoding) {
      FtmWriter & w = self.get();
      py::buffer_info info = array.request();
      TensorSpec spec;
      spec.dtype = dtype_of_format(info.format, static_cast<size_t>(info.itemsize));
      if (spec.dtype == DType::Invalid) {
        raise(Errc::WrongType, "unsupported element format '" + info.format + "'");
      }
      int64_t expect = info.itemsize;
      for (py::ssize_t i = info.ndim; i-- > 0; ) {
        if (info.shape[i] > 1 && info.strides[i] != expect) {
          raise(Errc::WrongType, "write() needs a C-contiguous array (np.ascontiguousarray)");
        }
        expect *= info.shape[i];
      }
      spec.shape.assign(info.shape.begin(), info.shape.end());
      spec.stamp = stamp;
      spec.encoding = encoding;
      const uint64_t extent = validate_spec(spec, w.ftm().config().max_bytes);
      uint8_t * dst = w.loan(extent);
      {
        py::gil_scoped_release nogil;
        std::memcpy(dst, info.ptr, extent);
      }
      const Descriptor d = w.commit(spec);
      return py::make_tuple(d.slot, d.sequence);
    }, py::arg("array"), py::arg("stamp") = 0.0, py::arg("encoding") = "")
  .def("close", [](PyFtmWriter & self) {self.writer.reset();});

  py::class_<PyFtmLoan>(m, "FtmLoan", py::buffer_protocol())
  .def_buffer([](PyFtmLoan & l) {
      if (!l.open) {
        raise(Errc::InvalidArgument, "the loan was already committed or aborted");
      }
      return py::buffer_info(l.data, 1, "B", 1, {static_cast<py::ssize_t>(l.size)}, {1}, false);
    })
  .def_property_readonly("size", [](const PyFtmLoan & l) {return l.size;})
  .def_property_readonly("address", [](const PyFtmLoan & l) {
      return reinterpret_cast<uintptr_t>(l.data);
    })
  .def("commit", [](PyFtmLoan & l, const std::vector<int64_t> & shape, const std::string & dtype,
    double stamp, const std::string & encoding,
    const std::optional<std::vector<int64_t>> & strides) {
      if (!l.open) {
        raise(Errc::InvalidArgument, "the loan was already committed or aborted");
      }
      const TensorSpec spec = spec_from(shape, dtype, stamp, encoding, strides);
      validate_spec(spec, l.size);  // refuse before giving the slot up
      l.open = false;
      const Descriptor d = l.writer->commit(spec);
      return py::make_tuple(d.slot, d.sequence);
    }, py::arg("shape"), py::arg("dtype"), py::arg("stamp") = 0.0, py::arg("encoding") = "",
    py::arg("strides") = py::none())
  .def("abort", [](PyFtmLoan & l) {
      if (l.open) {
        l.open = false;
        l.writer->abort();
      }
    });

  py::class_<PyFtmReader>(m, "FtmReader")
  .def(py::init([](const std::string & name) {
      return PyFtmReader{std::make_shared<FtmReader>(name)};
    }), py::arg("name"))
  .def("acquire", [](const PyFtmReader & self, int64_t slot, uint64_t sequence,
    int64_t lease_ms) {
      if (slot < 0 || slot > 0xFFFFFFFFll) {
        raise(Errc::BadDescriptor, "slot " + std::to_string(slot) + " is out of range");
      }
      if (lease_ms <= 0) {
        raise(Errc::InvalidArgument, "lease_ms must be > 0");
      }
      auto v = std::make_unique<TensorView>();
      v->lease = self.get().acquire(static_cast<uint32_t>(slot), sequence,
        static_cast<uint64_t>(lease_ms));
      v->meta = v->lease.meta();
      v->slot = static_cast<uint32_t>(slot);
      v->segment = v->lease.ftm()->name();
      return v;
    }, py::arg("slot"), py::arg("sequence"), py::arg("lease_ms") = 1000)
  .def("read_copy", [](const PyFtmReader & self, int64_t slot, uint64_t sequence) {
      if (slot < 0 || slot > 0xFFFFFFFFll) {
        raise(Errc::BadDescriptor, "slot " + std::to_string(slot) + " is out of range");
      }
      FtmReader & r = self.get();
      auto v = std::make_unique<TensorView>();
      v->owned = true;
      v->copy.resize(r.ftm()->config().max_bytes);
      {
        py::gil_scoped_release nogil;
        v->meta = r.read_copy(static_cast<uint32_t>(slot), sequence, v->copy.data(),
          v->copy.size());
      }
      v->copy.resize(v->meta.nbytes);
      v->copy.shrink_to_fit();
      v->slot = static_cast<uint32_t>(slot);
      v->segment = r.ftm()->name();
      return v;
    }, py::arg("slot"), py::arg("sequence"))
  .def("latest", [](const PyFtmReader & self) -> py::object {
      const auto d = self.get().ftm()->latest();
      if (!d) {
        return py::none();
      }
      return py::make_tuple(d->slot, d->sequence);
    })
  .def("wait_newer", [](const PyFtmReader & self, uint64_t after, double timeout) {
      const uint64_t ns = seconds_to_ns(timeout);
      auto ftm = self.get().ftm();
      py::gil_scoped_release nogil;
      return ftm->wait_newer(after, ns);
    }, py::arg("after_sequence"), py::arg("timeout"))
  .def_property_readonly("slots", [](const PyFtmReader & self) {
      return self.get().ftm()->config().slots;
    })
  .def_property_readonly("max_bytes", [](const PyFtmReader & self) {
      return self.get().ftm()->config().max_bytes;
    })
  .def("register_with_gpu", [](const PyFtmReader & self) {
      return self.get().ftm()->segment().register_with_gpu();
    })
  .def("close", [](PyFtmReader & self) {self.reader.reset();});

  py::class_<TensorView>(m, "TensorView", py::buffer_protocol())
  .def_buffer([](TensorView & v) {
      const uint8_t * data = v.data();
      std::vector<py::ssize_t> shape(v.meta.shape, v.meta.shape + v.meta.ndim);
      std::vector<py::ssize_t> strides(v.meta.strides, v.meta.strides + v.meta.ndim);
      return py::buffer_info(const_cast<uint8_t *>(data),
        static_cast<py::ssize_t>(dtype_size(v.dtype())), format_of(v.dtype()),
        static_cast<py::ssize_t>(v.meta.ndim), shape, strides, !v.owned);
    })
  .def_property_readonly("slot", [](const TensorView & v) {return v.slot;})
  .def_property_readonly("sequence", [](const TensorView & v) {return v.meta.sequence;})
  .def_property_readonly("segment", [](const TensorView & v) {return v.segment;})
  .def_property_readonly("meta", [](const TensorView & v) {return meta_dict(v.meta);})
  .def_property_readonly("leased", [](const TensorView & v) {return !v.owned && v.lease.held();})
  .def_property_readonly("address", [](const TensorView & v) {
      return reinterpret_cast<uintptr_t>(v.data());
    })
  .def_property_readonly("lease_expiry_ms", [](const TensorView & v) -> uint64_t {
      return v.owned ? 0 : v.lease.expiry_ms();
    })
  .def("valid", [](const TensorView & v) {return v.owned || v.lease.valid();})
  .def("renew", [](TensorView & v, int64_t lease_ms) {
      return !v.owned && lease_ms > 0 && v.lease.renew(static_cast<uint64_t>(lease_ms));
    }, py::arg("lease_ms"))
  .def("release", [](TensorView & v) {v.lease.release();})
  .def("__dlpack__", [](py::object self, py::args args, py::kwargs kwargs) {
      if (args.size() > 1) {
        throw py::type_error("__dlpack__ takes stream as its only positional argument");
      }
      auto get = [&](const char * k) {
          return kwargs.contains(k) ? py::object(kwargs[k]) : py::object(py::none());
        };
      return dlpack_export(self, get("max_version"), get("dl_device"), get("copy"));
    })
  .def("__dlpack_device__", [](const TensorView &) {return py::make_tuple(kDLCPU, 0);});

  bind_testing(m);
}
