// Package seccomp owns the sandbox's system call filter: the default
// profile, reading OCI seccomp profiles (the linux.seccomp object of an OCI
// config.json, as podman and docker write it there), compiling a profile to
// classic BPF for this machine, and loading the program.
//
// The parent decides: Default or Parse gives a *specs.LinuxSeccomp,
// Compile turns it into a program, Encode carries it to the child as bytes.
// The child only runs it: Decode, then Install on the thread that forks
// the command, after no_new_privs.
//
// # What the compiled program does
//
// The program is written by Compile itself (no libseccomp, no cgo) and
// follows libseccomp and runc where a profile's meaning is theirs to
// define:
//
//   - Only the native x86_64 ABI is filtered by name. Calls through the
//     i386 ABI (int 0x80, 32-bit programs) and the x32 ABI (x86_64 with
//     bit 30 of the number set) fail with ENOSYS whatever the profile lists,
//     SCMP_ARCH_X86 and SCMP_ARCH_X32 included: one ABI to reason about,
//     and numbers of another ABI cannot slip past rules written for this
//     one.
//   - Names the x86_64 table does not have are skipped, as the runtime spec
//     asks, but Parse rejects a name that is a system call on no Linux
//     architecture (a typo would otherwise silently deny or allow nothing).
//   - For each system call the rules naming it are tried in profile order
//     and the first that matches decides; when none does, defaultAction.
//   - The comparisons of one rule must all hold, except that a rule that
//     compares one argument more than once is split into one rule per
//     comparison, which then each suffice (runc's reading, kept so that
//     profiles written for runc mean the same here).
//   - Arguments are compared as 64-bit values, unsigned, in two 32-bit
//     halves; the arguments the kernel declares as 32-bit (ioctl's request,
//     personality's persona) are compared on their low half only, because
//     the kernel ignores the high half: ioctl(fd, 0x100005412) is TIOCSTI to
//     the kernel and so to the filter. A profile value for such an argument
//     must fit in 32 bits.
//   - Actions: SCMP_ACT_ALLOW, SCMP_ACT_ERRNO (errnoRet, default EPERM),
//     SCMP_ACT_KILL and SCMP_ACT_KILL_THREAD, SCMP_ACT_KILL_PROCESS,
//     SCMP_ACT_TRAP, SCMP_ACT_LOG and SCMP_ACT_TRACE (errnoRet is the
//     tracer's message; with no tracer the call fails with ENOSYS).
//     SCMP_ACT_NOTIFY, listenerPath and filter flags are refused: the
//     sandbox has no notification listener and installs the filter without
//     flags. SECCOMP_FILTER_FLAG_TSYNC is accepted, as it changes nothing
//     for a command forked from the one filtered thread.
//
// Conditional BPF jumps reach 255 instructions; Compile emits the program
// back to front and routes longer jumps through JA trampolines, so
// allowlists of any length compile, up to the kernel's 4096 instructions.
//
// Runs in: parent (Default, Parse, Compile, Encode), child (Decode,
// Install, on the locked thread that forks the command).
package seccomp

//go:generate go run mksysnum.go
