package seccomp

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestEncodeDecode(t *testing.T) {
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offArch},
		{Code: jeq, Jt: 1, Jf: 0xff, K: auditArchX86_64},
		{Code: unix.BPF_RET | unix.BPF_K, K: retAllow},
	}
	b := Encode(prog)
	want := []byte{
		0x20, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
		0x15, 0x00, 0x01, 0xff, 0x3e, 0x00, 0x00, 0xc0,
		0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x7f,
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("Encode: got % x\nwant % x", b, want)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, prog) {
		t.Fatalf("Decode: got %+v, want %+v", got, prog)
	}

	def, err := Compile(Default(Options{}))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Decode(Encode(def)); err != nil || !reflect.DeepEqual(got, def) {
		t.Fatalf("the default program does not survive Encode and Decode: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"partial instruction", make([]byte, 12), "not whole"},
		{"too long", make([]byte, 8*(MaxInstructions+1)), "longer than"},
	} {
		_, err := Decode(tt.b)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error about %q", tt.name, err, tt.want)
		}
	}
}
