package seccomp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ProfileError is a seccomp profile that cannot be used as written.
type ProfileError struct {
	// Path locates the offending part, e.g. "syscalls[3].args[0].op";
	// empty when the error is about the whole document.
	Path string
	// Value is the offending name or value as written, if there is one.
	Value string
	// Reason says what is wrong with it.
	Reason string
}

func (e *ProfileError) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	if e.Value != "" {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Quote(e.Value))
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Parse reads an OCI seccomp profile, the JSON of specs.LinuxSeccomp (the
// linux.seccomp object of a config.json). Unknown fields are errors, and so
// is anything Compile would refuse; the error is a *ProfileError.
func Parse(data []byte) (*specs.LinuxSeccomp, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p specs.LinuxSeccomp
	if err := dec.Decode(&p); err != nil {
		return nil, decodeError(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &ProfileError{Reason: "unexpected data after the profile's closing brace"}
	}
	if err := validate(&p); err != nil {
		return nil, err
	}
	return &p, nil
}

func decodeError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return &ProfileError{Reason: "empty file, expected a JSON object"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &ProfileError{Reason: "JSON ends early"}
	case errors.As(err, &syn):
		line, col := position(data, syn.Offset)
		return &ProfileError{Path: fmt.Sprintf("line %d column %d", line, col), Reason: strings.TrimPrefix(syn.Error(), "json: ")}
	case errors.As(err, &typ):
		return &ProfileError{Path: typ.Field, Value: typ.Value, Reason: "has the wrong type, expected " + typ.Type.String()}
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if field, ok := strings.CutPrefix(msg, "unknown field "); ok {
		field, _ = strconv.Unquote(field)
		switch field {
		case "archMap", "includes", "excludes", "comment", "comments", "minKernel":
			// Keys of the profiles docker and podman ship
			// (/usr/share/containers/seccomp.json), which those tools
			// resolve against the container's capabilities and kernel
			// before writing the OCI form.
			return &ProfileError{Value: field, Reason: "unknown field: this is a docker/podman source profile; give the OCI form (the linux.seccomp object of a container's config.json)"}
		}
		return &ProfileError{Value: field, Reason: "unknown field"}
	}
	return &ProfileError{Reason: msg}
}

func position(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - bytes.LastIndexByte(before, '\n') - 1
	return line, col
}

// maxErrno is the largest errno the kernel returns from SECCOMP_RET_ERRNO
// (MAX_ERRNO; larger data is clamped).
const maxErrno = 4095

func knownArch(a specs.Arch) bool {
	switch a {
	case specs.ArchX86, specs.ArchX86_64, specs.ArchX32,
		specs.ArchARM, specs.ArchAARCH64,
		specs.ArchMIPS, specs.ArchMIPS64, specs.ArchMIPS64N32,
		specs.ArchMIPSEL, specs.ArchMIPSEL64, specs.ArchMIPSEL64N32,
		specs.ArchPPC, specs.ArchPPC64, specs.ArchPPC64LE,
		specs.ArchS390, specs.ArchS390X,
		specs.ArchPARISC, specs.ArchPARISC64,
		specs.ArchRISCV64, specs.ArchLOONGARCH64,
		specs.ArchM68K, specs.ArchSH, specs.ArchSHEB:
		return true
	}
	return false
}

func knownOp(op specs.LinuxSeccompOperator) bool {
	switch op {
	case specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual,
		specs.OpEqualTo, specs.OpGreaterEqual, specs.OpGreaterThan,
		specs.OpMaskedEqual:
		return true
	}
	return false
}

// narrowArg reports whether the kernel declares argument index of the
// system call name as 32-bit (unsigned int), so that only the low half of
// the register counts: ioctl(unsigned int fd, unsigned int cmd, ...) and
// personality(unsigned int). The fd is left out: every value of the high
// half there is just another bad fd to a 64-bit comparison, never a bypass.
func narrowArg(name string, index uint) bool {
	switch name {
	case "ioctl":
		return index == 1
	case "personality":
		return index == 0
	}
	return false
}

// validate checks everything about p that does not depend on the machine.
func validate(p *specs.LinuxSeccomp) error {
	if err := checkAction("defaultAction", p.DefaultAction, p.DefaultErrnoRet, "defaultErrnoRet"); err != nil {
		return err
	}
	for i, a := range p.Architectures {
		if !knownArch(a) {
			return &ProfileError{Path: fmt.Sprintf("architectures[%d]", i), Value: string(a), Reason: "unknown architecture"}
		}
	}
	for i, f := range p.Flags {
		path := fmt.Sprintf("flags[%d]", i)
		switch f {
		case "SECCOMP_FILTER_FLAG_TSYNC":
			// Syncs the installing process's other threads; the
			// command is forked from the one filtered thread and
			// exec'd, so all its threads are filtered anyway (runc
			// ignores it too).
			continue
		case specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow, specs.LinuxSeccompFlagWaitKillableRecv:
			return &ProfileError{Path: path, Value: string(f), Reason: "not supported: the sandbox installs its filter without flags"}
		default:
			return &ProfileError{Path: path, Value: string(f), Reason: "unknown flag"}
		}
	}
	if p.ListenerPath != "" || p.ListenerMetadata != "" {
		return &ProfileError{Path: "listenerPath", Value: p.ListenerPath, Reason: "not supported: the sandbox has no seccomp notification listener"}
	}
	for i, sc := range p.Syscalls {
		path := fmt.Sprintf("syscalls[%d]", i)
		if len(sc.Names) == 0 {
			return &ProfileError{Path: path + ".names", Reason: "must name at least one system call"}
		}
		for j, n := range sc.Names {
			if reason := checkName(n); reason != "" {
				return &ProfileError{Path: fmt.Sprintf("%s.names[%d]", path, j), Value: n, Reason: reason}
			}
		}
		if err := checkAction(path+".action", sc.Action, sc.ErrnoRet, path+".errnoRet"); err != nil {
			return err
		}
		for j, a := range sc.Args {
			apath := fmt.Sprintf("%s.args[%d]", path, j)
			if a.Index >= 6 {
				return &ProfileError{Path: apath + ".index", Value: strconv.FormatUint(uint64(a.Index), 10), Reason: "system calls have arguments 0 to 5"}
			}
			if !knownOp(a.Op) {
				return &ProfileError{Path: apath + ".op", Value: string(a.Op), Reason: "unknown operator"}
			}
			if a.Op != specs.OpMaskedEqual && a.ValueTwo != 0 {
				return &ProfileError{Path: apath + ".valueTwo", Value: strconv.FormatUint(a.ValueTwo, 10), Reason: "only SCMP_CMP_MASKED_EQ uses valueTwo"}
			}
			cmp := a.Value
			if a.Op == specs.OpMaskedEqual {
				cmp = a.ValueTwo // Value is the mask
			}
			for _, n := range sc.Names {
				if narrowArg(n, a.Index) && cmp > 0xffffffff {
					return &ProfileError{Path: apath, Value: fmt.Sprintf("%#x", cmp), Reason: fmt.Sprintf("argument %d of %s is 32-bit to the kernel; the value cannot match", a.Index, n)}
				}
			}
		}
	}
	return nil
}

func checkName(n string) string {
	if n == "" {
		return "empty system call name"
	}
	for _, c := range n {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return "not a system call name (lowercase letters, digits and _)"
		}
	}
	if !knownName(n) {
		return "not a system call on any Linux architecture"
	}
	return ""
}

func checkAction(path string, a specs.LinuxSeccompAction, errnoRet *uint, errnoPath string) error {
	switch a {
	case specs.ActAllow, specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap, specs.ActLog:
		if errnoRet != nil {
			return &ProfileError{Path: errnoPath, Value: strconv.FormatUint(uint64(*errnoRet), 10), Reason: "only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno"}
		}
	case specs.ActErrno, specs.ActTrace:
		if errnoRet != nil && *errnoRet > maxErrno {
			return &ProfileError{Path: errnoPath, Value: strconv.FormatUint(uint64(*errnoRet), 10), Reason: fmt.Sprintf("errno must be at most %d", maxErrno)}
		}
	case specs.ActNotify:
		return &ProfileError{Path: path, Value: string(a), Reason: "not supported: the sandbox has no seccomp notification listener"}
	case "":
		return &ProfileError{Path: path, Reason: "missing action"}
	default:
		return &ProfileError{Path: path, Value: string(a), Reason: "unknown action"}
	}
	return nil
}
