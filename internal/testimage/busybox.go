package testimage

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// BusyboxApplets are the applets BusyboxLayer installs in /bin; each is in
// Debian's busybox-static 1.35.
func BusyboxApplets() []string {
	return []string{
		"cat", "chmod", "chown", "cp", "cut", "date", "dd", "df", "du",
		"echo", "env", "false", "find", "grep", "head", "hostname", "id",
		"kill", "ln", "ls", "mkdir", "mount", "mv", "printf", "ps",
		"readlink", "rm", "seq", "sh", "sleep", "sort", "stat", "sync",
		"test", "touch", "tr", "true", "uname", "wc", "whoami",
	}
}

// Contents of the busybox image's /etc files. Exported so that tests of
// user lookup inside the image compare against the same text.
const (
	BusyboxPasswd = "root:x:0:0:root:/root:/bin/sh\n" +
		"ada:x:1000:1000:Ada:/home/ada:/bin/sh\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	BusyboxGroup = "root:x:0:\n" +
		"ada:x:1000:\n" +
		"nobody:x:65534:\n"
	BusyboxHostname = "testimage\n"
)

// FindBusybox returns the path of a statically linked busybox on this
// machine: Debian's busybox-static installs /bin/busybox.
func FindBusybox() (string, error) {
	var errs []error
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		err := checkStatic(p)
		if err == nil {
			return p, nil
		}
		errs = append(errs, err)
	}
	if p, err := exec.LookPath("busybox"); err == nil {
		if err := checkStatic(p); err == nil {
			return p, nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("no static busybox (fix: apt-get install busybox-static): %w", errors.Join(errs...))
}

// checkStatic fails if p is not an ELF executable without a program
// interpreter: a dynamically linked busybox would not find its libc inside
// an image that holds nothing else.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("busybox %s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			interp, _ := readAll(prog)
			return fmt.Errorf("busybox %s: dynamically linked (interpreter %s)", p, strings.TrimRight(string(interp), "\x00"))
		}
	}
	return nil
}

func readAll(prog *elf.Prog) ([]byte, error) {
	b := make([]byte, prog.Filesz)
	_, err := prog.ReadAt(b, 0)
	return b, err
}

// BusyboxLayer returns the single layer of a minimal shell image built
// around the static busybox at busyboxPath:
//
//	/bin/busybox             0755, the binary
//	/bin/<applet>            symlink to "busybox", for each BusyboxApplets
//	/etc/passwd, group       BusyboxPasswd, BusyboxGroup (root, ada 1000, nobody)
//	/etc/hostname            BusyboxHostname
//	/tmp                     01777
//	/root                    0700
//	/home/ada                0755, owned by 1000:1000
//	/dev, /proc, /sys        empty 0755, for the runtime to mount on
//
// Everything else is owned by 0:0.
//
// The applets are symlinks, not hardlinks: busybox picks the applet from
// argv[0], which a symlink keeps; a relative target resolves both inside
// the container and in a bundle unpacked on the host; and a store that
// mishandles hardlinks then fails the hardlink fixture in MultiLayerLayers
// rather than every test that merely needs a shell.
func BusyboxLayer(busyboxPath string) (Layer, error) {
	if err := checkStatic(busyboxPath); err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("busybox layer: %w", err)
	}
	l := Layer{
		{Kind: Dir, Path: "bin", Mode: 0o755},
		{Kind: File, Path: "bin/busybox", Data: bin, Mode: 0o755},
	}
	for _, a := range BusyboxApplets() {
		l = append(l, Entry{Kind: Symlink, Path: "bin/" + a, Linkname: "busybox", Mode: 0o777})
	}
	l = append(l,
		Entry{Kind: Dir, Path: "dev", Mode: 0o755},
		Entry{Kind: Dir, Path: "etc", Mode: 0o755},
		Entry{Kind: File, Path: "etc/passwd", Data: []byte(BusyboxPasswd), Mode: 0o644},
		Entry{Kind: File, Path: "etc/group", Data: []byte(BusyboxGroup), Mode: 0o644},
		Entry{Kind: File, Path: "etc/hostname", Data: []byte(BusyboxHostname), Mode: 0o644},
		Entry{Kind: Dir, Path: "home", Mode: 0o755},
		Entry{Kind: Dir, Path: "home/ada", Mode: 0o755, UID: 1000, GID: 1000},
		Entry{Kind: Dir, Path: "proc", Mode: 0o755},
		Entry{Kind: Dir, Path: "root", Mode: 0o700},
		Entry{Kind: Dir, Path: "sys", Mode: 0o755},
		Entry{Kind: Dir, Path: "tmp", Mode: 0o1777},
	)
	return l, nil
}
