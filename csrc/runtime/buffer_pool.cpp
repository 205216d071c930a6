#include "runtime/buffer_pool.h"

#include <cstdlib>
#include <deque>
#include <mutex>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace logitkit::runtime {

namespace {

// Capacities are whole huge pages, so that a block maps onto them and a cached block fits
// the next request of about its size.
constexpr std::size_t kGranule = std::size_t(2) << 20;

struct Cache {
  std::mutex mutex;
  std::deque<BufferBlock> blocks;  // most recently returned first
  std::size_t bytes = 0;
  std::size_t limit = std::size_t(256) << 20;
};

Cache& cache() {
  // Never destroyed: arrays may return their blocks during interpreter shutdown.
  static Cache* c = new Cache;
  return *c;
}

// Frees the oldest blocks until the cache is within its limit; the caller holds the mutex.
void trim(Cache& c) {
  while (c.bytes > c.limit && !c.blocks.empty()) {
    std::free(c.blocks.back().data);
    c.bytes -= c.blocks.back().capacity;
    c.blocks.pop_back();
  }
}

}  // namespace

BufferBlock take_buffer(std::size_t bytes) {
  const std::size_t capacity = (std::max<std::size_t>(bytes, 1) + kGranule - 1) / kGranule * kGranule;
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    for (auto it = c.blocks.begin(); it != c.blocks.end(); ++it) {
      if (it->capacity >= capacity && it->capacity <= capacity + capacity / 4) {
        const BufferBlock b = *it;
        c.blocks.erase(it);
        c.bytes -= b.capacity;
        return b;
      }
    }
  }
  void* p = std::aligned_alloc(kGranule, capacity);
  if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  madvise(p, capacity, MADV_HUGEPAGE);  // a hint: the faults are then one per 2 MiB
#endif
  return {p, capacity};
}

void give_back_buffer(BufferBlock block) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  if (block.capacity > c.limit) {  // it would only push out the blocks that do fit
    std::free(block.data);
    return;
  }
  c.blocks.push_front(block);
  c.bytes += block.capacity;
  trim(c);
}

std::size_t set_buffer_cache_limit(std::size_t bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  const std::size_t previous = c.limit;
  c.limit = bytes;
  trim(c);
  return previous;
}

std::size_t buffer_cache_limit() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.limit;
}

std::size_t buffer_cache_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.bytes;
}

}  // namespace logitkit::runtime
