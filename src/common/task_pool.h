// TaskPool: threads that are kept and reused to run submitted tasks.
//
// Why not std::async: a thread per task costs a thread start and, when the
// thread exits, DuckDB's allocator (jemalloc) purging that thread's cache with
// madvise and a TLB shootdown on every core. On the 2-core VM of
// docs/benchmarks.md that was most of a worker's CPU during ingest, where every
// shard command ran on a fresh thread.
//
// The pool is elastic, like std::async: a task never waits for a free thread
// while fewer than `max_threads` exist (tasks may block on other nodes, which
// may be waiting on this one, so a small fixed pool could deadlock). Threads
// idle for `idle_timeout` exit. Thread-safe; the destructor runs every queued
// task and joins.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace rm {

class TaskPool {
 public:
  explicit TaskPool(size_t max_threads = 256, std::chrono::milliseconds idle_timeout = std::chrono::seconds(30));
  ~TaskPool();
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  template <class F>
  std::future<std::invoke_result_t<F>> Submit(F&& f) {
    auto task = std::make_shared<std::packaged_task<std::invoke_result_t<F>()>>(std::forward<F>(f));
    auto future = task->get_future();
    Enqueue([task] { (*task)(); });
    return future;
  }

  // Threads alive now (for tests).
  size_t threads() const;

 private:
  void Enqueue(std::function<void()> task);
  void Run();

  const size_t max_threads_;
  const std::chrono::milliseconds idle_timeout_;
  mutable std::mutex mu_;
  std::condition_variable cv_;         // a task was queued, or stopping
  std::condition_variable exited_cv_;  // a thread exited
  std::deque<std::function<void()>> queue_;
  size_t threads_ = 0;
  size_t idle_ = 0;
  bool stopping_ = false;
};

}  // namespace rm
