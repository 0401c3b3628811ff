// A persistent thread pool shared by all CPU kernels of the process.
//
// parallel_for(n, fn) runs fn(i, thread) for i in [0, n) on the pool's threads and the calling thread,
// and returns when all are done. One parallel region runs at a time: a second caller (another Node
// worker thread, an async op) waits for the first; a call from inside a task runs inline, serially.
#pragma once
#include <cstdint>
#include <functional>

namespace sw::cpu {

// Number of threads a parallel region uses (including the caller). Defaults to the number of cores
// (or STARWEAVE_NUM_THREADS).
int num_threads();
// Resize the pool (n >= 1); takes effect for the next parallel region.
void set_num_threads(int n);

// fn(task_index, thread_index): thread_index in [0, num_threads()), stable within the region (use it
// to pick per-thread scratch). Tasks are handed out dynamically in index order.
void parallel_for(int64_t n_tasks, const std::function<void(int64_t task, int thread)>& fn);

// Split [0, n) into num_threads() contiguous chunks (aligned to `align`), and run fn(begin, end, thread).
void parallel_range(int64_t n, int64_t align, const std::function<void(int64_t begin, int64_t end, int thread)>& fn);

}  // namespace sw::cpu
