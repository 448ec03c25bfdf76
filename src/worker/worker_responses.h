// Helpers shared by WorkerService's files: its two answer shapes, and the free
// space of its data directory.
#pragma once

#include "src/net/http_types.h"

#include <google/protobuf/message.h>
#include <nlohmann/json.hpp>
#include <sys/statvfs.h>

#include <cstdint>
#include <string>

namespace rm {

inline HttpResponse JsonResponse(const nlohmann::json& body, int status = 200) {
  return HttpResponse::Json(status, body.dump());
}

inline HttpResponse ProtoResponse(const google::protobuf::Message& msg) {
  HttpResponse r;
  r.content_type = "application/x-protobuf";
  r.body = msg.SerializeAsString();
  return r;
}

// Free bytes on the file system holding `path` (0 when it cannot be read).
inline uint64_t FreeBytes(const std::string& path) {
  struct statvfs st;
  if (statvfs(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

}  // namespace rm
