// The avx512 kernel table: the generic kernels compiled for this instruction set, in a
// namespace of their own so that no avx512 code can be shared with another ISA's.
#define LOGITKIT_ISA_NS isa_avx512
#include "kernels/make_table.h"
#include "runtime/tables.h"
#include "simd/avx512.h"

namespace logitkit {

const IsaTable* isa_table_avx512() {
  static const IsaTable table =
      isa_avx512::make_table<simd::avx512::VF32, simd::avx512::VF64>("avx512");
  return &table;
}

}  // namespace logitkit
