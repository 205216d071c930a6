// Helpers shared by the binding files: checks on arrays handed over by the Python layer
// (which owns the NumPy semantics) and the conversion to the driver's strided views.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include <string>

#include "kernels/table.h"
#include "parallel/driver.h"
#include "runtime/runtime.h"

namespace logitkit::bindings {

namespace py = pybind11;

// Releases the GIL while native code runs, like py::gil_scoped_release, except that its
// destructor may let the thread end. A daemon thread that returns from a kernel while the
// interpreter shuts down is stopped by pthread_exit inside PyEval_RestoreThread; the unwinding
// that follows calls std::terminate (aborting the process) if it meets a noexcept destructor,
// which gil_scoped_release's is.
class ReleaseGil {
 public:
  ReleaseGil() : state_(PyEval_SaveThread()) {}
  ~ReleaseGil() noexcept(false) { PyEval_RestoreThread(state_); }
  ReleaseGil(const ReleaseGil&) = delete;
  ReleaseGil& operator=(const ReleaseGil&) = delete;

 private:
  PyThreadState* state_;
};

// The element types the kernels take: float32 and float64, and the 16-bit storage types
// float16 and bfloat16 (ml_dtypes), which compute in float32.
enum class DType { f32, f64, f16, bf16 };

// The DType of a: TypeError naming func and arg for any other dtype.
DType dtype_of(const py::array& a, const char* func, const char* arg);

// Calls fn(S{}) with S the storage type of dt: float, double, half_t or bf16_t. The one place
// where the bindings turn a dtype into a kernel type.
template <class Fn>
decltype(auto) with_storage(DType dt, Fn&& fn) {
  if (dt == DType::f16) return fn(half_t{});
  if (dt == DType::bf16) return fn(bf16_t{});
  if (dt == DType::f64) return fn(double{});
  return fn(float{});
}

// Per-row results and the options of 16-bit inputs are in float32, their compute type.
DType compute_dtype(DType dt);
void require_dtype(const py::array& a, DType dt, const char* func, const char* arg);
void require_same_dtype(const py::array& a, const py::array& b, const char* func, const char* arg);
void require_writeable(const py::array& a, const char* func, const char* arg);
void require_shape(const py::array& a, const std::vector<py::ssize_t>& shape, const char* func,
                   const char* arg);
std::vector<py::ssize_t> shape_of(const py::array& a);

// The view of `a` with its last axis as the reduction axis (`has_axis`) or without one.
parallel::StridedArray strided(const py::array& a, bool has_axis, bool writeable = false);
parallel::RowShape row_shape(const py::array& x);

const IsaTable& table_for(int isa);

void register_runtime(py::module_& m);
void register_yardstick(py::module_& m);
void register_buffer_pool(py::module_& m);
void register_reductions(py::module_& m);
void register_elementwise(py::module_& m);
void register_losses(py::module_& m);
void register_eval(py::module_& m);

}  // namespace logitkit::bindings
