// Router: exact-path routing of requests to handlers, with the seed's errors for
// unknown paths (404 NOT_FOUND) and wrong methods (405 METHOD_NOT_ALLOWED with
// an Allow header). Routes are added before serving; dispatch is thread-safe.
#pragma once

#include "src/net/http_server.h"

#include <map>
#include <string>

namespace rm {

class Router {
 public:
  void Add(const std::string& method, const std::string& path, HttpHandler handler);
  HttpResponse Dispatch(HttpRequest& req) const;
  // The route path `req` matches ("" when none): a bounded label for metrics.
  std::string RouteOf(const HttpRequest& req) const;

 private:
  std::map<std::string, std::map<std::string, HttpHandler>> routes_;  // path -> method -> handler
};

}  // namespace rm
