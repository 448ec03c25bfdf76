#include "src/cluster/write_sender.h"

#include "src/cluster/write_dispatcher.h"
#include "src/common/task_pool.h"
#include "src/partition/partitioner.h"

#include <algorithm>
#include <deque>

namespace rm {

namespace pb = raftmetrics::v1;

namespace {
constexpr std::chrono::milliseconds kDeadlineSlack{250};
}  // namespace

DirectWriteSender::DirectWriteSender(HttpClient& client, std::string cluster_secret)
    : client_(client), cluster_secret_(std::move(cluster_secret)) {}

std::future<Result<pb::ShardWriteResponse>> DirectWriteSender::Send(const std::string& address,
                                                                    pb::ShardWriteRequest request,
                                                                    std::chrono::milliseconds timeout) {
  OutgoingRequest out;
  out.method = "POST";
  out.target = "/internal/write";
  out.content_type = "application/x-protobuf";
  out.headers = InternalHeaders(cluster_secret_);
  out.body = request.SerializeAsString();
  // Deferred: the answer is parsed by whoever waits for it, on its own thread.
  return std::async(std::launch::deferred,
                    [address, response = client_.Start(address, std::move(out), timeout)]() mutable
                    -> Result<pb::ShardWriteResponse> {
                      Result<HttpResponse> resp = response.get();
                      if (!resp.ok()) return resp.status();
                      pb::ShardWriteResponse parsed;
                      if (resp->status != 200 || !parsed.ParseFromString(resp->body)) {
                        return Status(Code::kUnavailable, "worker at " + address + " answered HTTP " +
                                                              std::to_string(resp->status));
                      }
                      return parsed;
                    });
}

struct CoalescingWriteSender::Call {
  pb::ShardWriteRequest request;
  std::chrono::steady_clock::time_point deadline;
  uint64_t points = 0;
  int commands = 0;
  std::promise<Result<pb::ShardWriteResponse>> promise;
};

struct CoalescingWriteSender::Lane {
  size_t in_flight = 0;
  std::deque<std::shared_ptr<Call>> queue;
  bool stopping = false;
};

CoalescingWriteSender::CoalescingWriteSender(HttpClient& client, std::string cluster_secret, size_t max_in_flight,
                                             size_t max_points)
    : direct_(client, std::move(cluster_secret)),
      max_in_flight_(std::max<size_t>(1, max_in_flight)),
      max_points_(std::max<size_t>(1, max_points)),
      pool_(std::make_unique<TaskPool>()) {}

CoalescingWriteSender::~CoalescingWriteSender() {
  std::deque<std::shared_ptr<Call>> abandoned;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [_, lane] : lanes_) {
      lane->stopping = true;
      for (auto& call : lane->queue) abandoned.push_back(std::move(call));
      lane->queue.clear();
    }
  }
  for (auto& call : abandoned) call->promise.set_value(Status(Code::kUnavailable, "node is shutting down"));
  pool_.reset();  // waits for the requests in flight; they answer their own calls
}

std::future<Result<pb::ShardWriteResponse>> CoalescingWriteSender::Send(const std::string& address,
                                                                        pb::ShardWriteRequest request,
                                                                        std::chrono::milliseconds timeout) {
  auto call = std::make_shared<Call>();
  for (const auto& cmd : request.commands()) call->points += PointCount(cmd);
  call->commands = request.commands_size();
  call->request = std::move(request);
  call->deadline = std::chrono::steady_clock::now() + timeout;
  auto future = call->promise.get_future();
  std::unique_lock<std::mutex> lock(mu_);
  auto& lane = lanes_[address];
  if (!lane) lane = std::make_unique<Lane>();
  if (lane->stopping) {
    call->promise.set_value(Status(Code::kUnavailable, "node is shutting down"));
    return future;
  }
  lane->queue.push_back(std::move(call));
  Drain(address, *lane, lock);
  return future;
}

// With `lock` held: starts requests for the waiting calls while the lane has room.
void CoalescingWriteSender::Drain(const std::string& address, Lane& lane, std::unique_lock<std::mutex>& lock) {
  (void)lock;
  while (!lane.stopping && lane.in_flight < max_in_flight_ && !lane.queue.empty()) {
    std::vector<std::shared_ptr<Call>> batch;
    uint64_t points = 0;
    // Merged calls share the earliest deadline of the batch, so only calls whose
    // deadlines are close go together: a retry with little time left must not cut
    // short the fresh inserts queued with it (it goes in a request of its own).
    auto fits = [&](const Call& call) {
      return points + call.points <= max_points_ &&
             call.deadline - batch.front()->deadline < kDeadlineSlack &&
             batch.front()->deadline - call.deadline < kDeadlineSlack;
    };
    while (!lane.queue.empty() && (batch.empty() || fits(*lane.queue.front()))) {
      points += lane.queue.front()->points;
      batch.push_back(std::move(lane.queue.front()));
      lane.queue.pop_front();
    }
    ++lane.in_flight;
    pool_->Submit([this, address, &lane, batch = std::move(batch)]() mutable { Run(address, lane, std::move(batch)); });
  }
}

void CoalescingWriteSender::Run(const std::string& address, Lane& lane, std::vector<std::shared_ptr<Call>> batch) {
  // The earliest deadline of the merged calls bounds the request: a call never
  // waits past its own. A timeout fails them all; their commands' idempotency
  // keys make the callers' retries safe.
  auto deadline = batch.front()->deadline;
  for (const auto& call : batch) deadline = std::min(deadline, call->deadline);
  const auto timeout = std::max(std::chrono::milliseconds(1), std::chrono::duration_cast<std::chrono::milliseconds>(
                                                                  deadline - std::chrono::steady_clock::now()));
  Result<pb::ShardWriteResponse> answer = Status(Code::kInternal, "not sent");
  if (batch.size() == 1) {
    answer = direct_.Send(address, std::move(batch.front()->request), timeout).get();
  } else {
    pb::ShardWriteRequest merged;
    for (auto& call : batch) {
      for (auto& cmd : *call->request.mutable_commands()) *merged.add_commands() = std::move(cmd);
    }
    const int commands = merged.commands_size();
    answer = direct_.Send(address, std::move(merged), timeout).get();
    if (answer.ok() && answer->results_size() != commands) {
      answer = Status(Code::kUnavailable, "worker at " + address + " answered " +
                                              std::to_string(answer->results_size()) + " results for " +
                                              std::to_string(commands) + " commands");
    }
  }
  if (!answer.ok() || batch.size() == 1) {
    for (auto& call : batch) call->promise.set_value(answer);
  } else {
    // Results come in the merged request's order: each call takes its own.
    int next = 0;
    for (auto& call : batch) {
      pb::ShardWriteResponse own;
      own.set_node_id(answer->node_id());
      for (int i = 0; i < call->commands; ++i) *own.add_results() = std::move(*answer->mutable_results(next++));
      call->promise.set_value(std::move(own));
    }
  }
  std::unique_lock<std::mutex> lock(mu_);
  --lane.in_flight;
  Drain(address, lane, lock);
}

}  // namespace rm
