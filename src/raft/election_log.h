// ElectionLog: passes the raft library's own account of elections to the
// node's log — why a replica stayed follower, became candidate, granted or
// denied a vote, stepped down. When a failover is slow, these lines say which
// rule held it up (e.g. "persisting 3 entries -> stay follower" on a slow
// disk, or "local server has a leader -> reject").
//
// The library writes a diagnostic for every heartbeat and entry as well; only
// the election sources are kept, and at most kLinesPerMinute per group, so a
// long outage (a peer that keeps asking for votes) cannot flood the log.
//
// Runs on the group's loop thread, like every library callback.
#pragma once

#include "src/raft/raft_c.h"

#include <cstdint>
#include <string>

namespace rm::raft {

class ElectionLog {
 public:
  static constexpr int kLinesPerMinute = 60;

  // Replaces `r`'s tracer (after raft_init, which installs its own).
  // `name` prefixes every line, e.g. "shard 3".
  void Attach(struct raft* r, std::string name);

  // Whether a diagnostic from `file` (the library's source file) and `level`
  // (1 error .. 5 trace) is kept: errors and warnings from anywhere, info from
  // the election sources.
  static bool Keeps(const char* file, int level);

 private:
  static void Emit(struct raft_tracer* t, int type, const void* info);
  void Log(const char* message, int level);

  struct raft_tracer tracer_ {};  // impl points back here
  std::string name_;
  int64_t window_start_us_ = 0;
  int lines_ = 0;
  uint64_t suppressed_ = 0;
};

}  // namespace rm::raft
