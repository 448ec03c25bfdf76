// JoinAnnouncer: a node announcing itself to the control nodes with POST /join
// on a thread of its own, until it stops.
//
// Workers started with CONTROL_HOST keep announcing (every 5 s once accepted),
// so a control node that restarted or was not up yet learns of them within
// seconds. A control node joining the meta group stops once accepted: its
// membership is then in the group's log. `hosts` may list several control
// nodes: the first that answers takes the request (a follower passes it to the
// meta leader), and the next attempt asks it again.
#pragma once

#include "src/net/http_client.h"

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace rm {

class JoinAnnouncer {
 public:
  struct Options {
    std::vector<std::string> hosts;  // control nodes, host:port
    std::string body;                // the /join JSON body
    std::vector<std::pair<std::string, std::string>> headers;
    bool keep_announcing = true;     // false: stop after the first 200
  };
  explicit JoinAnnouncer(Options options);
  ~JoinAnnouncer();  // Stop()

  void Start();
  void Stop();
  // Whether a control node has accepted the announcement (200) at least once.
  bool accepted() const;

 private:
  void Loop();

  const Options options_;
  HttpClient client_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool accepted_ = false;
  std::thread thread_;
};

}  // namespace rm
