// Rebalancer: moves shard replicas between workers while the cluster serves
// (RF >= 2). In the background it asks the placement planner
// (src/cluster/placement.h) for the next move, caused by a joined worker, a
// decommission (POST /remove) or a worker dead longer than
// --replace-dead-after-s, and carries it out, one at a time:
//   1. the move is recorded in the cluster map (persisted): the target worker
//      starts an empty replica of the shard (a learner);
//   2. the shard's leader adds it to the group, which lets it catch up (log or
//      snapshot) before promoting it to voter;
//   3. the leader removes the old replica from the group;
//   4. the map completes the move; the old worker then drops its copy.
// Each step is idempotent, so a move interrupted by a failure or a restart of
// the control node is resumed from the map. Writes go on throughout: the group
// never has fewer than its replication factor of up-to-date voters.
// Thread-safe.
#pragma once

#include "src/cluster/cluster_map.h"
#include "src/cluster/node_config.h"
#include "src/control/worker_pool.h"
#include "src/net/http_client.h"

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace rm {

class Rebalancer {
 public:
  // `may_act`: whether this control node decides moves now (the meta leader).
  Rebalancer(NodeConfig config, WorkerPool& pool, HttpClient& client, std::function<bool()> may_act);
  ~Rebalancer();
  void Start();
  void Stop();
  // Wakes the loop now (a worker joined or is being removed).
  void Poke();
  // Moves done since start, and the one in progress (for /status).
  nlohmann::json StatusJson() const;

 private:
  void Loop();
  // One planning round: carries out at most one move. True when it did one.
  bool RunOnce();
  Status Execute(const ReplicaMove& move);
  // Sends a membership change to the shard's leader, following NOT_LEADER hints.
  Status ChangeMembers(uint32_t shard, const nlohmann::json& body);
  bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds limit);
  // Pauses for `pause`; false when the rebalancer is stopping (at once).
  bool SleepUnlessStopping(std::chrono::milliseconds pause);

  const NodeConfig config_;
  WorkerPool& pool_;
  HttpClient& client_;
  const std::function<bool()> may_act_;
  const int64_t started_us_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool poked_ = false;
  uint64_t moves_done_ = 0;
  nlohmann::json current_;     // the move in progress, or null
  std::string last_error_;
  std::thread loop_;
};

}  // namespace rm
