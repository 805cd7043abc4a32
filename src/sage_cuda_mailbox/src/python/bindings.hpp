// Shared declarations of the pybind11 module _mailbox.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>

#include "sage_cuda_mailbox/pbm.hpp"

namespace sage::mailbox::python
{

/// Python-side owner of a PBM consumer (closable; shared with helpers such as testing).
struct PyPbmConsumer
{
  std::shared_ptr<PbmConsumer> consumer;
  PbmConsumer & get() const;
};

/// Python-side owner of a PBM producer.
struct PyPbmProducer
{
  std::shared_ptr<PbmProducer> producer;
  PbmProducer & get() const;
};

void bind_testing(pybind11::module_ & m);

}  // namespace sage::mailbox::python
