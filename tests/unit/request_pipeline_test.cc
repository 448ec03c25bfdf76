// Tests of src/gateway/request_pipeline: authentication, the internal-endpoint
// rules, rate limiting and its headers, request ids, /stats counters, metrics.
#include "src/gateway/request_pipeline.h"

#include "src/common/request_context.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <stdexcept>

namespace rm {
namespace {

HttpRequest Req(const std::string& method, const std::string& path, const std::string& token = "") {
  HttpRequest r;
  r.method = method;
  r.path = path;
  r.target = path;
  if (!token.empty()) r.headers["authorization"] = "Bearer " + token;
  return r;
}

std::string HeaderOf(const HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

nlohmann::json Body(const HttpResponse& r) { return nlohmann::json::parse(r.body); }

class PipelineTest : public testing::Test {
 protected:
  PipelineTest() {
    router_.Add("GET", "/health", [](HttpRequest&) { return HttpResponse::Json(200, "{}"); });
    router_.Add("GET", "/aggregate", [this](HttpRequest&) {
      seen_request_id_ = CurrentRequestId();
      return HttpResponse::Json(200, "{}");
    });
    router_.Add("POST", "/internal/write", [](HttpRequest&) { return HttpResponse::Json(200, "{}"); });
    router_.Add("GET", "/boom", [](HttpRequest&) -> HttpResponse { throw std::runtime_error("bug"); });
  }

  RequestPipeline Make(GatewayOptions options, const std::string& auth_tokens, const std::string& file_text = "") {
    std::string path;
    if (!file_text.empty()) {
      path = testing::TempDir() + "/pipeline_tokens.txt";
      std::ofstream(path) << file_text;
    }
    auto tokens = TokenStore::Load(auth_tokens, path);
    EXPECT_TRUE(tokens.ok()) << tokens.status().ToString();
    return RequestPipeline(options, std::move(*tokens), router_, metrics_);
  }

  Router router_;
  MetricsRegistry metrics_;
  std::string seen_request_id_;
};

TEST_F(PipelineTest, MissingInvalidAndExpiredTokensAre401) {
  GatewayOptions o;
  o.cluster_secret = "sekret";
  auto p = Make(o, "good", "old:stale-token:2020-01-01T00:00:00Z\n");

  auto missing = Req("GET", "/aggregate");
  auto r = p.Handle(missing);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Body(r)["code"], "AUTH_ERROR");
  EXPECT_EQ(Body(r)["error"], true);
  EXPECT_EQ(Body(r)["details"]["token_status"], "missing");
  EXPECT_NE(HeaderOf(r, "WWW-Authenticate"), "");
  EXPECT_EQ(HeaderOf(r, "X-RateLimit-Limit"), "");  // no bucket for the unauthenticated

  auto bad = Req("GET", "/aggregate", "wrong");
  r = p.Handle(bad);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Body(r)["details"]["token_status"], "invalid");
  EXPECT_EQ(Body(r)["message"], "Invalid or expired authentication token");

  auto expired = Req("GET", "/aggregate", "stale-token");
  r = p.Handle(expired);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Body(r)["details"]["token_status"], "expired");
  EXPECT_EQ(Body(r)["details"]["expires_at"], "2020-01-01T00:00:00Z");

  auto basic = Req("GET", "/aggregate");
  basic.headers["authorization"] = "Basic Z29vZA==";
  EXPECT_EQ(p.Handle(basic).status, 401);

  auto ok = Req("GET", "/aggregate", "good");
  EXPECT_EQ(p.Handle(ok).status, 200);
  // An unknown path is 404 only for those who may know it.
  auto unknown = Req("GET", "/nope");
  EXPECT_EQ(p.Handle(unknown).status, 401);
  auto unknown_ok = Req("GET", "/nope", "good");
  EXPECT_EQ(p.Handle(unknown_ok).status, 404);
}

TEST_F(PipelineTest, InternalEndpointsTakeOnlyTheClusterSecret) {
  GatewayOptions o;
  o.cluster_secret = "sekret";
  o.rate_limit_per_minute = 1;
  auto p = Make(o, "good");
  auto user = Req("POST", "/internal/write", "good");
  auto r = p.Handle(user);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(Body(r)["code"], "AUTH_ERROR");
  auto none = Req("POST", "/internal/write");
  r = p.Handle(none);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Body(r)["details"]["token_status"], "missing");
  auto wrong = Req("POST", "/internal/write", "guess");
  EXPECT_EQ(p.Handle(wrong).status, 401);
  // Peers are never rate limited, on internal or public endpoints.
  for (int i = 0; i < 5; ++i) {
    auto peer = Req("POST", "/internal/write", "sekret");
    EXPECT_EQ(p.Handle(peer).status, 200);
    auto peer_public = Req("GET", "/health", "sekret");
    EXPECT_EQ(p.Handle(peer_public).status, 200);
  }
}

TEST_F(PipelineTest, WithoutTokensTheSecretIsDerivedSoInternalStaysClosed) {
  GatewayOptions o;  // no CLUSTER_SECRET
  auto p = Make(o, "good");
  EXPECT_FALSE(p.cluster_secret().empty());
  auto none = Req("POST", "/internal/write");
  EXPECT_EQ(p.Handle(none).status, 401);
  auto peer = Req("POST", "/internal/write", p.cluster_secret());
  EXPECT_EQ(p.Handle(peer).status, 200);
}

TEST_F(PipelineTest, OpenClusterWithoutTokensOrSecret) {
  auto p = Make(GatewayOptions{}, "");
  EXPECT_TRUE(p.cluster_secret().empty());
  auto pub = Req("GET", "/aggregate");
  EXPECT_EQ(p.Handle(pub).status, 200);
  auto internal = Req("POST", "/internal/write");
  EXPECT_EQ(p.Handle(internal).status, 200);
}

TEST_F(PipelineTest, PublicHealthSwitch) {
  GatewayOptions o;
  auto closed = Make(o, "good");
  auto h = Req("GET", "/health");
  EXPECT_EQ(closed.Handle(h).status, 401);
  o.public_health = true;
  MetricsRegistry other;
  auto tokens = TokenStore::Load("good", "");
  RequestPipeline open(o, std::move(*tokens), router_, other);
  auto h2 = Req("GET", "/health");
  EXPECT_EQ(open.Handle(h2).status, 200);
  auto agg = Req("GET", "/aggregate");
  EXPECT_EQ(open.Handle(agg).status, 401);  // only /health is exempt
}

TEST_F(PipelineTest, RateLimitPerTokenWithHeaders) {
  GatewayOptions o;
  o.rate_limit_per_minute = 3;
  auto p = Make(o, "a,b");
  for (int i = 0; i < 3; ++i) {
    auto req = Req("GET", "/health", "a");  // /health counts too
    auto r = p.Handle(req);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(HeaderOf(r, "X-RateLimit-Limit"), "3");
    EXPECT_EQ(HeaderOf(r, "X-RateLimit-Remaining"), std::to_string(2 - i));
    EXPECT_FALSE(HeaderOf(r, "X-RateLimit-Reset").empty());
  }
  auto req = Req("GET", "/aggregate", "a");
  auto r = p.Handle(req);
  EXPECT_EQ(r.status, 429);
  auto body = Body(r);
  EXPECT_EQ(body["code"], "RATE_LIMIT_EXCEEDED");
  EXPECT_EQ(body["message"], "Too many requests");
  EXPECT_EQ(body["details"]["limit"], 3);
  EXPECT_EQ(body["details"]["window"], "1m");
  EXPECT_TRUE(body["details"]["reset_at"].is_string());
  EXPECT_EQ(HeaderOf(r, "Retry-After"), "20");  // 60 s / 3 per minute
  EXPECT_EQ(HeaderOf(r, "X-RateLimit-Remaining"), "0");
  auto other = Req("GET", "/aggregate", "b");
  EXPECT_EQ(p.Handle(other).status, 200);  // per token
}

TEST_F(PipelineTest, RequestIdIsAdoptedOrGeneratedAndEchoed) {
  auto p = Make(GatewayOptions{}, "");
  auto req = Req("GET", "/aggregate");
  req.headers["x-request-id"] = "client-id-1";
  auto r = p.Handle(req);
  EXPECT_EQ(HeaderOf(r, "X-Request-Id"), "client-id-1");
  EXPECT_EQ(seen_request_id_, "client-id-1");
  auto hostile = Req("GET", "/aggregate");
  hostile.headers["x-request-id"] = "bad id\r\nSet-Cookie: x";
  r = p.Handle(hostile);
  EXPECT_EQ(HeaderOf(r, "X-Request-Id").size(), 16u);
  EXPECT_EQ(seen_request_id_, HeaderOf(r, "X-Request-Id"));
  EXPECT_EQ(CurrentRequestId(), "");  // restored after the request
  auto refused = Req("GET", "/nope");
  EXPECT_FALSE(HeaderOf(p.Handle(refused), "X-Request-Id").empty());
}

TEST_F(PipelineTest, StatsAndMetricsCountEveryOutcome) {
  GatewayOptions o;
  o.rate_limit_per_minute = 100;
  auto p = Make(o, "good");
  auto ok = Req("GET", "/aggregate", "good");
  p.Handle(ok);
  auto boom = Req("GET", "/boom", "good");
  auto r = p.Handle(boom);
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(Body(r)["code"], "INTERNAL_ERROR");
  auto denied = Req("GET", "/aggregate");
  p.Handle(denied);
  auto stats = p.StatsJson();
  EXPECT_EQ(stats["requests_received"], 3);
  EXPECT_EQ(stats["requests_accepted"], 2);
  EXPECT_EQ(stats["requests_completed"], 1);
  EXPECT_EQ(stats["requests_failed"], 1);
  EXPECT_EQ(stats["requests_rejected"], 1);
  EXPECT_GE(stats["avg_completion_ms"].get<double>(), 0.0);
  std::string text = metrics_.Render();
  EXPECT_NE(text.find("raftmetrics_http_requests_total{endpoint=\"/aggregate\",method=\"GET\",status=\"200\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("raftmetrics_http_requests_total{endpoint=\"/aggregate\",method=\"GET\",status=\"401\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("raftmetrics_auth_failures_total{reason=\"missing\"} 1"), std::string::npos);
  EXPECT_NE(text.find("raftmetrics_queries_total{endpoint=\"/aggregate\",outcome=\"ok\"} 1"), std::string::npos);
  EXPECT_NE(text.find("raftmetrics_http_request_duration_seconds_count{endpoint=\"/aggregate\",method=\"GET\"} 2"),
            std::string::npos);
}

TEST_F(PipelineTest, UnknownPathsShareOneMetricLabel) {
  auto p = Make(GatewayOptions{}, "");
  for (int i = 0; i < 50; ++i) {
    auto req = Req("GET", "/scan-" + std::to_string(i));
    p.Handle(req);
  }
  std::string text = metrics_.Render();
  EXPECT_NE(text.find("endpoint=\"unmatched\",method=\"GET\",status=\"404\"} 50"), std::string::npos) << text;
  EXPECT_EQ(text.find("/scan-"), std::string::npos);
}

}  // namespace
}  // namespace rm
