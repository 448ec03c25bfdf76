// Tests of src/common/task_pool: results, reuse of idle threads, elasticity
// (blocked tasks never starve new ones), idle exit and draining at destruction.
#include "src/common/task_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace rm {
namespace {

using namespace std::chrono_literals;

TEST(TaskPool, RunsTasksAndReturnsTheirResults) {
  TaskPool pool;
  std::vector<std::future<int>> results;
  for (int i = 0; i < 20; ++i) results.push_back(pool.Submit([i] { return i * i; }));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(results[i].get(), i * i);
}

TEST(TaskPool, ReusesIdleThreads) {
  TaskPool pool;
  for (int i = 0; i < 50; ++i) pool.Submit([] {}).get();  // one at a time
  // A task's result is ready a moment before its thread is idle again, so a
  // second thread may start (more on a slow, sanitized build); without reuse
  // there would be 50.
  EXPECT_LE(pool.threads(), 10u);
}

TEST(TaskPool, BlockedTasksDoNotStarveNewOnes) {
  TaskPool pool(8);
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::vector<std::future<void>> blocked;
  for (int i = 0; i < 5; ++i) blocked.push_back(pool.Submit([gate] { gate.wait(); }));
  // All five wait on the gate; a sixth task still runs at once, on a new thread.
  auto free = pool.Submit([] { return 7; });
  ASSERT_EQ(free.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(free.get(), 7);
  EXPECT_EQ(pool.threads(), 6u);
  release.set_value();
  for (auto& f : blocked) f.get();
}

TEST(TaskPool, ThreadsBeyondTheCapQueue) {
  TaskPool pool(2);
  std::atomic<int> running{0}, peak{0};
  std::vector<std::future<void>> all;
  for (int i = 0; i < 10; ++i) {
    all.push_back(pool.Submit([&] {
      int now = ++running;
      int p = peak.load();
      while (now > p && !peak.compare_exchange_weak(p, now)) {
      }
      std::this_thread::sleep_for(5ms);
      --running;
    }));
  }
  for (auto& f : all) f.get();
  EXPECT_LE(peak.load(), 2);
  EXPECT_LE(pool.threads(), 2u);
}

TEST(TaskPool, IdleThreadsExit) {
  TaskPool pool(4, 50ms);
  pool.Submit([] {}).get();
  for (int i = 0; i < 200 && pool.threads() > 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(pool.threads(), 0u);
  EXPECT_EQ(pool.Submit([] { return 3; }).get(), 3);  // and new ones start again
}

TEST(TaskPool, DestructionRunsQueuedTasks) {
  std::atomic<int> done{0};
  {
    TaskPool pool(1);
    for (int i = 0; i < 10; ++i) pool.Submit([&] {
      std::this_thread::sleep_for(1ms);
      ++done;
    });
  }
  EXPECT_EQ(done.load(), 10);
}

}  // namespace
}  // namespace rm
