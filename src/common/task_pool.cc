#include "src/common/task_pool.h"

namespace rm {

TaskPool::TaskPool(size_t max_threads, std::chrono::milliseconds idle_timeout)
    : max_threads_(max_threads < 1 ? 1 : max_threads), idle_timeout_(idle_timeout) {}

TaskPool::~TaskPool() {
  std::unique_lock<std::mutex> lock(mu_);
  stopping_ = true;
  cv_.notify_all();
  exited_cv_.wait(lock, [&] { return threads_ == 0; });
}

size_t TaskPool::threads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return threads_;
}

void TaskPool::Enqueue(std::function<void()> task) {
  std::lock_guard<std::mutex> lock(mu_);
  queue_.push_back(std::move(task));
  // Queued tasks beyond the idle threads get a thread of their own.
  if (queue_.size() > idle_ && threads_ < max_threads_) {
    ++threads_;
    std::thread([this] { Run(); }).detach();
  } else {
    cv_.notify_one();
  }
}

void TaskPool::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (queue_.empty()) {
      if (stopping_) break;
      ++idle_;
      const bool woke = cv_.wait_for(lock, idle_timeout_, [&] { return !queue_.empty() || stopping_; });
      --idle_;
      if (!woke) break;  // idle too long
      continue;
    }
    auto task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
  --threads_;
  exited_cv_.notify_all();
}

}  // namespace rm
