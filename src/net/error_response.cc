#include "src/net/error_response.h"

namespace rm {

int HttpStatusFor(Code code) {
  switch (code) {
    case Code::kOk: return 200;
    case Code::kValidation: return 400;
    case Code::kInvalidRequest: return 400;
    case Code::kUnauthenticated: return 401;
    case Code::kForbidden: return 403;
    case Code::kNotFound: return 404;
    case Code::kMethodNotAllowed: return 405;
    case Code::kPayloadTooLarge: return 413;
    case Code::kRateLimited: return 429;
    case Code::kUnavailable: return 503;
    case Code::kTimeout: return 503;
    case Code::kRaft: return 503;
    case Code::kStorage: return 500;
    case Code::kStorageFull: return 507;
    case Code::kInternal: return 500;
  }
  return 500;
}

const char* ErrorCodeName(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kValidation: return "VALIDATION_ERROR";
    case Code::kInvalidRequest: return "INVALID_REQUEST";
    case Code::kUnauthenticated: return "AUTH_ERROR";
    case Code::kForbidden: return "AUTH_ERROR";
    case Code::kNotFound: return "NOT_FOUND";
    case Code::kMethodNotAllowed: return "METHOD_NOT_ALLOWED";
    case Code::kPayloadTooLarge: return "PAYLOAD_TOO_LARGE";
    case Code::kRateLimited: return "RATE_LIMIT_EXCEEDED";
    case Code::kUnavailable: return "UNAVAILABLE";
    case Code::kTimeout: return "TIMEOUT";
    case Code::kRaft: return "RAFT_ERROR";
    case Code::kStorage: return "STORAGE_ERROR";
    case Code::kStorageFull: return "STORAGE_ERROR";
    case Code::kInternal: return "INTERNAL_ERROR";
  }
  return "INTERNAL_ERROR";
}

HttpResponse ErrorResponse(const Status& status) {
  nlohmann::json body = {{"error", true},
                         {"code", ErrorCodeName(status.code())},
                         {"message", status.message()},
                         {"details", status.details()}};
  // Details echo request bytes (a path, a parameter name, a Content-Type) that
  // need not be UTF-8: replace those bytes (U+FFFD) instead of throwing, which
  // turned a client's 400/404 into a 500.
  HttpResponse resp = HttpResponse::Json(HttpStatusFor(status.code()),
                                         body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  if (status.details().contains("retry_after") && status.details()["retry_after"].is_string()) {
    std::string ra = status.details()["retry_after"].get<std::string>();
    if (!ra.empty() && ra.back() == 's') ra.pop_back();
    resp.headers.emplace_back("Retry-After", ra);
  }
  return resp;
}

}  // namespace rm
