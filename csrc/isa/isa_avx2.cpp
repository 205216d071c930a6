// The avx2 kernel table: the generic kernels compiled for this instruction set, in a
// namespace of their own so that no avx2 code can be shared with another ISA's.
#define LOGITKIT_ISA_NS isa_avx2
#include "kernels/make_table.h"
#include "runtime/tables.h"
#include "simd/avx2.h"

namespace logitkit {

const IsaTable* isa_table_avx2() {
  static const IsaTable table =
      isa_avx2::make_table<simd::avx2::VF32, simd::avx2::VF64>("avx2");
  return &table;
}

}  // namespace logitkit
