#include "bindings/common.h"

#include <stdexcept>

namespace logitkit::bindings {

namespace {
std::string prefix(const char* func) { return std::string(func) + "(): "; }
}  // namespace

// dtypes are compared by value, not identity: an array that went through pickle (as
// multiprocessing, Dask and joblib send them) carries an equal but distinct dtype object.
// Equality includes the byte order, so a byte-swapped array is refused here.
// bfloat16 has no NumPy type number of its own: it is recognised by name (ml_dtypes').
DType dtype_of(const py::array& a, const char* func, const char* arg) {
  const py::dtype dt = a.dtype();
  if (dt.equal(py::dtype::of<float>())) return DType::f32;
  if (dt.equal(py::dtype::of<double>())) return DType::f64;
  if (dt.itemsize() == 2) {
    if (dt.kind() == 'f' && dt.byteorder() != '>') return DType::f16;
    if (std::string(py::str(dt.attr("name"))) == "bfloat16") return DType::bf16;
  }
  throw py::type_error(prefix(func) + arg + " must be float16, bfloat16, float32 or float64, got " +
                       std::string(py::str(dt)));
}

DType compute_dtype(DType dt) { return dt == DType::f64 ? DType::f64 : DType::f32; }

void require_dtype(const py::array& a, DType dt, const char* func, const char* arg) {
  if (dtype_of(a, func, arg) != dt) {
    static const char* const names[] = {"float32", "float64", "float16", "bfloat16"};
    throw py::type_error(prefix(func) + arg + " must have dtype " +
                         names[static_cast<int>(dt)] + ", got " + std::string(py::str(a.dtype())));
  }
}

void require_same_dtype(const py::array& a, const py::array& b, const char* func, const char* arg) {
  if (!a.dtype().equal(b.dtype())) {
    throw py::type_error(prefix(func) + arg + " must have dtype " + std::string(py::str(a.dtype())) +
                         ", got " + std::string(py::str(b.dtype())));
  }
}

void require_writeable(const py::array& a, const char* func, const char* arg) {
  if (!a.writeable()) throw py::value_error(prefix(func) + arg + " must be writeable");
}

std::vector<py::ssize_t> shape_of(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

void require_shape(const py::array& a, const std::vector<py::ssize_t>& shape, const char* func,
                   const char* arg) {
  if (shape_of(a) != shape) {
    std::string want = "(", got = "(";
    for (auto s : shape) want += std::to_string(s) + ",";
    for (auto s : shape_of(a)) got += std::to_string(s) + ",";
    throw py::value_error(prefix(func) + arg + " must have shape " + want + ") , got " + got + ")");
  }
}

parallel::StridedArray strided(const py::array& a, bool has_axis, bool writeable) {
  const auto item = static_cast<py::ssize_t>(a.itemsize());
  const auto address = reinterpret_cast<std::uintptr_t>(a.data());
  if (address % static_cast<std::uintptr_t>(item) != 0) {
    throw py::value_error("internal error: misaligned array reached the native layer");
  }
  parallel::StridedArray s;
  if (writeable && !a.writeable()) {
    throw py::value_error("internal error: read-only output reached the native layer");
  }
  s.data = const_cast<void*>(a.data());
  const py::ssize_t outer_dims = a.ndim() - (has_axis ? 1 : 0);
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    if (a.strides(d) % item != 0) {
      throw py::value_error("internal error: stride not a multiple of the item size");
    }
    const std::ptrdiff_t stride = a.strides(d) / item;
    if (d < outer_dims) {
      s.outer_strides.push_back(stride);
    } else {
      s.axis_stride = stride;
    }
  }
  return s;
}

parallel::RowShape row_shape(const py::array& x) {
  parallel::RowShape shape;
  for (py::ssize_t d = 0; d + 1 < x.ndim(); ++d) shape.outer.push_back(x.shape(d));
  shape.n = x.shape(x.ndim() - 1);
  return shape;
}

const IsaTable& table_for(int isa) {
  if (isa < 0 || isa >= static_cast<int>(runtime::Isa::count)) {
    throw py::value_error("unknown instruction set index " + std::to_string(isa));
  }
  const IsaTable* t = runtime::usable_table(static_cast<runtime::Isa>(isa));
  if (!t) {
    throw py::value_error(std::string("instruction set '") +
                          runtime::isa_name(static_cast<runtime::Isa>(isa)) +
                          "' is not available in this build on this CPU");
  }
  return *t;
}

}  // namespace logitkit::bindings
