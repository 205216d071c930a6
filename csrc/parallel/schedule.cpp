// The driver's settings shared by every operation (see schedule.h).
#include "parallel/schedule.h"

namespace logitkit::parallel {

namespace detail {
// 16 MiB: half of this machine class's last-level cache, which the input shares.
std::atomic<ptrdiff_t> g_stream_min_bytes{ptrdiff_t(16) << 20};
}  // namespace detail

ptrdiff_t stream_min_bytes() { return detail::g_stream_min_bytes.load(); }
void set_stream_min_bytes(ptrdiff_t bytes) { detail::g_stream_min_bytes.store(bytes); }

}  // namespace logitkit::parallel
