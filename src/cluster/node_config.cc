#include "src/cluster/node_config.h"

#include <algorithm>
#include <cctype>

namespace rm {

std::string NormalizeNodeId(const std::string& role, const std::string& id) {
  if (!id.empty() && std::all_of(id.begin(), id.end(), [](unsigned char c) { return std::isdigit(c); })) {
    return role + "-" + id;
  }
  return id;
}

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(pos, comma - pos);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
    pos = comma + 1;
  }
  return out;
}

std::string NormalizeAddress(const std::string& address) {
  std::string a = address;
  for (const char* scheme : {"http://", "https://"}) {
    if (a.rfind(scheme, 0) == 0) a = a.substr(std::string(scheme).size());
  }
  while (!a.empty() && a.back() == '/') a.pop_back();
  if (a.rfind("localhost:", 0) == 0) a = "127.0.0.1" + a.substr(9);
  return a;
}

bool IsHostPort(const std::string& address) {
  const std::string a = NormalizeAddress(address);
  const auto colon = a.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == a.size() || a.size() - colon - 1 > 5) return false;
  const std::string port = a.substr(colon + 1);
  if (!std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); })) return false;
  const int n = std::stoi(port);
  return n > 0 && n <= 65535;
}

}  // namespace rm
