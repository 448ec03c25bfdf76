#include "src/raft/raft_loop.h"

#include "src/raft/raft_c.h"

#include <csignal>
#include <future>

namespace rm::raft {

// The header's version: this raft build does not export raft_version_number(),
// and scripts/fetch-raft.sh builds the library and headers from one source.
std::string LibraryVersion() {
  return std::to_string(RAFT_VERSION_MAJOR) + "." + std::to_string(RAFT_VERSION_MINOR) + "." +
         std::to_string(RAFT_VERSION_RELEASE);
}

std::string LibuvVersion() { return uv_version_string(); }

RaftLoop::RaftLoop() : loop_(new uv_loop_t), wakeup_(new uv_async_t) {
  RM_CHECK(uv_loop_init(loop_) == 0, "uv_loop_init failed");
  RM_CHECK(uv_async_init(loop_, wakeup_, &RaftLoop::OnAsync) == 0, "uv_async_init failed");
  wakeup_->data = this;
}

RaftLoop::~RaftLoop() {
  Stop();
  delete wakeup_;
  delete loop_;
}

Status RaftLoop::Start() {
  if (started_) return Status::Ok();
  // libuv writes to peers with write(2): a peer that died would kill the whole
  // process with SIGPIPE (measured: both survivors of a leader kill died).
  std::signal(SIGPIPE, SIG_IGN);
  started_ = true;
  thread_ = std::thread([this] { uv_run(loop_, UV_RUN_DEFAULT); });
  return Status::Ok();
}

bool RaftLoop::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return false;
    queue_.push_back(std::move(fn));
  }
  uv_async_send(wakeup_);
  return true;
}

void RaftLoop::RunSync(const std::function<void()>& fn) {
  RM_CHECK(!InLoopThread(), "RunSync from the loop thread would deadlock");
  std::promise<void> done;
  if (!Post([&] {
        fn();
        done.set_value();
      })) {
    return;
  }
  done.get_future().wait();
}

void RaftLoop::OnAsync(uv_async_s* handle) { static_cast<RaftLoop*>(handle->data)->Drain(); }

void RaftLoop::Drain() {
  std::vector<std::function<void()>> work;
  bool stopping;
  {
    std::lock_guard<std::mutex> lock(mu_);
    work.swap(queue_);
    stopping = stopping_;
  }
  for (auto& fn : work) fn();
  if (stopping) {
    // Close every handle still open (ours included) so uv_run returns.
    uv_walk(
        loop_,
        [](uv_handle_t* h, void*) {
          if (!uv_is_closing(h)) uv_close(h, nullptr);
        },
        nullptr);
  }
}

void RaftLoop::AtStop(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopped_) {
      at_stop_.push_back(std::move(fn));
      return;
    }
  }
  fn();
}

void RaftLoop::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (!started_) {
    uv_close(reinterpret_cast<uv_handle_t*>(wakeup_), nullptr);
    uv_run(loop_, UV_RUN_DEFAULT);
  } else {
    uv_async_send(wakeup_);
    thread_.join();
  }
  uv_loop_close(loop_);
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    tasks.swap(at_stop_);
  }
  for (auto& fn : tasks) fn();
}

}  // namespace rm::raft
