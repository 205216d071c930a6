// The memory yardstick: a read and a copy with the kernels' own loads and stores, against
// which the benchmarks measure the kernels.
#include "bindings/common.h"

namespace logitkit::bindings {

namespace {

const float* float_buffer(const py::array& a, const char* func, const char* arg) {
  if (!py::isinstance<py::array_t<float>>(a) || a.ndim() != 1 ||
      (a.shape(0) > 1 && a.strides(0) != static_cast<py::ssize_t>(sizeof(float)))) {
    throw py::value_error(std::string(func) + "(): " + arg +
                          " must be a contiguous 1-d float32 array");
  }
  return static_cast<const float*>(a.data());
}

double bandwidth_read(const py::array& x, int isa, int threads) {
  const float* xp = float_buffer(x, "bandwidth_read", "x");
  const auto& k = table_for(isa).bandwidth;
  const int nt = runtime::resolve_threads(threads);
  ReleaseGil release;
  return parallel::bandwidth_read(k, xp, x.shape(0), nt);
}

void bandwidth_copy(const py::array& x, py::array& out, bool nontemporal, int isa, int threads) {
  const float* xp = float_buffer(x, "bandwidth_copy", "x");
  float_buffer(out, "bandwidth_copy", "out");
  require_writeable(out, "bandwidth_copy", "out");
  if (out.shape(0) != x.shape(0)) {
    throw py::value_error("bandwidth_copy(): x and out must have the same length");
  }
  float* yp = static_cast<float*>(out.mutable_data());
  const auto& k = table_for(isa).bandwidth;
  const int nt = runtime::resolve_threads(threads);
  ReleaseGil release;
  parallel::bandwidth_copy(k, xp, yp, x.shape(0), nontemporal, nt);
}

}  // namespace

void register_yardstick(py::module_& m) {
  m.def("bandwidth_read", &bandwidth_read, py::arg("x"), py::arg("isa"), py::arg("threads"),
        "The read yardstick: sum of a contiguous float32 buffer, as fast as it can be read.");
  m.def("bandwidth_copy", &bandwidth_copy, py::arg("x"), py::arg("out"), py::arg("nontemporal"),
        py::arg("isa"), py::arg("threads"),
        "The copy yardstick: out[:] = x for contiguous float32 buffers, with plain or "
        "non-temporal stores.");
}

}  // namespace logitkit::bindings
