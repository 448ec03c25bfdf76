// FsmBinding: hands a StateMachine to the raft library as its `struct raft_fsm`
// (entry framing, the applied index, snapshot payloads). RaftGroup binds its
// state machine this way on the libuv I/O; the deterministic tests bind the same
// state machines to libraft's in-memory raft_fixture, so both run one adapter.
#pragma once

#include "src/raft/raft_c.h"
#include "src/raft/raft_group.h"

#include <cstdint>

namespace rm::raft {

struct FsmBinding {
  StateMachine* sm = nullptr;
  // The replica the fsm belongs to: entry indexes come from its last applied
  // index. May be set after Bind() (raft_fixture creates the raft after the fsm),
  // but before the first entry is applied.
  struct raft* raft = nullptr;
  uint64_t id = 0;  // for messages
  struct raft_fsm fsm {};

  // Fills `fsm` (version 1: apply, snapshot, restore) to call `sm`.
  void Bind();
};

}  // namespace rm::raft
