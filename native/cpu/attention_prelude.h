// Declarations shared by the ISA builds of the attention kernel (attention.cpp, attention_avx2.cpp,
// attention_avx512.cpp) and the headers attention_impl.inc needs, included at global scope by each
// build before it opens its namespace (standard headers must never be included inside a namespace).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

#include "cpu/attention.h"
#include "cpu/threadpool.h"

namespace sw::cpu {

// One entry pair per ISA build; attention_forward/backward (attention.cpp) dispatch on active_isa().
// backward's dq_scratch_budget: bytes of per-thread dQ scratch it may use (all threads together)
// before it switches to recomputing the scores in a separate dQ pass.
namespace attn_portable {
void forward(const AttentionShape& s, const float* q, const float* k, const float* v, const std::int32_t* segment,
             float* out, float* lse);
void backward(const AttentionShape& s, const float* q, const float* k, const float* v, const std::int32_t* segment,
              const float* out, const float* lse, const float* dout, float* dq, float* dk, float* dv,
              std::int64_t dq_scratch_budget);
}  // namespace attn_portable
namespace attn_avx2 {
void forward(const AttentionShape& s, const float* q, const float* k, const float* v, const std::int32_t* segment,
             float* out, float* lse);
void backward(const AttentionShape& s, const float* q, const float* k, const float* v, const std::int32_t* segment,
              const float* out, const float* lse, const float* dout, float* dq, float* dk, float* dv,
              std::int64_t dq_scratch_budget);
}  // namespace attn_avx2
namespace attn_avx512 {
void forward(const AttentionShape& s, const float* q, const float* k, const float* v, const std::int32_t* segment,
             float* out, float* lse);
void backward(const AttentionShape& s, const float* q, const float* k, const float* v, const std::int32_t* segment,
              const float* out, const float* lse, const float* dout, float* dq, float* dk, float* dv,
              std::int64_t dq_scratch_budget);
void forward_bf16(const AttentionShape& s, const float* q, const float* k, const float* v, const std::int32_t* segment,
                  float* out, float* lse);
void backward_bf16(const AttentionShape& s, const float* q, const float* k, const float* v, const std::int32_t* segment,
                   const float* out, const float* lse, const float* dout, float* dq, float* dk, float* dv,
                   std::int64_t dq_scratch_budget);
}  // namespace attn_avx512

// Test hook (not part of the public contract): the dQ scratch budget attention_backward passes down;
// the self-test lowers it to 0 to exercise the recomputing dQ pass. Default 256 MiB.
void attention_set_dq_scratch_budget(std::int64_t bytes);

}  // namespace sw::cpu
