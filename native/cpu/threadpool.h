// A persistent thread pool shared by all CPU kernels of the process.
//
// parallel_for(n, fn) runs fn(i, thread) for i in [0, n) on the pool's threads and the calling thread,
// and returns when all are done. One parallel region runs at a time: a second caller (another Node
// worker thread, an async op) waits for the first; a call from inside a task runs inline, serially.
//
// The interface is a plain function pointer + context underneath (the templates below instantiate per
// lambda type, which is local to its file): ISA-specific files (*_avx512.cpp) must not instantiate
// shared templates such as std::function, whose one linked copy could carry AVX-512 instructions.
#pragma once
#include <cstdint>
#include <type_traits>

namespace sw::cpu {

// Number of threads a parallel region uses (including the caller). Defaults to the number of cores
// (or STARWEAVE_NUM_THREADS).
int num_threads();
// Resize the pool (n >= 1); takes effect for the next parallel region.
void set_num_threads(int n);

using TaskFn = void (*)(void* ctx, int64_t task, int thread);
using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end, int thread);

void parallel_for_raw(int64_t n_tasks, TaskFn fn, void* ctx);
void parallel_range_raw(int64_t n, int64_t align, RangeFn fn, void* ctx);

// fn(task_index, thread_index): thread_index in [0, num_threads()), stable within the region (use it
// to pick per-thread scratch). Tasks are handed out dynamically in index order.
template <typename F>
inline void parallel_for(int64_t n_tasks, F&& fn) {
  using Fn = typename std::remove_reference<F>::type;
  parallel_for_raw(n_tasks, [](void* c, int64_t task, int thread) { (*static_cast<Fn*>(c))(task, thread); },
                   const_cast<void*>(static_cast<const void*>(&fn)));
}

// Split [0, n) into num_threads() contiguous chunks (aligned to `align`), and run fn(begin, end, thread).
template <typename F>
inline void parallel_range(int64_t n, int64_t align, F&& fn) {
  using Fn = typename std::remove_reference<F>::type;
  parallel_range_raw(n, align, [](void* c, int64_t b, int64_t e, int thread) { (*static_cast<Fn*>(c))(b, e, thread); },
                     const_cast<void*>(static_cast<const void*>(&fn)));
}

}  // namespace sw::cpu
