// The id of the request the current thread is serving, so that every log line
// and every call to another node made on its behalf carries it (X-Request-Id)
// without threading it through every function. Handlers run to completion on one
// handler thread, which is what makes a thread-local the right home for it.
#pragma once

#include <string>

namespace rm {

// "" when the thread is not serving a request.
const std::string& CurrentRequestId();

// Sets the current request id for the lifetime of the scope, restoring the
// previous one afterwards (scopes nest).
class RequestIdScope {
 public:
  explicit RequestIdScope(std::string id);
  ~RequestIdScope();
  RequestIdScope(const RequestIdScope&) = delete;
  RequestIdScope& operator=(const RequestIdScope&) = delete;

 private:
  std::string previous_;
};

// A fresh random id: 16 lowercase hex digits.
std::string NewRequestId();
// True when `id` is safe to adopt from a client: 1..128 characters of
// [A-Za-z0-9._:-] (it is echoed in headers and written to logs).
bool IsAcceptableRequestId(const std::string& id);

}  // namespace rm
