// The sse2 kernel table: the generic kernels compiled for this instruction set, in a
// namespace of their own so that no sse2 code can be shared with another ISA's.
#define LOGITKIT_ISA_NS isa_sse2
#include "kernels/make_table.h"
#include "runtime/tables.h"
#include "simd/sse2.h"

namespace logitkit {

const IsaTable* isa_table_sse2() {
  static const IsaTable table =
      isa_sse2::make_table<simd::sse2::VF32, simd::sse2::VF64>("sse2");
  return &table;
}

}  // namespace logitkit
