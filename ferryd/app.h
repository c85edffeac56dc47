#pragma once

namespace ferry {

// ferryd's whole command line: `serve`, `migrate`, `--version`. Returns the
// process exit code. Blocks SIGTERM, SIGINT and SIGHUP in the calling thread
// (call it before starting any other thread).
int FerrydMain(int argc, char** argv);

}  // namespace ferry
