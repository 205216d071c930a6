// The driver's settings shared by every operation (see schedule.h).
#include "parallel/schedule.h"

#include <vector>

namespace logitkit::parallel {

namespace detail {
// 16 MiB: half of this machine class's last-level cache, which the input shares.
std::atomic<ptrdiff_t> g_stream_min_bytes{ptrdiff_t(16) << 20};

Workspace scratch_block(std::size_t bytes) {
  thread_local std::vector<unsigned char> block;
  if (block.size() < bytes) block.resize(bytes);
  return Workspace{block.data(), block.data() + block.size()};
}

}  // namespace detail

ptrdiff_t stream_min_bytes() { return detail::g_stream_min_bytes.load(); }
void set_stream_min_bytes(ptrdiff_t bytes) { detail::g_stream_min_bytes.store(bytes); }

}  // namespace logitkit::parallel
