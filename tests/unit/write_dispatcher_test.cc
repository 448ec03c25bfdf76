// Tests of src/cluster/write_dispatcher: sending per-shard commands to their
// owners, with a fake worker (an HttpServer answering /internal/write) and a
// dead address.
#include "src/cluster/write_dispatcher.h"

#include "src/net/http_server.h"
#include "src/partition/partitioner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace rm {
namespace {

using namespace std::chrono_literals;
using raftmetrics::v1::ShardCommand;
using raftmetrics::v1::ShardWriteRequest;
using raftmetrics::v1::ShardWriteResponse;
using raftmetrics::v1::ShardWriteResult;

constexpr const char* kDeadAddress = "127.0.0.1:1";  // nothing listens on port 1

// A worker that answers /internal/write. By default every command is stored;
// `reply` can be replaced to script other answers.
class FakeWorker {
 public:
  using Reply = std::function<HttpResponse(const ShardWriteRequest&)>;

  explicit FakeWorker(std::string id) : id_(std::move(id)), server_(Options(), [this](HttpRequest& r) {
    return Handle(r);
  }) {
    reply_ = [this](const ShardWriteRequest& req) {
      ShardWriteResponse resp;
      resp.set_node_id(id_);
      for (const auto& cmd : req.commands()) {
        auto* r = resp.add_results();
        r->set_shard(cmd.shard());
        r->set_ok(true);
        r->set_stored(PointCount(cmd));
      }
      return Proto(resp);
    };
    Status s = server_.Start();
    EXPECT_TRUE(s.ok()) << s.ToString();
  }

  static HttpResponse Proto(const ShardWriteResponse& resp) {
    HttpResponse out;
    out.content_type = "application/x-protobuf";
    out.body = resp.SerializeAsString();
    return out;
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(server_.port()); }
  void set_reply(Reply reply) {
    std::lock_guard<std::mutex> lock(mu_);
    reply_ = std::move(reply);
  }
  int requests() const { return requests_.load(); }
  std::set<uint32_t> shards_seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return shards_seen_;
  }
  std::string last_internal_header() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_internal_header_;
  }
  std::string last_content_type() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_content_type_;
  }

 private:
  static HttpServerOptions Options() {
    HttpServerOptions o;
    o.bind_address = "127.0.0.1";
    o.handler_threads = 4;
    return o;
  }

  HttpResponse Handle(HttpRequest& req) {
    if (req.method != "POST" || req.path != "/internal/write") return HttpResponse::Json(404, "{}");
    ++requests_;
    ShardWriteRequest parsed;
    if (!parsed.ParseFromString(req.body)) return HttpResponse::Json(400, "{}");
    Reply reply;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& cmd : parsed.commands()) shards_seen_.insert(cmd.shard());
      last_internal_header_ = req.Header("x-raftmetrics-internal");
      last_content_type_ = req.Header("content-type");
      reply = reply_;
    }
    return reply(parsed);
  }

  std::string id_;
  std::mutex mu_;
  Reply reply_;
  std::set<uint32_t> shards_seen_;
  std::string last_internal_header_;
  std::string last_content_type_;
  std::atomic<int> requests_{0};
  HttpServer server_;  // last: stopped first, before the state its handler uses
};

ShardCommand Cmd(uint32_t shard, int points, const std::string& key = "req-1") {
  ShardCommand cmd;
  cmd.set_shard(shard);
  cmd.set_idempotency_key(key);
  auto* s = cmd.add_series();
  s->set_metric("m");
  s->set_partition_key("pk-" + std::to_string(shard));
  for (int i = 0; i < points; ++i) {
    s->add_timestamps_us(1000 + i);
    s->add_values(i);
  }
  return cmd;
}

// Commands for shards 0..3 with 1, 2, 3, 4 points.
std::map<uint32_t, ShardCommand> FourCommands() {
  std::map<uint32_t, ShardCommand> cmds;
  for (uint32_t s = 0; s < 4; ++s) cmds[s] = Cmd(s, static_cast<int>(s) + 1);
  return cmds;
}

// Four shards: "live" owns 0 and 2, "dead" owns 1 and 3.
ClusterMap LiveAndDead(const std::string& live_address, const std::string& dead_address = kDeadAddress) {
  ClusterMap map(4);
  map.UpsertWorker("live", live_address);
  map.UpsertWorker("dead", dead_address);
  map.AssignRoundRobin();
  return map;
}

// Every dispatcher test runs with both senders: one request per call
// (false), and concurrent calls merged per worker (true).
std::unique_ptr<WriteSender> MakeSender(bool coalescing, HttpClient& client) {
  if (coalescing) return std::make_unique<CoalescingWriteSender>(client, "");
  return std::make_unique<DirectWriteSender>(client, "");
}

// Four shards, round-robin over workers "a" and "b".
ClusterMap FourShardsOn(const FakeWorker& a, const FakeWorker& b) {
  ClusterMap map(4);
  map.UpsertWorker("a", a.address());
  map.UpsertWorker("b", b.address());
  map.AssignRoundRobin();
  return map;
}

class WriteDispatcherTest : public ::testing::TestWithParam<bool> {
 protected:
  WriteSummary Dispatch(const ClusterMap& map, std::map<uint32_t, ShardCommand> cmds,
                        const std::string& self_id = "control-1", const LocalApply& local = nullptr,
                        std::chrono::milliseconds timeout = 3s) {
    return DispatchWrites(map, std::move(cmds), *sender_, timeout, self_id, local);
  }
  HttpClient client_;
  std::unique_ptr<WriteSender> sender_ = MakeSender(GetParam(), client_);
};

INSTANTIATE_TEST_SUITE_P(Senders, WriteDispatcherTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Coalescing" : "Direct"; });

TEST_P(WriteDispatcherTest, EveryShardStoredWhenAllOwnersAnswer) {
  FakeWorker a("a"), b("b");
  ClusterMap map = FourShardsOn(a, b);
  WriteSummary summary = Dispatch(map, FourCommands());
  EXPECT_TRUE(summary.all_ok());
  EXPECT_EQ(summary.total_points, 10u);
  EXPECT_EQ(summary.stored_points, 10u);
  ASSERT_EQ(summary.shards.size(), 4u);
  for (uint32_t s = 0; s < 4; ++s) {
    EXPECT_EQ(summary.shards[s].shard, s);
    EXPECT_TRUE(summary.shards[s].ok);
    EXPECT_EQ(summary.shards[s].points, s + 1);
    EXPECT_EQ(summary.shards[s].stored, s + 1);
    EXPECT_TRUE(summary.shards[s].error.ok());
  }
  // One request per worker, carrying exactly that worker's shards.
  EXPECT_EQ(a.requests(), 1);
  EXPECT_EQ(b.requests(), 1);
  EXPECT_EQ(a.shards_seen(), (std::set<uint32_t>{0, 2}));
  EXPECT_EQ(b.shards_seen(), (std::set<uint32_t>{1, 3}));
  EXPECT_EQ(a.last_internal_header(), "1");
  EXPECT_EQ(a.last_content_type(), "application/x-protobuf");
}

TEST_P(WriteDispatcherTest, DeadWorkerFailsOnlyItsShards) {
  FakeWorker live("live");
  WriteSummary summary = Dispatch(LiveAndDead(live.address()), FourCommands());
  EXPECT_FALSE(summary.all_ok());
  ASSERT_EQ(summary.shards.size(), 4u);
  EXPECT_TRUE(summary.shards[0].ok);
  EXPECT_TRUE(summary.shards[2].ok);
  EXPECT_EQ(summary.shards[0].worker_id, "live");
  for (uint32_t s : {1u, 3u}) {
    const auto& o = summary.shards[s];
    EXPECT_FALSE(o.ok) << s;
    EXPECT_EQ(o.worker_id, "dead");
    EXPECT_EQ(o.stored, 0u);
    EXPECT_EQ(o.error.code(), Code::kUnavailable) << o.error.ToString();
    EXPECT_FALSE(o.error.message().empty());
  }
  EXPECT_EQ(summary.total_points, 10u);
  EXPECT_EQ(summary.stored_points, 1u + 3u);
}

TEST_P(WriteDispatcherTest, FailureStatusSaysWhatWasStoredAndWhatFailed) {
  FakeWorker live("live");
  WriteSummary summary = Dispatch(LiveAndDead(live.address()), FourCommands());
  Status s = summary.FailureStatus("client-key-9");
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_NE(s.message().find("Idempotency-Key"), std::string::npos);
  const auto& d = s.details();
  EXPECT_EQ(d.at("stored_points"), 4);
  EXPECT_EQ(d.at("total_points"), 10);
  EXPECT_EQ(d.at("stored_shards"), nlohmann::json({0, 2}));
  ASSERT_EQ(d.at("failed_shards").size(), 2u);
  const auto& f1 = d.at("failed_shards")[0];
  EXPECT_EQ(f1.at("shard"), 1);
  EXPECT_EQ(f1.at("worker_node"), "dead");
  EXPECT_EQ(f1.at("points"), 2);
  EXPECT_FALSE(f1.at("reason").get<std::string>().empty());
  EXPECT_EQ(d.at("failed_shards")[1].at("shard"), 3);
  EXPECT_EQ(d.at("failed_shards")[1].at("points"), 4);
  EXPECT_EQ(d.at("idempotency_key"), "client-key-9");
  EXPECT_EQ(d.at("retry_after"), "1s");
}

TEST_P(WriteDispatcherTest, OnlyShardsWithCommandsAreReported) {
  FakeWorker live("live");
  std::map<uint32_t, ShardCommand> cmds;
  cmds[2] = Cmd(2, 5);
  WriteSummary summary = Dispatch(LiveAndDead(live.address()), cmds);
  ASSERT_EQ(summary.shards.size(), 1u);
  EXPECT_EQ(summary.shards[0].shard, 2u);
  EXPECT_TRUE(summary.all_ok());
  EXPECT_EQ(summary.stored_points, 5u);
}

TEST_P(WriteDispatcherTest, NoCommandsIsAnEmptySuccess) {
  FakeWorker live("live");
  WriteSummary summary = Dispatch(LiveAndDead(live.address()), {});
  EXPECT_TRUE(summary.shards.empty());
  EXPECT_TRUE(summary.all_ok());
  EXPECT_EQ(live.requests(), 0);
}

TEST_P(WriteDispatcherTest, WorkerReportedShardFailureKeepsItsReason) {
  FakeWorker live("live");
  live.set_reply([](const ShardWriteRequest& req) {
    ShardWriteResponse resp;
    for (const auto& cmd : req.commands()) {
      auto* r = resp.add_results();
      r->set_shard(cmd.shard());
      if (cmd.shard() == 2) {
        r->set_ok(false);
        r->set_error("disk full");
        r->set_error_code("STORAGE_ERROR");
      } else {
        r->set_ok(true);
        r->set_stored(PointCount(cmd));
      }
    }
    return FakeWorker::Proto(resp);
  });
  ClusterMap map(4);
  map.UpsertWorker("live", live.address());
  map.AssignRoundRobin();
  WriteSummary summary = Dispatch(map, FourCommands());
  EXPECT_FALSE(summary.all_ok());
  EXPECT_TRUE(summary.shards[0].ok);
  EXPECT_FALSE(summary.shards[2].ok);
  EXPECT_EQ(summary.shards[2].error.message(), "disk full");
  EXPECT_EQ(summary.stored_points, 1u + 2u + 4u);
  EXPECT_EQ(summary.FailureStatus("k").details().at("failed_shards")[0].at("reason"), "disk full");
}

TEST_P(WriteDispatcherTest, DuplicateCountsAsStored) {
  FakeWorker live("live");
  live.set_reply([](const ShardWriteRequest& req) {
    ShardWriteResponse resp;
    for (const auto& cmd : req.commands()) {
      auto* r = resp.add_results();
      r->set_shard(cmd.shard());
      r->set_ok(true);
      r->set_duplicate(true);
      r->set_stored(7);  // what the first application stored
    }
    return FakeWorker::Proto(resp);
  });
  ClusterMap map(4);
  map.UpsertWorker("live", live.address());
  map.AssignRoundRobin();
  std::map<uint32_t, ShardCommand> cmds;
  cmds[1] = Cmd(1, 3);
  WriteSummary summary = Dispatch(map, cmds);
  ASSERT_EQ(summary.shards.size(), 1u);
  EXPECT_TRUE(summary.shards[0].ok);
  EXPECT_TRUE(summary.shards[0].duplicate);
  EXPECT_EQ(summary.shards[0].stored, 7u);
  EXPECT_EQ(summary.stored_points, 7u);
}

TEST_P(WriteDispatcherTest, NonOkHttpStatusFailsTheWorkersShards) {
  FakeWorker live("live");
  live.set_reply([](const ShardWriteRequest&) { return HttpResponse::Json(500, "{\"error\":true}"); });
  WriteSummary summary = Dispatch(LiveAndDead(live.address()), FourCommands());
  EXPECT_FALSE(summary.shards[0].ok);
  EXPECT_FALSE(summary.shards[2].ok);
  EXPECT_EQ(summary.shards[0].error.code(), Code::kUnavailable);
  EXPECT_NE(summary.shards[0].error.message().find("HTTP 500"), std::string::npos)
      << summary.shards[0].error.message();
  EXPECT_EQ(summary.stored_points, 0u);
}

TEST_P(WriteDispatcherTest, UnparsableReplyFailsTheWorkersShards) {
  FakeWorker live("live");
  live.set_reply([](const ShardWriteRequest&) {
    HttpResponse r;
    r.body = std::string("\x0f\x01", 2);  // not a ShardWriteResponse
    return r;
  });
  WriteSummary summary = Dispatch(LiveAndDead(live.address()), FourCommands());
  EXPECT_FALSE(summary.shards[0].ok);
  EXPECT_FALSE(summary.shards[2].ok);
  EXPECT_FALSE(summary.shards[0].error.ok());
}

TEST_P(WriteDispatcherTest, WorkerOmittingAShardResultMarksItFailedWithAReason) {
  // BUG src/cluster/write_dispatcher.cc:105-110: when a worker answers 200 with a
  // valid ShardWriteResponse that lacks a result for one of the shards it was
  // sent (e.g. an empty body, which parses as an empty response), that shard
  // stays ok=false but its `error` keeps the default OK Status, so
  // FailureStatus reports it with reason "" and callers cannot tell why.
  FakeWorker live("live");
  live.set_reply([](const ShardWriteRequest&) { return FakeWorker::Proto(ShardWriteResponse()); });
  WriteSummary summary = Dispatch(LiveAndDead(live.address()), FourCommands());
  EXPECT_FALSE(summary.shards[0].ok);
  EXPECT_FALSE(summary.shards[0].error.ok());
  EXPECT_NE(summary.FailureStatus("k").details().at("failed_shards")[0].at("reason"), "");
}

TEST_P(WriteDispatcherTest, SlowWorkerTimesOut) {
  FakeWorker live("live");
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  live.set_reply([released](const ShardWriteRequest&) {
    released.wait_for(10s);
    return HttpResponse::Json(500, "{}");
  });
  // A single I/O thread: with several, HttpClient sometimes reports a timeout as
  // kUnavailable (see HttpServerClient.TimeoutIsReportedAsTimeoutWithSeveralIoThreads).
  HttpClient client;
  auto sender = MakeSender(GetParam(), client);
  auto start = std::chrono::steady_clock::now();
  WriteSummary summary = DispatchWrites(LiveAndDead(live.address()), FourCommands(), *sender, 300ms, "control-1", nullptr);
  auto elapsed = std::chrono::steady_clock::now() - start;
  release.set_value();
  EXPECT_LT(elapsed, 3s);
  EXPECT_FALSE(summary.shards[0].ok);
  EXPECT_EQ(summary.shards[0].error.code(), Code::kTimeout) << summary.shards[0].error.ToString();
  EXPECT_EQ(summary.shards[1].error.code(), Code::kUnavailable);
}

TEST_P(WriteDispatcherTest, WorkersAreCalledInParallel) {
  // Each worker's handler waits until both workers have a request: a sequential
  // dispatcher would leave the first one waiting for the second.
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  std::atomic<int> saw_both{0};
  auto barrier = [&](const ShardWriteRequest& req) {
    std::unique_lock<std::mutex> lock(mu);
    ++arrived;
    cv.notify_all();
    if (cv.wait_for(lock, 2s, [&] { return arrived >= 2; })) ++saw_both;
    ShardWriteResponse resp;
    for (const auto& cmd : req.commands()) {
      auto* r = resp.add_results();
      r->set_shard(cmd.shard());
      r->set_ok(true);
      r->set_stored(PointCount(cmd));
    }
    return FakeWorker::Proto(resp);
  };
  FakeWorker a("a"), b("b");
  a.set_reply(barrier);
  b.set_reply(barrier);
  ClusterMap map = FourShardsOn(a, b);
  WriteSummary summary = Dispatch(map, FourCommands(), "control-1", nullptr, 5s);
  EXPECT_TRUE(summary.all_ok());
  EXPECT_EQ(saw_both.load(), 2);
}

TEST_P(WriteDispatcherTest, ShardsWithoutOwnerFailBeforeAssignment) {
  FakeWorker live("live");
  ClusterMap map(4);
  map.UpsertWorker("live", live.address());  // not assigned yet
  WriteSummary summary = Dispatch(map, FourCommands());
  EXPECT_FALSE(summary.all_ok());
  for (const auto& o : summary.shards) {
    EXPECT_FALSE(o.ok);
    EXPECT_EQ(o.error.code(), Code::kUnavailable);
    EXPECT_TRUE(o.worker_id.empty());
  }
  EXPECT_EQ(live.requests(), 0);
  EXPECT_EQ(summary.FailureStatus("k").details().at("failed_shards").size(), 4u);
}

TEST_P(WriteDispatcherTest, OwnShardsAreAppliedLocally) {
  FakeWorker other("other");
  ClusterMap map(4);
  map.UpsertWorker("self", kDeadAddress);  // must never be called over HTTP
  map.UpsertWorker("other", other.address());
  map.AssignRoundRobin();
  std::mutex mu;
  std::vector<uint32_t> applied;
  LocalApply local = [&](const ShardCommand& cmd) {
    std::lock_guard<std::mutex> lock(mu);
    applied.push_back(cmd.shard());
    ShardWriteResult r;
    r.set_shard(cmd.shard());
    r.set_ok(true);
    r.set_stored(PointCount(cmd));
    return r;
  };
  WriteSummary summary = Dispatch(map, FourCommands(), "self", local);
  EXPECT_TRUE(summary.all_ok()) << summary.FailureStatus("").ToString();
  EXPECT_EQ(applied, (std::vector<uint32_t>{0, 2}));
  EXPECT_EQ(other.shards_seen(), (std::set<uint32_t>{1, 3}));
  EXPECT_EQ(summary.stored_points, 10u);
  EXPECT_EQ(summary.shards[0].worker_id, "self");
}

TEST_P(WriteDispatcherTest, LocalApplyFailureIsReported) {
  ClusterMap map(2);
  map.UpsertWorker("self", kDeadAddress);
  map.AssignRoundRobin();
  LocalApply local = [](const ShardCommand& cmd) {
    ShardWriteResult r;
    r.set_shard(cmd.shard());
    r.set_ok(cmd.shard() == 0);
    if (cmd.shard() != 0) r.set_error("shard store closed");
    r.set_stored(cmd.shard() == 0 ? PointCount(cmd) : 0);
    return r;
  };
  std::map<uint32_t, ShardCommand> cmds;
  cmds[0] = Cmd(0, 2);
  cmds[1] = Cmd(1, 3);
  WriteSummary summary = Dispatch(map, cmds, "self", local);
  EXPECT_TRUE(summary.shards[0].ok);
  EXPECT_FALSE(summary.shards[1].ok);
  EXPECT_EQ(summary.shards[1].error.message(), "shard store closed");
  EXPECT_EQ(summary.stored_points, 2u);
}

TEST_P(WriteDispatcherTest, SelfWithoutLocalApplyGoesOverHttp) {
  FakeWorker self("self");
  ClusterMap map(2);
  map.UpsertWorker("self", self.address());
  map.AssignRoundRobin();
  std::map<uint32_t, ShardCommand> cmds;
  cmds[0] = Cmd(0, 1);
  cmds[1] = Cmd(1, 1);
  WriteSummary summary = Dispatch(map, cmds, "self", nullptr);
  EXPECT_TRUE(summary.all_ok());
  EXPECT_EQ(self.requests(), 1);
}

TEST_P(WriteDispatcherTest, HintNamingAWorkerKnownDownIsNotFollowed) {
  // a follower still names b, the leader that was just cut off; b would only
  // answer after 2 s (as a connect to a cut host would time out). The health
  // checks already call b down, so the write goes to c, the next healthy replica.
  FakeWorker a("a"), b("b"), c("c");
  a.set_reply([](const ShardWriteRequest& req) {
    ShardWriteResponse resp;
    for (const auto& cmd : req.commands()) {
      auto* r = resp.add_results();
      r->set_shard(cmd.shard());
      r->set_ok(false);
      r->set_error_code("NOT_LEADER");
      r->set_error("not the leader");
      r->set_leader_hint("b");
    }
    return FakeWorker::Proto(resp);
  });
  b.set_reply([](const ShardWriteRequest&) {
    std::this_thread::sleep_for(2s);
    return HttpResponse::Json(503, "{}");
  });
  ClusterMap map(1, 3);
  map.UpsertWorker("a", a.address());
  map.UpsertWorker("b", b.address());
  map.UpsertWorker("c", c.address());
  map.AssignRoundRobin();
  std::map<uint32_t, ShardCommand> cmds;
  cmds[0] = Cmd(0, 5);
  const auto start = std::chrono::steady_clock::now();
  WriteSummary summary = DispatchWrites(
      map, std::move(cmds), *sender_, 3s, "control-1", nullptr,
      [&](uint32_t) { return map.FindWorker("a"); }, nullptr,
      [](const WorkerInfo& w) { return w.id != "b"; });
  ASSERT_TRUE(summary.all_ok()) << summary.FailureStatus("").ToString();
  EXPECT_EQ(summary.shards[0].worker_id, "c");
  EXPECT_EQ(b.requests(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms);
}

// CoalescingWriteSender on its own: calls made while a request to the same
// worker is in flight go out together, and each call gets exactly its results.
ShardWriteRequest Request(std::vector<ShardCommand> cmds) {
  ShardWriteRequest req;
  for (auto& c : cmds) *req.add_commands() = std::move(c);
  return req;
}

// Holds every request until `release`; counts the commands of each request.
struct GatedWorker {
  FakeWorker worker{"w"};
  std::promise<void> gate;
  std::shared_future<void> open = gate.get_future().share();
  std::mutex mu;
  std::vector<int> commands_per_request;
  GatedWorker() {
    worker.set_reply([this](const ShardWriteRequest& req) {
      open.wait_for(10s);
      ShardWriteResponse resp;
      resp.set_node_id("w");
      for (const auto& cmd : req.commands()) {
        auto* r = resp.add_results();
        r->set_shard(cmd.shard());
        r->set_ok(true);
        r->set_stored(PointCount(cmd));
        // Which call the result belongs to, for the test to check the split.
        r->set_error(cmd.idempotency_key());
      }
      std::lock_guard<std::mutex> lock(mu);
      commands_per_request.push_back(req.commands_size());
      return FakeWorker::Proto(resp);
    });
  }
};

bool WaitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 500 && !done(); ++i) std::this_thread::sleep_for(10ms);
  return done();
}

// A gated worker and a client for the sender under test.
class CoalescingWriteSenderTest : public ::testing::Test {
 protected:
  // Sends call "a" (shard 0, 1 point) and waits until the worker holds it:
  // calls made after this queue behind it. An invalid future if it never arrived.
  std::future<Result<ShardWriteResponse>> HoldFirstRequest(CoalescingWriteSender& sender) {
    auto first = sender.Send(gated.worker.address(), Request({Cmd(0, 1, "a")}), 5s);
    if (!WaitFor([&] { return gated.worker.requests() == 1; })) return {};
    return first;
  }
  GatedWorker gated;
  HttpClient client;
};

TEST_F(CoalescingWriteSenderTest, MergesCallsMadeWhileARequestIsInFlight) {
  CoalescingWriteSender sender(client, "", /*max_in_flight=*/1);
  auto first = HoldFirstRequest(sender);
  ASSERT_TRUE(first.valid());
  // While "a" is held: three more calls, two of them for the same shard.
  auto b = sender.Send(gated.worker.address(), Request({Cmd(1, 2, "b"), Cmd(2, 3, "b")}), 5s);
  auto c = sender.Send(gated.worker.address(), Request({Cmd(1, 4, "c")}), 5s);
  auto d = sender.Send(gated.worker.address(), Request({Cmd(3, 5, "d")}), 5s);
  gated.gate.set_value();
  auto check = [](std::future<Result<ShardWriteResponse>>& f, const std::string& key,
                  std::vector<std::pair<uint32_t, uint64_t>> want) {
    auto r = f.get();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->results_size(), static_cast<int>(want.size())) << key;
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(r->results(i).shard(), want[i].first) << key;
      EXPECT_EQ(r->results(i).stored(), want[i].second) << key;
      EXPECT_EQ(r->results(i).error(), key);
    }
  };
  check(first, "a", {{0, 1}});
  check(b, "b", {{1, 2}, {2, 3}});
  check(c, "c", {{1, 4}});
  check(d, "d", {{3, 5}});
  EXPECT_EQ(gated.worker.requests(), 2);
  std::lock_guard<std::mutex> lock(gated.mu);
  EXPECT_EQ(gated.commands_per_request, (std::vector<int>{1, 4}));
}

TEST_F(CoalescingWriteSenderTest, MergedRequestsStayUnderThePointCap) {
  CoalescingWriteSender sender(client, "", /*max_in_flight=*/1, /*max_points=*/5);
  auto first = HoldFirstRequest(sender);
  ASSERT_TRUE(first.valid());
  std::vector<std::future<Result<ShardWriteResponse>>> rest;
  for (int i = 0; i < 4; ++i) rest.push_back(sender.Send(gated.worker.address(), Request({Cmd(1, 3, "x")}), 5s));
  gated.gate.set_value();
  EXPECT_TRUE(first.get().ok());
  for (auto& f : rest) EXPECT_TRUE(f.get().ok());
  std::lock_guard<std::mutex> lock(gated.mu);
  // 3 + 3 points would pass the cap of 5: one queued call per request.
  EXPECT_EQ(gated.commands_per_request, (std::vector<int>{1, 1, 1, 1, 1}));
}

TEST_F(CoalescingWriteSenderTest, ACallWithLittleTimeLeftDoesNotShortenTheOthers) {
  CoalescingWriteSender sender(client, "", 1);
  auto first = HoldFirstRequest(sender);
  ASSERT_TRUE(first.valid());
  // A dispatcher's last retry (200 ms left), then two fresh inserts.
  auto retry = sender.Send(gated.worker.address(), Request({Cmd(1, 1, "r")}), 200ms);
  auto b = sender.Send(gated.worker.address(), Request({Cmd(2, 2, "b")}), 5s);
  auto c = sender.Send(gated.worker.address(), Request({Cmd(3, 3, "c")}), 5s);
  std::this_thread::sleep_for(400ms);  // the retry's deadline passes while it waits
  gated.gate.set_value();
  EXPECT_TRUE(first.get().ok());
  (void)retry.get();  // may fail: its time was up
  auto rb = b.get(), rc = c.get();
  EXPECT_TRUE(rb.ok()) << rb.status().ToString();
  EXPECT_TRUE(rc.ok()) << rc.status().ToString();
  std::lock_guard<std::mutex> lock(gated.mu);
  // b and c went together, without the retry (whose request, if it left at all,
  // may reach the worker in either order).
  const auto& sizes = gated.commands_per_request;
  EXPECT_NE(std::find(sizes.begin(), sizes.end(), 2), sizes.end());
  EXPECT_EQ(std::find(sizes.begin(), sizes.end(), 3), sizes.end());
}

TEST_F(CoalescingWriteSenderTest, AFailedMergedRequestFailsEveryCallInIt) {
  CoalescingWriteSender sender(client, "", 1);
  auto first = HoldFirstRequest(sender);
  ASSERT_TRUE(first.valid());
  auto b = sender.Send(gated.worker.address(), Request({Cmd(1, 2, "b")}), 5s);
  auto c = sender.Send(gated.worker.address(), Request({Cmd(2, 2, "c")}), 5s);
  // The merged request is answered with one result too few: neither call may
  // take another's result.
  gated.worker.set_reply([](const ShardWriteRequest& req) {
    ShardWriteResponse resp;
    auto* r = resp.add_results();
    r->set_shard(req.commands(0).shard());
    r->set_ok(true);
    return FakeWorker::Proto(resp);
  });
  gated.gate.set_value();
  EXPECT_TRUE(first.get().ok());
  auto rb = b.get(), rc = c.get();
  ASSERT_FALSE(rb.ok());
  ASSERT_FALSE(rc.ok());
  EXPECT_EQ(rb.status().code(), Code::kUnavailable);
  EXPECT_NE(rb.status().message().find("1 results for 2 commands"), std::string::npos) << rb.status().ToString();
}

TEST(CoalescingWriteSender, UnreachableWorkerFailsEveryCall) {
  HttpClient client;
  CoalescingWriteSender sender(client, "", 1);
  std::vector<std::future<Result<ShardWriteResponse>>> calls;
  for (int i = 0; i < 5; ++i) calls.push_back(sender.Send(kDeadAddress, Request({Cmd(0, 1, "k")}), 2s));
  for (auto& f : calls) {
    auto r = f.get();
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
  }
}

TEST(CoalescingWriteSender, ManyConcurrentDispatchesEachGetTheirOwnOutcome) {
  // 16 clients × 20 writes over 4 shards on 2 workers: every write reports
  // exactly its own points, and fewer requests than writes reach the workers.
  FakeWorker a("a"), b("b");
  ClusterMap map = FourShardsOn(a, b);
  HttpClient client;
  CoalescingWriteSender sender(client, "", 1);
  std::atomic<int> wrong{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 16; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        std::map<uint32_t, ShardCommand> cmds;
        const int n = 1 + t + i;  // a different size per write
        for (uint32_t s = 0; s < 4; ++s) cmds[s] = Cmd(s, n + static_cast<int>(s), "k" + std::to_string(t));
        WriteSummary summary = DispatchWrites(map, std::move(cmds), sender, 5s, "control-1", nullptr);
        if (!summary.all_ok() || summary.stored_points != static_cast<uint64_t>(4 * n + 6)) ++wrong;
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_LT(a.requests() + b.requests(), 2 * 16 * 20);
}

TEST(AutoIdempotencyKey, UniquePerCallAndNamesTheNode) {
  std::set<std::string> keys;
  for (int i = 0; i < 1000; ++i) keys.insert(AutoIdempotencyKey("control-1"));
  EXPECT_EQ(keys.size(), 1000u);
  for (const auto& k : keys) EXPECT_EQ(k.rfind("auto:control-1:", 0), 0u) << k;
  EXPECT_NE(AutoIdempotencyKey("a"), AutoIdempotencyKey("a"));
}

TEST(InternalHeaders, MarkNodeToNodeCalls) {
  auto headers = InternalHeaders("");
  ASSERT_EQ(headers.size(), 1u);
  EXPECT_EQ(headers[0].first, "X-RaftMetrics-Internal");
  EXPECT_EQ(headers[0].second, "1");
}

TEST(InternalHeaders, CarryTheClusterSecretAsBearer) {
  auto headers = InternalHeaders("s3cret");
  ASSERT_EQ(headers.size(), 2u);
  EXPECT_EQ(headers[1].first, "Authorization");
  EXPECT_EQ(headers[1].second, "Bearer s3cret");
}

}  // namespace
}  // namespace rm
