// The cache of result buffers the Python layer allocates large outputs from.
#include <memory>

#include "bindings/common.h"
#include "runtime/buffer_pool.h"

namespace logitkit::bindings {

namespace {

// A 1-d uint8 array over a cached block of at least `bytes`; the block goes back to the cache
// when the last array over it dies.
py::array pooled_bytes(std::size_t bytes) {
  auto block = std::make_unique<runtime::BufferBlock>(runtime::take_buffer(bytes));
  void* data = block->data;
  struct Return {  // the block goes back if the capsule cannot be made
    std::unique_ptr<runtime::BufferBlock>& b;
    ~Return() {
      if (b) runtime::give_back_buffer(*b);
    }
  } on_failure{block};
  py::capsule owner(block.get(), [](void* p) {
    std::unique_ptr<runtime::BufferBlock> b(static_cast<runtime::BufferBlock*>(p));
    runtime::give_back_buffer(*b);
  });
  block.release();  // the capsule owns it now
  return py::array(py::dtype("uint8"), {static_cast<py::ssize_t>(bytes)}, {py::ssize_t(1)}, data,
                   owner);
}

}  // namespace

void register_buffer_pool(py::module_& m) {
  m.def("pooled_bytes", &pooled_bytes, py::arg("bytes"),
        "A uint8 array of `bytes` over a block from the result-buffer cache.");
  m.def("set_buffer_cache_limit", &runtime::set_buffer_cache_limit, py::arg("bytes"));
  m.def("buffer_cache_limit", &runtime::buffer_cache_limit);
  m.def("buffer_cache_bytes", &runtime::buffer_cache_bytes);
}

}  // namespace logitkit::bindings
