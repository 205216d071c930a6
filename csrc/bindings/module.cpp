// The native module: each binding file registers its own functions.
#include "bindings/common.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "logitkit native kernels (private: use the logitkit package)";
  logitkit::bindings::register_runtime(m);
  logitkit::bindings::register_yardstick(m);
  logitkit::bindings::register_buffer_pool(m);
  logitkit::bindings::register_reductions(m);
  logitkit::bindings::register_elementwise(m);
  logitkit::bindings::register_losses(m);
  logitkit::bindings::register_eval(m);
}
