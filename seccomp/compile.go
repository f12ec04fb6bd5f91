package seccomp

import (
	"errors"
	"fmt"
	"runtime"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// MaxInstructions is the longest program the kernel loads (BPF_MAXINSNS).
const MaxInstructions = 4096

// struct seccomp_data (include/uapi/linux/seccomp.h), as the filter reads
// it with absolute loads.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16 // args[i] at 16+8*i, low half first (little endian)
)

const (
	auditArchX86_64 = 0xc000003e // AUDIT_ARCH_X86_64
	x32Bit          = 0x40000000 // __X32_SYSCALL_BIT

	retKillProcess = 0x80000000
	retKillThread  = 0x00000000
	retTrap        = 0x00030000
	retErrno       = 0x00050000
	retTrace       = 0x7ff00000
	retLog         = 0x7ffc0000
	retAllow       = 0x7fff0000
)

// retForeign answers calls through the i386 and x32 ABIs: ENOSYS, as from
// a kernel built without them.
const retForeign = retErrno | linuxENOSYS

// Compile turns p into a classic BPF program for this machine (x86_64);
// see the package documentation for how it reads a profile. The error is
// a *ProfileError when p cannot be compiled as written.
func Compile(p *specs.LinuxSeccomp) ([]Instruction, error) {
	if p == nil {
		return nil, errors.New("no seccomp profile")
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return nil, fmt.Errorf("seccomp filters are compiled for linux/amd64 only, this is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	if err := validate(p); err != nil {
		return nil, err
	}
	def := retValue(p.DefaultAction, p.DefaultErrnoRet)

	// The rules of each system call number, in profile order.
	rules := map[uint32][]rule{}
	for _, sc := range p.Syscalls {
		ret := retValue(sc.Action, sc.ErrnoRet)
		for _, name := range sc.Names {
			nr, ok := x86_64Number(name)
			if !ok {
				continue // not an x86_64 call: skipped, as the runtime spec says
			}
			for _, args := range splitArgs(sc.Args) {
				if rs := rules[nr]; len(rs) > 0 && len(rs[len(rs)-1].conds) == 0 {
					break // an earlier unconditional rule decides every call
				}
				r := rule{ret: ret}
				for _, a := range args {
					r.conds = append(r.conds, cond{arg: a, narrow: narrowArg(name, a.Index)})
				}
				rules[nr] = append(rules[nr], r)
			}
		}
	}

	e := &emitter{near: map[label]label{}, rets: map[uint32]label{}}
	defLabel := e.ret(def)

	// Where each number goes: straight to a return, or to the argument
	// checks of its rules, which end in the default action.
	target := map[uint32]label{}
	nrs := make([]uint32, 0, len(rules))
	for nr := range rules {
		nrs = append(nrs, nr)
	}
	slices.Sort(nrs)
	for _, nr := range slices.Backward(nrs) {
		rs := rules[nr]
		if len(rs[0].conds) == 0 {
			target[nr] = e.ret(rs[0].ret)
			continue
		}
		next := defLabel
		for _, r := range slices.Backward(rs) {
			next = e.rule(r, next)
		}
		target[nr] = next
	}

	// Runs of numbers with the same target, covering all of uint32; a
	// binary search over their starts picks the target in about log2(runs)
	// jumps.
	var runs []run
	for nr := uint32(0); nr <= maxX86_64Number+1; nr++ {
		t, ok := target[nr]
		if !ok {
			t = defLabel
		}
		if len(runs) == 0 || runs[len(runs)-1].to != t {
			runs = append(runs, run{start: nr, to: t})
		}
	}
	dispatch := e.search(runs)

	// The head: other ABIs first, then the number. nr == -1 is what a
	// tracer writes to skip a call; it is not x32 and goes to the default.
	l := e.jump(bpfJeqK, 0xffffffff, defLabel, e.ret(retForeign))
	e.jump(bpfJsetK, x32Bit, l, dispatch)
	l = e.load(offNr)
	e.jump(bpfJeqK, auditArchX86_64, l, e.ret(retForeign))
	e.load(offArch)

	if n := len(e.rev); n > MaxInstructions {
		return nil, &ProfileError{Reason: fmt.Sprintf("compiles to %d BPF instructions, more than the kernel's %d", n, MaxInstructions)}
	}
	prog := make([]Instruction, len(e.rev))
	for i, ins := range e.rev {
		prog[len(prog)-1-i] = ins
	}
	return prog, nil
}

// retValue is the filter's return value for an action that validate
// accepted. errnoRet defaults to EPERM, as in runc.
func retValue(a specs.LinuxSeccompAction, errnoRet *uint) uint32 {
	data := uint32(linuxEPERM)
	if errnoRet != nil {
		data = uint32(*errnoRet)
	}
	switch a {
	case specs.ActAllow:
		return retAllow
	case specs.ActErrno:
		return retErrno | data
	case specs.ActTrace:
		return retTrace | data
	case specs.ActKill, specs.ActKillThread:
		return retKillThread
	case specs.ActKillProcess:
		return retKillProcess
	case specs.ActTrap:
		return retTrap
	case specs.ActLog:
		return retLog
	}
	panic("seccomp: action not validated: " + string(a))
}

// splitArgs returns the comparison sets of one profile rule, any of which
// suffices: the rule's own, or, when it compares an argument more than
// once, each comparison on its own (runc's reading).
func splitArgs(args []specs.LinuxSeccompArg) [][]specs.LinuxSeccompArg {
	var seen [6]bool
	for _, a := range args {
		if seen[a.Index] {
			sets := make([][]specs.LinuxSeccompArg, len(args))
			for i, a := range args {
				sets[i] = []specs.LinuxSeccompArg{a}
			}
			return sets
		}
		seen[a.Index] = true
	}
	return [][]specs.LinuxSeccompArg{args}
}

type rule struct {
	conds []cond // all must hold
	ret   uint32
}

type cond struct {
	arg    specs.LinuxSeccompArg
	narrow bool // compare the low 32 bits only
}

type run struct {
	start uint32
	to    label
}

// label is an instruction's index counted from the end of the program.
type label int

// emitter writes the program back to front, so that every jump's target
// is already placed when the jump is written.
type emitter struct {
	rev  []Instruction    // rev[0] is the last instruction
	near map[label]label  // target -> latest stand-in for it
	rets map[uint32]label // return value -> an instruction returning it
}

func (e *emitter) add(ins Instruction) label {
	e.rev = append(e.rev, ins)
	return label(len(e.rev) - 1)
}

// dist is the offset from the next instruction written to t.
func (e *emitter) dist(t label) int { return len(e.rev) - int(t) - 1 }

func (e *emitter) ret(k uint32) label {
	if l, ok := e.rets[k]; ok {
		return l
	}
	l := e.add(Instruction{Code: bpfRetK, K: k})
	e.rets[k] = l
	return l
}

func (e *emitter) load(off uint32) label {
	return e.add(Instruction{Code: bpfLdWAbs, K: off})
}

func (e *emitter) and(k uint32) label {
	return e.add(Instruction{Code: bpfAndK, K: k})
}

// within returns t, or an instruction that does what t does and is at most
// max instructions away from the next one written: a copy of a return, or
// a JA (32-bit offset) to t.
func (e *emitter) within(t label, max int) label {
	if e.dist(t) <= max {
		return t
	}
	if s, ok := e.near[t]; ok && e.dist(s) <= max {
		return s
	}
	ins := e.rev[t]
	if ins.Code != bpfRetK {
		ins = Instruction{Code: bpfJA, K: uint32(e.dist(t))}
	}
	s := e.add(ins)
	e.near[t] = s
	if ins.Code == bpfRetK {
		e.rets[ins.K] = s // later returns of K can use the nearer copy
	}
	return s
}

// jump writes a conditional jump; conditional offsets are 8-bit.
func (e *emitter) jump(code uint16, k uint32, jt, jf label) label {
	jt = e.within(jt, 254) // a stand-in for jf may still come between
	jf = e.within(jf, 255)
	return e.add(Instruction{Code: code, Jt: uint8(e.dist(jt)), Jf: uint8(e.dist(jf)), K: k})
}

// search writes a binary search over runs, with the number in A.
func (e *emitter) search(runs []run) label {
	if len(runs) == 1 {
		return runs[0].to
	}
	mid := len(runs) / 2
	hi := e.search(runs[mid:])
	lo := e.search(runs[:mid])
	return e.jump(bpfJgeK, runs[mid].start, hi, lo)
}

// rule writes the checks of r: its return when all conditions hold, else
// on to next.
func (e *emitter) rule(r rule, next label) label {
	l := e.ret(r.ret)
	for _, c := range slices.Backward(r.conds) {
		l = e.cond(c, l, next)
	}
	return l
}

const (
	jeq = bpfJeqK
	jgt = bpfJgtK
	jge = bpfJgeK
)

// cond writes one comparison of a 64-bit argument as two 32-bit ones,
// high half first: to pass if it holds, else to fail.
func (e *emitter) cond(c cond, pass, fail label) label {
	a := c.arg
	lo := uint32(offArgs + 8*a.Index)
	hi := lo + 4
	v := a.Value
	vlo, vhi := uint32(v), uint32(v>>32)

	// The low half: l is where A holds the whole comparison's outcome for
	// equal high halves.
	var l label
	switch a.Op {
	case specs.OpEqualTo:
		e.jump(jeq, vlo, pass, fail)
	case specs.OpNotEqual:
		e.jump(jeq, vlo, fail, pass)
	case specs.OpGreaterThan:
		e.jump(jgt, vlo, pass, fail)
	case specs.OpGreaterEqual:
		e.jump(jge, vlo, pass, fail)
	case specs.OpLessThan:
		e.jump(jge, vlo, fail, pass)
	case specs.OpLessEqual:
		e.jump(jgt, vlo, fail, pass)
	case specs.OpMaskedEqual:
		mask, datum := a.Value, a.ValueTwo
		e.jump(jeq, uint32(datum), pass, fail)
		e.and(uint32(mask))
		l = e.load(lo)
		if c.narrow || (mask>>32 == 0 && datum>>32 == 0) {
			return l
		}
		e.jump(jeq, uint32(datum>>32), l, fail)
		e.and(uint32(mask >> 32))
		return e.load(hi)
	default:
		panic("seccomp: operator not validated: " + string(a.Op))
	}
	l = e.load(lo)
	if c.narrow {
		return l
	}

	// The high half decides unless it equals the value's.
	switch a.Op {
	case specs.OpEqualTo:
		e.jump(jeq, vhi, l, fail)
	case specs.OpNotEqual:
		e.jump(jeq, vhi, l, pass)
	case specs.OpGreaterThan, specs.OpGreaterEqual:
		l = e.jump(jeq, vhi, l, fail)
		e.jump(jgt, vhi, pass, l)
	case specs.OpLessThan, specs.OpLessEqual:
		l = e.jump(jeq, vhi, l, pass)
		e.jump(jgt, vhi, fail, l)
	}
	return e.load(hi)
}
