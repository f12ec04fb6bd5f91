package seccomp

import "golang.org/x/sys/unix"

// Instruction is one classic BPF instruction, struct sock_filter: the
// same type as unix.SockFilter, so a program goes to seccomp(2) as is.
type Instruction = unix.SockFilter
