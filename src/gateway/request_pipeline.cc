#include "src/gateway/request_pipeline.h"

#include "src/common/request_context.h"
#include "src/common/time_util.h"
#include "src/net/error_response.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace rm {

namespace {

std::string SecretFor(const GatewayOptions& options, const TokenStore& tokens) {
  if (!options.cluster_secret.empty()) return options.cluster_secret;
  return tokens.enabled() ? tokens.DerivedClusterSecret() : "";
}

bool IsInternal(const std::string& path) { return path.rfind("/internal/", 0) == 0; }

std::string Seconds(int64_t micros) { return std::to_string((micros + 999999) / 1000000); }

}  // namespace

RequestPipeline::RequestPipeline(GatewayOptions options, TokenStore tokens, const Router& router,
                                 MetricsRegistry& metrics)
    : options_(std::move(options)),
      tokens_(std::move(tokens)),
      secret_(SecretFor(options_, tokens_)),
      router_(router),
      limiter_(options_.rate_limit_per_minute),
      requests_total_(metrics.AddCounter("raftmetrics_http_requests_total", "HTTP requests by endpoint, method and status",
                                         {"endpoint", "method", "status"})),
      request_seconds_(metrics.AddHistogram("raftmetrics_http_request_duration_seconds",
                                            "Time from a complete request to its response, by endpoint and method",
                                            {"endpoint", "method"}, MetricsRegistry::LatencyBuckets())),
      auth_failures_(metrics.AddCounter("raftmetrics_auth_failures_total",
                                        "Requests refused by authentication, by reason", {"reason"})),
      rate_limited_(metrics.AddCounter("raftmetrics_rate_limited_total", "Requests refused by the rate limit")),
      queries_total_(metrics.AddCounter("raftmetrics_queries_total", "Queries answered, by endpoint and outcome",
                                        {"endpoint", "outcome"})),
      query_seconds_(metrics.AddHistogram("raftmetrics_query_duration_seconds", "Query latency by endpoint",
                                          {"endpoint"}, MetricsRegistry::LatencyBuckets())) {
  MetricFamily& buckets = metrics.AddGauge("raftmetrics_rate_limit_buckets",
                                           "Token buckets held by the rate limiter (one per token seen)");
  metrics.AddCollector([this, &buckets] { buckets.Set({}, static_cast<double>(limiter_.tracked_keys())); });
  if (!tokens_.enabled()) {
    spdlog::warn("authentication is off: no tokens configured (AUTH_TOKENS or --tokens-file)");
  }
  if (secret_.empty()) {
    spdlog::warn("no cluster secret: /internal/ endpoints accept any caller that presents no user token");
  } else if (options_.cluster_secret.empty()) {
    spdlog::warn("CLUSTER_SECRET not set: node-to-node calls use a secret derived from the tokens; "
                 "set CLUSTER_SECRET so that token holders cannot call /internal/ endpoints");
  }
}

std::optional<HttpResponse> RequestPipeline::Admit(const HttpRequest& req,
                                                   std::vector<std::pair<std::string, std::string>>& headers,
                                                   std::string& principal) {
  const int64_t now = NowMicros();
  auto bearer = BearerToken(req.Header("authorization"));
  auto refuse = [&](Code code, const std::string& message, nlohmann::json details, const char* reason) {
    auth_failures_.Add({reason});
    HttpResponse resp = ErrorResponse(Status(code, message, std::move(details)));
    if (code == Code::kUnauthenticated) resp.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"raftmetrics\"");
    return resp;
  };
  if (!secret_.empty() && bearer && ConstantTimeEquals(*bearer, secret_)) {
    principal = "peer";
    return std::nullopt;
  }
  if (IsInternal(req.path)) {
    TokenCheck check = tokens_.Check(bearer, now);
    if (check.status == TokenStatus::kValid || check.status == TokenStatus::kExpired) {
      return refuse(Code::kForbidden, "Internal endpoints accept only other RaftMetrics nodes, not user tokens",
                    {{"token_status", TokenStatusName(check.status)}, {"path", req.path}}, "user_token_on_internal");
    }
    if (secret_.empty()) {
      principal = "anonymous";
      return std::nullopt;
    }
    const bool missing = !bearer || bearer->empty();
    return refuse(Code::kUnauthenticated, "Internal endpoint: the cluster secret is required",
                  {{"token_status", missing ? "missing" : "invalid"}}, missing ? "missing" : "invalid");
  }
  if (!tokens_.enabled() || (options_.public_health && req.path == "/health")) {
    principal = "anonymous";
    return std::nullopt;
  }
  TokenCheck check = tokens_.Check(bearer, now);
  switch (check.status) {
    case TokenStatus::kMissing:
      return refuse(Code::kUnauthenticated, "Missing authentication token: send Authorization: Bearer <token>",
                    {{"token_status", "missing"}}, "missing");
    case TokenStatus::kInvalid:
      return refuse(Code::kUnauthenticated, "Invalid or expired authentication token",
                    {{"token_status", "invalid"}}, "invalid");
    case TokenStatus::kExpired:
      return refuse(Code::kUnauthenticated, "Invalid or expired authentication token",
                    {{"token_status", "expired"}, {"expires_at", FormatIso8601(*check.entry->expires_us)}},
                    "expired");
    case TokenStatus::kValid:
      break;
  }
  principal = check.entry->name;
  if (!limiter_.enabled()) return std::nullopt;
  RateDecision d = limiter_.Take(check.entry->name, now);
  headers.emplace_back("X-RateLimit-Limit", std::to_string(d.limit));
  headers.emplace_back("X-RateLimit-Remaining", std::to_string(d.remaining));
  headers.emplace_back("X-RateLimit-Reset", std::to_string((d.reset_at_us + 999999) / 1000000));
  if (d.allowed) return std::nullopt;
  rate_limited_.Add({});
  HttpResponse resp = ErrorResponse(Status(Code::kRateLimited, "Too many requests",
                                           {{"limit", d.limit},
                                            {"window", "1m"},
                                            {"reset_at", FormatIso8601((d.reset_at_us + 999999) / 1000000 * 1000000)},
                                            {"retry_after", Seconds(d.retry_after_us) + "s"}}));
  // ErrorResponse derived Retry-After from details.retry_after.
  return resp;
}

std::optional<HttpResponse> RequestPipeline::Screen(HttpRequest& req) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::pair<std::string, std::string>> headers;
  std::string principal;
  std::optional<HttpResponse> refused = Admit(req, headers, principal);
  if (!refused) {
    req.admission = HttpRequest::Admission{std::move(principal), std::move(headers)};
    return std::nullopt;
  }
  ++received_;
  const std::string& offered = req.Header("x-request-id");
  RequestIdScope scope(IsAcceptableRequestId(offered) ? offered : NewRequestId());
  return Serve(req, std::move(refused), std::move(headers), principal, start);
}

HttpResponse RequestPipeline::Handle(HttpRequest& req) {
  const auto start = std::chrono::steady_clock::now();
  ++received_;
  const std::string& offered = req.Header("x-request-id");
  RequestIdScope scope(IsAcceptableRequestId(offered) ? offered : NewRequestId());
  if (req.admission) {
    auto admission = std::move(*req.admission);
    return Serve(req, std::nullopt, std::move(admission.headers), admission.principal, start);
  }
  std::vector<std::pair<std::string, std::string>> headers;
  std::string principal;
  std::optional<HttpResponse> refused = Admit(req, headers, principal);
  return Serve(req, std::move(refused), std::move(headers), principal, start);
}

HttpResponse RequestPipeline::Serve(HttpRequest& req, std::optional<HttpResponse> refused,
                                    std::vector<std::pair<std::string, std::string>> headers,
                                    const std::string& principal, std::chrono::steady_clock::time_point start) {
  const bool admitted = !refused;
  HttpResponse resp;
  if (admitted) {
    ++accepted_;
    try {
      resp = router_.Dispatch(req);
    } catch (const std::exception& e) {
      spdlog::error("handler for {} {} threw: {}", req.method, req.path, e.what());
      resp = ErrorResponse(Status(Code::kInternal, "Internal error", {{"reason", e.what()}}));
    }
  } else {
    resp = std::move(*refused);
  }
  for (auto& h : headers) resp.headers.push_back(std::move(h));
  resp.headers.emplace_back("X-Request-Id", CurrentRequestId());

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (admitted) {
    if (resp.status < 500) {
      ++completed_;
      completed_us_ += static_cast<uint64_t>(seconds * 1e6);
    } else {
      ++failed_;
    }
  }
  std::string endpoint = router_.RouteOf(req);
  if (endpoint.empty()) endpoint = "unmatched";  // bounded label values, whatever clients send
  requests_total_.Add({endpoint, req.method.size() <= 8 ? req.method : "other", std::to_string(resp.status)});
  request_seconds_.Observe({endpoint, req.method.size() <= 8 ? req.method : "other"}, seconds);
  if (admitted && options_.query_endpoints.count(endpoint)) {
    queries_total_.Add({endpoint, resp.status < 400 ? "ok" : resp.status < 500 ? "rejected" : "failed"});
    query_seconds_.Observe({endpoint}, seconds);
  }
  // A 503 from /health is its answer ("not ready yet"), polled by scripts and
  // probes, not a failure to warn about.
  const bool health_answer = req.path == "/health" && resp.status == 503;
  auto level = resp.status >= 500 && !health_answer ? spdlog::level::warn : spdlog::level::debug;
  if (spdlog::should_log(level)) {
    // Failing requests warn, but a client repeating one cannot flood the log:
    // 60 lines a minute per endpoint and status, then a count.
    uint64_t suppressed = 0;
    if (level < spdlog::level::warn ||
        warn_limiter_.Allow(endpoint + " " + std::to_string(resp.status), NowMicros(), &suppressed)) {
      spdlog::log(level, "{} {} {} {:.1f}ms by {} from {}{}", req.method, req.path, resp.status, seconds * 1e3,
                  principal.empty() ? "unauthenticated" : principal, req.remote,
                  suppressed ? " (" + std::to_string(suppressed) + " similar lines suppressed)" : "");
    }
  }
  return resp;
}

nlohmann::json RequestPipeline::StatsJson() const {
  const uint64_t accepted = accepted_.load();  // before received_: never more than it
  const uint64_t received = received_.load();
  const uint64_t completed = completed_.load();
  const double avg_ms = completed ? completed_us_.load() / 1e3 / completed : 0.0;
  return {{"requests_received", received},
          {"requests_accepted", accepted},
          {"requests_completed", completed},
          {"requests_failed", failed_.load()},
          {"requests_rejected", received - accepted},
          {"avg_completion_ms", avg_ms},
          {"total_completion_ms", completed_us_.load() / 1e3}};
}

}  // namespace rm
