#include "src/common/status.h"

#include <cstdio>
#include <cstdlib>

namespace rm {

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s = message_;
  if (!details_.empty()) {
    s += ' ';  // not `" " + dump()`: GCC 12 -O3 warns (-Wrestrict, a false positive)
    s += details_.dump();
  }
  return s;
}

void Panic(const char* file, int line, const std::string& message) {
  std::fprintf(stderr, "PANIC %s:%d: %s\n", file, line, message.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace rm
