// RaftLoop: one libuv event loop on its own thread. Every call into the raft
// library happens on this thread (the library is not thread-safe); other
// threads hand work over with Post(), which queues a closure and wakes the loop
// through a uv_async_t. Completions go back through promises or the caller's
// own queues, never by blocking the loop.
#pragma once

#include "src/common/status.h"

#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct uv_loop_s;
struct uv_async_s;

namespace rm::raft {

// The raft library's version, "0.22.1", and the linked libuv's.
std::string LibraryVersion();
std::string LibuvVersion();

class RaftLoop {
 public:
  RaftLoop();
  ~RaftLoop();
  RaftLoop(const RaftLoop&) = delete;
  RaftLoop& operator=(const RaftLoop&) = delete;

  Status Start();
  // Runs `fn` on the loop thread, soon. Returns false once the loop is stopping
  // (fn is then dropped).
  bool Post(std::function<void()> fn);
  // Runs `fn` on the loop thread and waits for it (not from the loop thread).
  void RunSync(const std::function<void()>& fn);
  // Runs `fn` after the loop thread has ended (e.g. to free memory libuv may
  // touch until its close callbacks ran); at once if the loop already stopped.
  void AtStop(std::function<void()> fn);
  // Stops the loop: closures already posted run, then every handle still open
  // is closed and the thread joined. Owners of raft groups close them first.
  void Stop();

  uv_loop_s* loop() { return loop_; }
  bool InLoopThread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  static void OnAsync(uv_async_s* handle);
  void Drain();

  uv_loop_s* loop_;
  uv_async_s* wakeup_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::function<void()>> queue_;  // guarded by mu_
  bool stopping_ = false;                     // guarded by mu_
  bool stopped_ = false;                      // guarded by mu_
  std::vector<std::function<void()>> at_stop_;  // guarded by mu_
  bool started_ = false;
};

}  // namespace rm::raft
