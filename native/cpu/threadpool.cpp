#include "cpu/threadpool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace sw::cpu {
namespace {

thread_local bool t_inside_region = false;

class Pool {
 public:
  Pool() {
    int n = static_cast<int>(std::thread::hardware_concurrency());
    if (const char* env = std::getenv("STARWEAVE_NUM_THREADS")) n = std::atoi(env);
    resize(std::max(1, n));
  }
  ~Pool() { stop_workers(); }

  int size() const { return size_; }

  void resize(int n) {
    std::lock_guard<std::mutex> region(region_mu_);
    stop_workers();
    size_ = n;
    stopping_ = false;
    const uint64_t gen = generation_;  // new workers must not treat the last region as new
    for (int t = 1; t < n; ++t) workers_.emplace_back([this, t, gen] { worker_loop(t, gen); });
  }

  void run(int64_t n_tasks, TaskFn fn, void* ctx) {
    if (n_tasks <= 0) return;
    if (t_inside_region || size_ == 1 || n_tasks == 1) {
      for (int64_t i = 0; i < n_tasks; ++i) fn(ctx, i, 0);
      return;
    }
    std::lock_guard<std::mutex> region(region_mu_);
    fn_ = fn;
    ctx_ = ctx;
    n_tasks_ = n_tasks;
    next_.store(0, std::memory_order_relaxed);
    pending_.store(size_ - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(mu_);
      generation_++;
      spin_gen_.store(generation_, std::memory_order_release);
    }
    cv_.notify_all();
    t_inside_region = true;
    work(0);
    t_inside_region = false;
    // Wait for the workers to leave this generation (they may still hold fn_).
    int spins = 0;
    while (pending_.load(std::memory_order_acquire) != 0) {
      if (++spins > 4000) std::this_thread::yield();
    }
    fn_ = nullptr;
  }

 private:
  void work(int thread) {
    for (;;) {
      int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
      if (i >= n_tasks_) break;
      fn_(ctx_, i, thread);
    }
  }

  void worker_loop(int thread, uint64_t seen) {
    t_inside_region = true;
    for (;;) {
      // Spin briefly (kernels issue regions back to back), then sleep.
      bool got = false;
      for (int s = 0; s < 20000; ++s) {
        if (spin_gen_.load(std::memory_order_acquire) != seen || stopping_flag_.load(std::memory_order_acquire)) break;
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
      }
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return generation_ != seen || stopping_; });
        if (stopping_) return;
        seen = generation_;
        got = true;
      }
      if (got) {
        work(thread);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping_ = true;
    }
    stopping_flag_.store(true);
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
    stopping_flag_.store(false);
  }

  int size_ = 1;
  std::vector<std::thread> workers_;
  std::mutex region_mu_;  // one parallel region at a time
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t generation_ = 0;
  bool stopping_ = false;
  std::atomic<uint64_t> spin_gen_{0};
  std::atomic<bool> stopping_flag_{false};
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int> pending_{0};
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: worker threads must not be joined during static teardown
  return *p;
}

}  // namespace

int num_threads() { return pool().size(); }

void set_num_threads(int n) { pool().resize(std::max(1, n)); }

void parallel_for_raw(int64_t n_tasks, TaskFn fn, void* ctx) { pool().run(n_tasks, fn, ctx); }

void parallel_range_raw(int64_t n, int64_t align, RangeFn fn, void* ctx) {
  if (n <= 0) return;
  int nt = num_threads();
  align = std::max<int64_t>(1, align);
  int64_t units = (n + align - 1) / align;
  int64_t chunks = std::min<int64_t>(nt, units);
  parallel_for(chunks, [&](int64_t c, int thread) {
    int64_t b = units * c / chunks * align, e = std::min(n, units * (c + 1) / chunks * align);
    if (b < e) fn(ctx, b, e, thread);
  });
}

}  // namespace sw::cpu
