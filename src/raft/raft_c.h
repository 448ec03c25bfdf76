// The C raft library (0.22.1, built by scripts/fetch-raft.sh) and libuv, for
// C++. Only src/raft includes this. The installed raft.h carries one patch that
// makes its struct-layout static assertions a no-op in C++ (see the script).
#pragma once

extern "C" {
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>
}
