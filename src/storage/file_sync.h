// Making a rename or a new file's directory entry durable (fsync of the parent
// directory): shared by the snapshot install and the command log's rewrite.
#pragma once

#include <string>

namespace rm {

// fsyncs the directory holding `path`; best effort (a failure is not reported:
// the callers' data is synced already, only the entry could be lost).
void SyncDirectoryOf(const std::string& path);

}  // namespace rm
