// Runs one node (control or worker) in this process until SIGINT/SIGTERM.
#pragma once

#include "src/cluster/node_config.h"

namespace rm {

// Blocks SIGINT/SIGTERM/SIGPIPE handling for the process; call first in main().
void InstallSignalMask();
// Waits for SIGINT or SIGTERM (the mask must be installed).
int WaitForStopSignal();

// Returns the process exit code.
int RunNode(NodeConfig config);

}  // namespace rm
