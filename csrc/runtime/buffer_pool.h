// Result buffers kept for reuse. A large new array costs the kernel a page fault and a page
// zeroing per page on its first write: for a 64 MiB softmax that is as long as the softmax
// itself. Results that die go back here, up to a byte limit, and the next result of a similar
// size reuses their pages.
#pragma once
#include <cstddef>

namespace logitkit::runtime {

struct BufferBlock {
  void* data = nullptr;
  std::size_t capacity = 0;  // bytes
};

// A block of at least `bytes` (64-byte aligned, huge-page backed where the system allows):
// a cached one whose capacity is at most 1.25x the request, else a new one. Thread-safe.
// Throws std::bad_alloc when memory runs out.
BufferBlock take_buffer(std::size_t bytes);

// Back into the cache, or freed when it would take the cache over its limit (the oldest
// blocks are freed first).
void give_back_buffer(BufferBlock block);

// Bytes the cache may hold (0: none; blocks are freed as they come back). Returns the
// previous limit; lowering it frees what no longer fits.
std::size_t set_buffer_cache_limit(std::size_t bytes);
std::size_t buffer_cache_limit();
std::size_t buffer_cache_bytes();  // held right now

}  // namespace logitkit::runtime
