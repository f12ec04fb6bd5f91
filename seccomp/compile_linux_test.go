package seccomp

import (
	"errors"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const (
	allow  = retAllow
	eperm  = retErrno | uint32(unix.EPERM)
	enosys = retErrno | uint32(unix.ENOSYS)

	auditArchI386    = 0x40000003
	auditArchAArch64 = 0xc00000b7
)

func nrOf(t *testing.T, name string) uint32 {
	t.Helper()
	nr, ok := x86_64Number(name)
	if !ok {
		t.Fatalf("%s is not an x86_64 system call", name)
	}
	return nr
}

func errnoPtrOf(e unix.Errno) *uint { return errnoPtr(uint(e)) }

func x86(nr uint32, args ...uint64) call {
	c := call{nr: nr, arch: auditArchX86_64}
	copy(c.args[:], args)
	return c
}

func TestDefaultNamesAreX86_64(t *testing.T) {
	for _, o := range []Options{{}, {AllowNestedUserns: true}} {
		seen := map[string]int{}
		for i, sc := range Default(o).Syscalls {
			for _, n := range sc.Names {
				if _, ok := x86_64Number(n); !ok {
					t.Errorf("%+v: rule %d names %q, which x86_64 does not have: it would be skipped", o, i, n)
				}
				if j, dup := seen[n]; dup && sc.Args == nil && Default(o).Syscalls[j].Args == nil {
					t.Errorf("%+v: %q has unconditional rules %d and %d", o, n, j, i)
				}
				seen[n] = i
			}
		}
		if len(seen) < 300 {
			t.Errorf("%+v: only %d names; an allowlist this short breaks ordinary programs", o, len(seen))
		}
	}
}

func TestDefaultIsValid(t *testing.T) {
	for _, o := range []Options{{}, {AllowNestedUserns: true}} {
		if err := validate(Default(o)); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

func TestDefaultDecisions(t *testing.T) {
	def := mustCompile(t, Default(Options{}))
	nested := mustCompile(t, Default(Options{AllowNestedUserns: true}))
	t.Logf("default program: %d instructions; with nested user namespaces: %d", len(def), len(nested))
	if len(def) > 512 {
		t.Errorf("default program has %d instructions; expected a few hundred at most", len(def))
	}

	type tc struct {
		name string
		c    call
		want uint32
	}
	n := func(name string) uint32 { return nrOf(t, name) }
	cases := []tc{
		{"getpid", x86(n("getpid")), allow},
		{"uname", x86(n("uname")), allow},
		{"execve", x86(n("execve")), allow},
		{"future 500", x86(500), enosys},
		{"future 1000", x86(1000), enosys},
		{"one past the table", x86(maxX86_64Number + 1), enosys},
		{"negative", x86(0x80000000), enosys},
		{"nr -1 from a tracer", x86(0xffffffff), enosys},
		{"not in the allowlist: syslog", x86(n("syslog")), enosys},
		{"x32 getpid", x86(x32Bit | n("getpid")), enosys},
		{"x32 mount", x86(x32Bit | n("mount")), enosys},
		{"x32 high numbers", x86(x32Bit | 0x3fffffff), enosys},
		{"i386 getpid", call{nr: 20, arch: auditArchI386}, enosys},
		{"i386 number of x86_64 getpid", call{nr: n("getpid"), arch: auditArchI386}, enosys},
		{"foreign arch", call{nr: n("getpid"), arch: auditArchAArch64}, enosys},

		{"ioctl TIOCSTI", x86(n("ioctl"), 0, unix.TIOCSTI), eperm},
		{"ioctl TIOCSTI, high bits set", x86(n("ioctl"), 0, 1<<32|unix.TIOCSTI), eperm},
		{"ioctl TIOCSTI, all high bits", x86(n("ioctl"), 0, 0xffffffff00000000|unix.TIOCSTI), eperm},
		{"ioctl TIOCLINUX", x86(n("ioctl"), 3, unix.TIOCLINUX), eperm},
		{"ioctl TIOCLINUX, high bits set", x86(n("ioctl"), 3, 7<<32|unix.TIOCLINUX), eperm},
		{"ioctl TCGETS", x86(n("ioctl"), 0, unix.TCGETS), allow},
		{"ioctl TIOCGWINSZ", x86(n("ioctl"), 1, unix.TIOCGWINSZ), allow},
		{"ioctl next to TIOCSTI", x86(n("ioctl"), 0, unix.TIOCSTI+1), allow},

		{"personality PER_LINUX", x86(n("personality"), 0), allow},
		{"personality PER_LINUX32", x86(n("personality"), 8), allow},
		{"personality UNAME26", x86(n("personality"), 0x20000), allow},
		{"personality query", x86(n("personality"), 0xffffffff), allow},
		{"personality, high half ignored", x86(n("personality"), 1<<32|8), allow},
		{"personality ADDR_NO_RANDOMIZE", x86(n("personality"), 0x0040000), eperm},
		{"personality READ_IMPLIES_EXEC", x86(n("personality"), 0x0400000), eperm},

		{"clone fork", x86(n("clone"), uint64(unix.SIGCHLD)), allow},
		{"clone vfork", x86(n("clone"), unix.CLONE_VM|unix.CLONE_VFORK|uint64(unix.SIGCHLD)), allow},
		{"clone thread", x86(n("clone"), unix.CLONE_VM|unix.CLONE_FS|unix.CLONE_FILES|unix.CLONE_SIGHAND|unix.CLONE_THREAD|unix.CLONE_SYSVSEM|unix.CLONE_SETTLS|unix.CLONE_PARENT_SETTID|unix.CLONE_CHILD_CLEARTID), allow},
		{"clone pidfd", x86(n("clone"), unix.CLONE_PIDFD|uint64(unix.SIGCHLD)), allow},
		{"clone3", x86(n("clone3")), enosys},
		{"unshare nothing", x86(n("unshare"), 0), allow},
		{"unshare files and fs", x86(n("unshare"), unix.CLONE_FILES|unix.CLONE_FS), allow},
		{"fork", x86(n("fork")), allow},
		{"vfork", x86(n("vfork")), allow},
		{"adjtimex", x86(n("adjtimex")), allow},
	}
	for _, f := range []struct {
		name string
		flag uint64
	}{
		{"CLONE_NEWUSER", unix.CLONE_NEWUSER}, {"CLONE_NEWNS", unix.CLONE_NEWNS},
		{"CLONE_NEWPID", unix.CLONE_NEWPID}, {"CLONE_NEWNET", unix.CLONE_NEWNET},
		{"CLONE_NEWUTS", unix.CLONE_NEWUTS}, {"CLONE_NEWIPC", unix.CLONE_NEWIPC},
		{"CLONE_NEWCGROUP", unix.CLONE_NEWCGROUP},
	} {
		cases = append(cases,
			tc{"clone " + f.name, x86(n("clone"), f.flag|uint64(unix.SIGCHLD)), eperm},
			tc{"unshare " + f.name, x86(n("unshare"), f.flag), eperm},
			tc{"unshare " + f.name + " with others", x86(n("unshare"), f.flag|unix.CLONE_FILES), eperm})
	}
	cases = append(cases, tc{"unshare CLONE_NEWTIME", x86(n("unshare"), unix.CLONE_NEWTIME), eperm})
	for _, name := range denied() {
		cases = append(cases, tc{"denied " + name, x86(n(name)), eperm})
	}
	for _, name := range allowed() {
		cases = append(cases, tc{"allowed " + name, x86(n(name)), allow})
	}
	for _, c := range cases {
		if got := mustRun(t, def, c.c); got != c.want {
			t.Errorf("%s (nr %#x, args %#x): got %s, want %s", c.name, c.c.nr, c.c.args[:2], retName(got), retName(c.want))
		}
	}

	nestedCases := []tc{
		{"clone CLONE_NEWUSER", x86(n("clone"), unix.CLONE_NEWUSER|uint64(unix.SIGCHLD)), allow},
		{"unshare CLONE_NEWUSER|CLONE_NEWNS", x86(n("unshare"), unix.CLONE_NEWUSER|unix.CLONE_NEWNS), allow},
		{"clone3", x86(n("clone3")), enosys},
		{"setns", x86(n("setns")), eperm},
		{"mount", x86(n("mount")), eperm},
		{"ioctl TIOCSTI", x86(n("ioctl"), 0, 1<<32|unix.TIOCSTI), eperm},
		{"getpid", x86(n("getpid")), allow},
	}
	for _, c := range nestedCases {
		if got := mustRun(t, nested, c.c); got != c.want {
			t.Errorf("nested: %s: got %s, want %s", c.name, retName(got), retName(c.want))
		}
	}
}

// holds is the meaning of an OCI comparison on a 64-bit argument.
func holds(op specs.LinuxSeccompOperator, x, v, v2 uint64) bool {
	switch op {
	case specs.OpEqualTo:
		return x == v
	case specs.OpNotEqual:
		return x != v
	case specs.OpLessThan:
		return x < v
	case specs.OpLessEqual:
		return x <= v
	case specs.OpGreaterThan:
		return x > v
	case specs.OpGreaterEqual:
		return x >= v
	case specs.OpMaskedEqual:
		return x&v == v2
	}
	panic(op)
}

// TestCompileComparisons checks every operator against holds, for values
// around the edges of both 32-bit halves.
func TestCompileComparisons(t *testing.T) {
	values := []uint64{
		0, 1, 2, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff,
		1 << 32, 1<<32 | 1, 1<<32 | 0xffffffff, 2 << 32, 0x8000000000000000,
		0xffffffff00000000, 0xfffffffffffffffe, 0xffffffffffffffff,
	}
	ops := []specs.LinuxSeccompOperator{
		specs.OpEqualTo, specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual,
		specs.OpGreaterThan, specs.OpGreaterEqual, specs.OpMaskedEqual,
	}
	const match = retErrno | 77
	for _, narrow := range []bool{false, true} {
		name, index := "read", uint(2)
		if narrow {
			name, index = "ioctl", 1
		}
		nr := nrOf(t, name)
		for _, op := range ops {
			for _, v := range values {
				seconds := []uint64{0}
				if op == specs.OpMaskedEqual {
					seconds = values
				}
				for _, v2 := range seconds {
					arg := specs.LinuxSeccompArg{Index: index, Op: op, Value: v}
					if op == specs.OpMaskedEqual {
						arg.ValueTwo = v2
					}
					cmp := v
					if op == specs.OpMaskedEqual {
						cmp = v2
					}
					if narrow && cmp > 0xffffffff {
						continue // refused by validate, see TestParse
					}
					prog := mustCompile(t, &specs.LinuxSeccomp{
						DefaultAction: specs.ActAllow,
						Syscalls: []specs.LinuxSyscall{{
							Names: []string{name}, Action: specs.ActErrno, ErrnoRet: errnoPtrOf(77),
							Args: []specs.LinuxSeccompArg{arg},
						}},
					})
					for _, x := range values {
						c := x86(nr)
						c.args[index] = x
						want := holds(op, x, v, v2)
						if narrow {
							want = holds(op, x&0xffffffff, v&0xffffffff, v2)
							if op == specs.OpMaskedEqual {
								want = x&v&0xffffffff == v2
							}
						}
						if got := mustRun(t, prog, c) == match; got != want {
							t.Errorf("%s arg %d=%#x %s %#x (valueTwo %#x): matched %v, want %v", name, index, x, op, v, v2, got, want)
						}
					}
				}
			}
		}
	}
}

func TestCompileRules(t *testing.T) {
	read := nrOf(t, "read")
	rule := func(act specs.LinuxSeccompAction, errno *uint, args ...specs.LinuxSeccompArg) specs.LinuxSyscall {
		return specs.LinuxSyscall{Names: []string{"read"}, Action: act, ErrnoRet: errno, Args: args}
	}
	eq := func(i uint, v uint64) specs.LinuxSeccompArg {
		return specs.LinuxSeccompArg{Index: i, Value: v, Op: specs.OpEqualTo}
	}
	e5, e6 := uint32(retErrno|5), uint32(retErrno|6)
	tests := []struct {
		name    string
		profile specs.LinuxSeccomp
		calls   []call
		want    []uint32
	}{
		{
			name:    "first matching rule wins",
			profile: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{rule(specs.ActErrno, errnoPtrOf(5)), rule(specs.ActErrno, errnoPtrOf(6), eq(0, 1))}},
			calls:   []call{x86(read, 1), x86(read, 2)},
			want:    []uint32{e5, e5},
		},
		{
			name:    "conditional, then unconditional",
			profile: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{rule(specs.ActErrno, errnoPtrOf(5), eq(0, 1)), rule(specs.ActErrno, errnoPtrOf(6))}},
			calls:   []call{x86(read, 1), x86(read, 2)},
			want:    []uint32{e5, e6},
		},
		{
			name:    "comparisons on different arguments all hold",
			profile: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{rule(specs.ActErrno, errnoPtrOf(5), eq(0, 1), eq(1, 2))}},
			calls:   []call{x86(read, 1, 2), x86(read, 1, 3), x86(read, 0, 2)},
			want:    []uint32{e5, allow, allow},
		},
		{
			name:    "an argument compared twice: each comparison suffices (runc)",
			profile: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{rule(specs.ActErrno, errnoPtrOf(5), eq(0, 1), eq(0, 2), eq(1, 3))}},
			calls:   []call{x86(read, 1), x86(read, 2), x86(read, 0, 3), x86(read, 4, 4)},
			want:    []uint32{e5, e5, e5, allow},
		},
		{
			name: "names other architectures have are skipped",
			profile: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"socketcall", "_llseek"}, Action: specs.ActErrno},
				{Names: []string{"mmap2", "read"}, Action: specs.ActErrno, ErrnoRet: errnoPtrOf(6)},
			}},
			calls: []call{x86(read), x86(nrOf(t, "write"))},
			want:  []uint32{e6, allow},
		},
		{
			name:    "defaultErrnoRet",
			profile: specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: errnoPtrOf(unix.EACCES)},
			calls:   []call{x86(read)},
			want:    []uint32{retErrno | uint32(unix.EACCES)},
		},
		{
			name:    "ERRNO without errnoRet is EPERM",
			profile: specs.LinuxSeccomp{DefaultAction: specs.ActErrno},
			calls:   []call{x86(read)},
			want:    []uint32{eperm},
		},
		{
			name: "every action",
			profile: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"read"}, Action: specs.ActKill},
				{Names: []string{"write"}, Action: specs.ActKillThread},
				{Names: []string{"open"}, Action: specs.ActKillProcess},
				{Names: []string{"close"}, Action: specs.ActTrap},
				{Names: []string{"stat"}, Action: specs.ActLog},
				{Names: []string{"fstat"}, Action: specs.ActTrace, ErrnoRet: errnoPtrOf(9)},
				{Names: []string{"lstat"}, Action: specs.ActErrno, ErrnoRet: errnoPtrOf(0)},
			}},
			calls: []call{x86(nrOf(t, "read")), x86(nrOf(t, "write")), x86(nrOf(t, "open")), x86(nrOf(t, "close")),
				x86(nrOf(t, "stat")), x86(nrOf(t, "fstat")), x86(nrOf(t, "lstat")), x86(nrOf(t, "poll"))},
			want: []uint32{retKillThread, retKillThread, retKillProcess, retTrap, retLog, retTrace | 9, retErrno, allow},
		},
		{
			name: "i386 and x32 are denied even when listed",
			profile: specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
				Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}},
			calls: []call{{nr: 20, arch: auditArchI386}, x86(x32Bit | 39), x86(39)},
			want:  []uint32{enosys, enosys, allow},
		},
		{
			name:    "nothing but a default",
			profile: specs.LinuxSeccomp{DefaultAction: specs.ActKillProcess},
			calls:   []call{x86(read), x86(0), x86(0xffffffff), {nr: 1, arch: auditArchI386}},
			want:    []uint32{retKillProcess, retKillProcess, retKillProcess, enosys},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog := mustCompile(t, &tt.profile)
			for i, c := range tt.calls {
				if got := mustRun(t, prog, c); got != tt.want[i] {
					t.Errorf("call %d (nr %#x args %#x): got %s, want %s", i, c.nr, c.args[:2], retName(got), retName(tt.want[i]))
				}
			}
		})
	}
}

// TestCompileLong checks programs far beyond the 255-instruction reach of
// a conditional jump, and the size limit.
func TestCompileLong(t *testing.T) {
	// Every x86_64 call with an errno of its own: one run per number,
	// a search tree of several hundred jumps.
	var every specs.LinuxSeccomp
	every.DefaultAction = specs.ActKillProcess
	want := map[uint32]uint32{}
	for nr := uint32(0); nr <= maxX86_64Number; nr++ {
		name := x86_64Name(nr)
		if name == "" {
			continue
		}
		every.Syscalls = append(every.Syscalls, specs.LinuxSyscall{Names: []string{name}, Action: specs.ActErrno, ErrnoRet: errnoPtrOf(unix.Errno(nr%maxErrno + 1))})
		want[nr] = retErrno | (nr%maxErrno + 1)
	}

	chain := chainProfile()

	t.Run("every call its own errno", func(t *testing.T) {
		prog := mustCompile(t, &every)
		t.Logf("%d rules: %d instructions, %d of them JA trampolines", len(every.Syscalls), len(prog), countJA(prog))
		maxSteps := 0
		for nr := uint32(0); nr <= maxX86_64Number+2; nr++ {
			w, ok := want[nr]
			if !ok {
				w = retKillProcess
			}
			got, steps, err := interpret(prog, x86(nr))
			if err != nil {
				t.Fatal(err)
			}
			maxSteps = max(maxSteps, steps)
			if got != w {
				t.Errorf("nr %d: got %s, want %s", nr, retName(got), retName(w))
			}
		}
		t.Logf("at most %d instructions run per call", maxSteps)
		if maxSteps > 20 {
			t.Errorf("a call runs %d instructions; the search should take about log2(%d)", maxSteps, len(want))
		}
	})
	t.Run("long argument chains", func(t *testing.T) {
		prog := mustCompile(t, chain)
		t.Logf("%d rules: %d instructions, %d of them JA trampolines", len(chain.Syscalls), len(prog), countJA(prog))
		if countJA(prog) == 0 {
			t.Error("no trampolines: the program does not test long jumps")
		}
		for _, name := range []string{"read", "write"} {
			nr := nrOf(t, name)
			for _, i := range []uint64{1, 2, 150, 299, 300} {
				if got := mustRun(t, prog, x86(nr, i<<32)); got != retErrno|uint32(i) {
					t.Errorf("%s(%#x): got %s, want errno %d", name, i<<32, retName(got), i)
				}
			}
			for _, x := range []uint64{0, 301 << 32, 1, 1<<32 | 1} {
				if got := mustRun(t, prog, x86(nr, x)); got != allow {
					t.Errorf("%s(%#x): got %s, want ALLOW", name, x, retName(got))
				}
			}
		}
		if got := mustRun(t, prog, x86(nrOf(t, "getpid"))); got != retErrno|uint32(unix.ESRCH) {
			t.Errorf("getpid: got %s", retName(got))
		}
	})
	t.Run("over the kernel's limit", func(t *testing.T) {
		big := *chain
		for range 2 {
			big.Syscalls = append(big.Syscalls, big.Syscalls...)
		}
		_, err := Compile(&big)
		var pe *ProfileError
		if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "4096") {
			t.Fatalf("got %v, want a ProfileError about the 4096-instruction limit", err)
		}
		t.Log(err)
	})
}

// chainProfile has hundreds of argument rules on read and write: a chain
// of checks that the search tree must jump over, and a default far from
// most of them. getpid fails with ESRCH; everything else is allowed, as
// the rules only match fds of 2^32 and more.
func chainProfile() *specs.LinuxSeccomp {
	p := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: errnoPtrOf(unix.ESRCH)})
	for i := range 300 {
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{
			Names: []string{"read", "write"}, Action: specs.ActErrno, ErrnoRet: errnoPtrOf(unix.Errno(i + 1)),
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: uint64(i+1) << 32, Op: specs.OpEqualTo}},
		})
	}
	return p
}

func countJA(prog []unix.SockFilter) int {
	n := 0
	for _, ins := range prog {
		if ins.Code == unix.BPF_JMP|unix.BPF_JA {
			n++
		}
	}
	return n
}

func TestCompileNil(t *testing.T) {
	if _, err := Compile(nil); err == nil {
		t.Fatal("Compile(nil) succeeded")
	}
}
