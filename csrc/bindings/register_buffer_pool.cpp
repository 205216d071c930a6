// The cache of result buffers the Python layer allocates large outputs from.
#include <cstdint>
#include <memory>

#include "bindings/common.h"
#include "bindings/tracemalloc_shim.h"
#include "runtime/buffer_pool.h"

namespace logitkit::bindings {

namespace {

// The tracemalloc domain of the blocks arrays hold: memory profilers that read tracemalloc
// (as NumPy's own allocations are reported to it, in NumPy's domain) see logitkit's large
// results, and can tell them apart with a tracemalloc.DomainFilter. "lkit" in ASCII.
constexpr unsigned int kTraceDomain = 0x6c6b6974;

// A 1-d uint8 array over a cached block of at least `bytes`; the block goes back to the cache
// when the last array over it dies. While an array holds it, the block counts in tracemalloc
// at its capacity (what the process holds for it); a block in the cache does not.
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
    logitkit_trace_untrack(kTraceDomain, reinterpret_cast<std::uintptr_t>(b->data));
    runtime::give_back_buffer(*b);
  });
  const std::size_t capacity = block->capacity;
  block.release();  // the capsule owns it now
  py::array array(py::dtype("uint8"), {static_cast<py::ssize_t>(bytes)}, {py::ssize_t(1)}, data,
                  owner);
  // -2 (tracemalloc not tracing) and -1 (no memory for the trace) leave the block untraced,
  // which is all either means
  logitkit_trace_track(kTraceDomain, reinterpret_cast<std::uintptr_t>(data), capacity);
  return array;
}

}  // namespace

void register_buffer_pool(py::module_& m) {
  m.def("pooled_bytes", &pooled_bytes, py::arg("bytes"),
        "A uint8 array of `bytes` over a block from the result-buffer cache.");
  m.def("set_buffer_cache_limit", &runtime::set_buffer_cache_limit, py::arg("bytes"));
  m.def("buffer_cache_limit", &runtime::buffer_cache_limit);
  m.def("buffer_cache_bytes", &runtime::buffer_cache_bytes);
  m.attr("TRACEMALLOC_DOMAIN") = kTraceDomain;
}

}  // namespace logitkit::bindings
