// The single mapping from Status codes to HTTP statuses and the seed's error
// shape: {"error": true, "code": "...", "message": "...", "details": {...}}.
#pragma once

#include "src/common/status.h"
#include "src/net/http_types.h"

namespace rm {

// HTTP status for a code (400, 404, 405, 413, 500, 503 ...).
int HttpStatusFor(Code code);
// Seed error code string for a Status ("VALIDATION_ERROR", "RAFT_ERROR" ...).
const char* ErrorCodeName(Code code);
// JSON error response; adds Retry-After for 503s whose details carry retry_after.
HttpResponse ErrorResponse(const Status& status);

}  // namespace rm
