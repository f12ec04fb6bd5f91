package seccomp

// The Linux x86_64 values a profile and its program are made of, spelled
// out rather than taken from golang.org/x/sys/unix, which has them only
// when building for Linux (and other values elsewhere: ENOSYS is 78 on
// macOS). So Default, Parse, Compile and Encode build, and mean the same,
// on any OS; only Install needs Linux.
const (
	linuxEPERM  = 1
	linuxENOSYS = 38

	// include/uapi/linux/sched.h
	cloneNewTime   = 0x00000080
	cloneNewNS     = 0x00020000
	cloneNewCgroup = 0x02000000
	cloneNewUTS    = 0x04000000
	cloneNewIPC    = 0x08000000
	cloneNewUser   = 0x10000000
	cloneNewPID    = 0x20000000
	cloneNewNet    = 0x40000000

	// include/uapi/asm-generic/ioctls.h
	tiocSTI   = 0x5412
	tiocLINUX = 0x541c

	// include/uapi/linux/bpf_common.h: the classic BPF instructions a
	// seccomp filter uses.
	bpfLdWAbs = 0x20 // BPF_LD | BPF_W | BPF_ABS
	bpfAndK   = 0x54 // BPF_ALU | BPF_AND | BPF_K
	bpfJA     = 0x05 // BPF_JMP | BPF_JA
	bpfJeqK   = 0x15 // BPF_JMP | BPF_JEQ | BPF_K
	bpfJgtK   = 0x25 // BPF_JMP | BPF_JGT | BPF_K
	bpfJgeK   = 0x35 // BPF_JMP | BPF_JGE | BPF_K
	bpfJsetK  = 0x45 // BPF_JMP | BPF_JSET | BPF_K
	bpfRetK   = 0x06 // BPF_RET | BPF_K
)
