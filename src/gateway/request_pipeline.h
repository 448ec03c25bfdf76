// RequestPipeline: what every request of a node passes through before and after
// its handler, in this order:
//   1. request id: the client's X-Request-Id if acceptable, else a new one; it is
//      the thread's current id while the request runs and echoed in the response;
//   2. authentication: a user bearer token (401 AUTH_ERROR when missing, unknown
//      or expired), or the cluster secret of another node. /internal/ endpoints
//      take only the secret (403 for a user token, 401 without credential);
//   3. rate limiting per token (429 RATE_LIMIT_EXCEEDED, X-RateLimit-* headers);
//   4. routing (src/net/router.h) and the handler;
//   5. accounting: Prometheus metrics, /stats counters and an access log line.
//
// With no tokens configured the public API is open, and with neither tokens nor
// a cluster secret so are the internal endpoints (a warning says so at start).
// Calls between nodes (cluster secret) are never rate limited.
#pragma once

#include "src/common/log_limiter.h"
#include "src/gateway/rate_limiter.h"
#include "src/gateway/tokens.h"
#include "src/net/router.h"
#include "src/observability/metrics_registry.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <set>
#include <string>

namespace rm {

struct GatewayOptions {
  bool public_health = false;      // /health needs no token (for load balancers)
  std::string cluster_secret;      // "" = derived from the tokens, or none without tokens
  uint32_t rate_limit_per_minute = 1000;  // per token; 0 = unlimited
  // Routes counted as queries (raftmetrics_queries_total, ..._query_duration_seconds).
  std::set<std::string> query_endpoints = {"/analytics", "/aggregate", "/compute", "/internal/query",
                                           "/internal/aggregate"};
};

class RequestPipeline {
 public:
  RequestPipeline(GatewayOptions options, TokenStore tokens, const Router& router, MetricsRegistry& metrics);

  // The HttpServer handler.
  HttpResponse Handle(HttpRequest& req);
  // The HttpServer's screen: authenticates and rate-limits a request from its
  // headers, before its body is read or memory reserved for it. Returns the
  // refusal (counted and logged as Handle would), or nullopt after recording
  // the admission in `req`, so Handle does not take a second rate-limit token.
  std::optional<HttpResponse> Screen(HttpRequest& req);

  // Seed 002's request counters: received (every request), accepted (passed
  // authentication and rate limiting), completed (accepted and answered below
  // 500), failed (accepted and answered 500 or above), and the mean time of the
  // completed ones.
  nlohmann::json StatsJson() const;

  // The secret this node presents to, and expects from, other nodes ("" = none).
  const std::string& cluster_secret() const { return secret_; }
  bool auth_enabled() const { return tokens_.enabled(); }

 private:
  // Authenticates and rate-limits; returns an error response to send instead of
  // running the handler, or nullopt to go on. Adds rate-limit headers to `headers`.
  std::optional<HttpResponse> Admit(const HttpRequest& req, std::vector<std::pair<std::string, std::string>>& headers,
                                    std::string& principal);
  // Handle after admission: runs the handler unless `refused`, then adds the
  // headers and does the accounting and the access log.
  HttpResponse Serve(HttpRequest& req, std::optional<HttpResponse> refused,
                     std::vector<std::pair<std::string, std::string>> headers, const std::string& principal,
                     std::chrono::steady_clock::time_point start);

  const GatewayOptions options_;
  const TokenStore tokens_;
  const std::string secret_;
  const Router& router_;
  RateLimiter limiter_;
  LogLimiter warn_limiter_{60};  // access-log warnings per endpoint and status

  MetricFamily& requests_total_;
  MetricFamily& request_seconds_;
  MetricFamily& auth_failures_;
  MetricFamily& rate_limited_;
  MetricFamily& queries_total_;
  MetricFamily& query_seconds_;

  std::atomic<uint64_t> received_{0}, accepted_{0}, completed_{0}, failed_{0};
  std::atomic<uint64_t> completed_us_{0};
};

}  // namespace rm
