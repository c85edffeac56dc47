#pragma once

namespace ferry {

// On a fatal signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT) writes the
// signal and the crashing thread's stack to stderr, then lets the default
// action run (core dump where enabled). Frames read as `ferryd(+0x1a2b3c)`:
// `addr2line -Cfe ferryd 0x1a2b3c` names them. On the main thread the
// handler has a stack of its own, so even an overflow there is reported.
void InstallCrashHandler();

}  // namespace ferry
