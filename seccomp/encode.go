package seccomp

import (
	"encoding/binary"
	"fmt"
)

// insnSize is the size of one encoded instruction: struct sock_filter
// (u16 code, u8 jt, u8 jf, u32 k), little endian.
const insnSize = 8

// Encode returns prog as bytes for the child, 8 per instruction.
func Encode(prog []Instruction) []byte {
	b := make([]byte, 0, len(prog)*insnSize)
	for _, ins := range prog {
		b = binary.LittleEndian.AppendUint16(b, ins.Code)
		b = append(b, ins.Jt, ins.Jf)
		b = binary.LittleEndian.AppendUint32(b, ins.K)
	}
	return b
}

// Decode reads a program written by Encode.
func Decode(b []byte) ([]Instruction, error) {
	switch n := len(b) / insnSize; {
	case len(b)%insnSize != 0:
		return nil, fmt.Errorf("seccomp program of %d bytes is not whole %d-byte instructions", len(b), insnSize)
	case n == 0:
		return nil, fmt.Errorf("empty seccomp program")
	case n > MaxInstructions:
		return nil, fmt.Errorf("seccomp program of %d instructions is longer than the kernel's %d", n, MaxInstructions)
	}
	prog := make([]Instruction, len(b)/insnSize)
	for i := range prog {
		p := b[i*insnSize:]
		prog[i] = Instruction{
			Code: binary.LittleEndian.Uint16(p),
			Jt:   p[2],
			Jf:   p[3],
			K:    binary.LittleEndian.Uint32(p[4:]),
		}
	}
	return prog, nil
}
