package seccomp

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// call is the struct seccomp_data a filter sees.
type call struct {
	nr   uint32
	arch uint32
	args [6]uint64
}

func (c call) bytes() []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[offNr:], c.nr)
	binary.LittleEndian.PutUint32(b[offArch:], c.arch)
	for i, a := range c.args {
		binary.LittleEndian.PutUint64(b[offArgs+8*i:], a)
	}
	return b
}

// checkProgram applies the kernel's load-time checks that a compiler can
// get wrong (bpf_check_classic and seccomp_check_filter): known
// instructions only, loads inside seccomp_data and aligned, jumps inside
// the program, a return at the end.
func checkProgram(prog []unix.SockFilter) error {
	if len(prog) == 0 || len(prog) > MaxInstructions {
		return fmt.Errorf("%d instructions", len(prog))
	}
	for pc, ins := range prog {
		switch ins.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if ins.K >= 64 || ins.K%4 != 0 {
				return fmt.Errorf("pc %d: load at %d", pc, ins.K)
			}
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, unix.BPF_RET | unix.BPF_K:
		case unix.BPF_JMP | unix.BPF_JA:
			if pc+1+int(ins.K) >= len(prog) {
				return fmt.Errorf("pc %d: ja %d out of the program", pc, ins.K)
			}
		case jeq, jgt, jge, unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			if pc+1+int(max(ins.Jt, ins.Jf)) >= len(prog) {
				return fmt.Errorf("pc %d: jump %d/%d out of the program", pc, ins.Jt, ins.Jf)
			}
		default:
			return fmt.Errorf("pc %d: instruction %#x not used by seccomp filters", pc, ins.Code)
		}
	}
	if last := prog[len(prog)-1]; last.Code != unix.BPF_RET|unix.BPF_K {
		return fmt.Errorf("last instruction %#x is not a return", last.Code)
	}
	return nil
}

// interpret runs prog on c, as the kernel would, and returns the filter's
// return value and the number of instructions it executed.
func interpret(prog []unix.SockFilter, c call) (ret uint32, steps int, err error) {
	data := c.bytes()
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		steps++
		ins := prog[pc]
		switch ins.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			a = binary.LittleEndian.Uint32(data[ins.K:])
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			a &= ins.K
		case unix.BPF_RET | unix.BPF_K:
			return ins.K, steps, nil
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(ins.K)
		default:
			var taken bool
			switch ins.Code {
			case jeq:
				taken = a == ins.K
			case jgt:
				taken = a > ins.K
			case jge:
				taken = a >= ins.K
			case unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
				taken = a&ins.K != 0
			default:
				return 0, steps, fmt.Errorf("pc %d: unknown instruction %#x", pc, ins.Code)
			}
			if taken {
				pc += int(ins.Jt)
			} else {
				pc += int(ins.Jf)
			}
		}
	}
	return 0, steps, fmt.Errorf("ran off the end")
}

// mustRun runs prog on c and fails the test if the program misbehaves.
func mustRun(t *testing.T, prog []unix.SockFilter, c call) uint32 {
	t.Helper()
	ret, _, err := interpret(prog, c)
	if err != nil {
		t.Fatalf("nr %d: %v", c.nr, err)
	}
	return ret
}

// mustCompile compiles p and checks the program as the kernel would.
func mustCompile(t *testing.T, p *specs.LinuxSeccomp) []unix.SockFilter {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skipf("filters are compiled for x86_64; this is %s", runtime.GOARCH)
	}
	prog, err := Compile(p)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	if err := checkProgram(prog); err != nil {
		t.Fatalf("the kernel would reject the program: %v", err)
	}
	return prog
}

func retName(r uint32) string {
	switch r &^ 0xffff {
	case retAllow:
		return "ALLOW"
	case retErrno:
		return "ERRNO(" + unix.ErrnoName(unix.Errno(r&0xffff)) + ")"
	case retTrace:
		return fmt.Sprintf("TRACE(%d)", r&0xffff)
	case retKillProcess:
		return "KILL_PROCESS"
	case retKillThread:
		return "KILL_THREAD"
	case retTrap:
		return "TRAP"
	case retLog:
		return "LOG"
	}
	return fmt.Sprintf("%#x", r)
}
