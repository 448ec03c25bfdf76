// Wildcard matching for filters such as hosts=web-*,api-?: '*' matches any run
// of characters (also none), '?' exactly one; every other character is literal.
#pragma once

#include <string_view>

namespace rm {

bool GlobMatch(std::string_view pattern, std::string_view text);

}  // namespace rm
