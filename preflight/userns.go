package preflight

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"syscall"
)

// The sysctls that decide whether an unprivileged user may create a user
// namespace and use the capabilities it grants.
const (
	sysctlMaxUserns        = "user.max_user_namespaces"
	sysctlUnprivClone      = "kernel.unprivileged_userns_clone"
	sysctlAppArmorRestrict = "kernel.apparmor_restrict_unprivileged_userns"

	// suggestedMaxUserns is what the fixes raise user.max_user_namespaces
	// to; the kernel default is about half the maximum number of threads,
	// and 15000 is what distributions that turned it off suggest.
	suggestedMaxUserns = 15000
)

// UsernsFacts are the sysctls behind user namespace creation. A field is -1
// when its file is absent (or unreadable): unprivileged_userns_clone exists
// only on Debian and Ubuntu kernels (and linux-hardened), and
// apparmor_restrict_unprivileged_userns only on kernels with Ubuntu's
// AppArmor patches (Ubuntu 23.10+).
type UsernsFacts struct {
	MaxUserNamespaces int // user.max_user_namespaces: 0 forbids user namespaces for everyone but root
	UnprivilegedClone int // kernel.unprivileged_userns_clone: 0 forbids them for unprivileged users
	AppArmorRestrict  int // kernel.apparmor_restrict_unprivileged_userns: 1 drops capabilities inside them
}

// ReadUsernsFacts reads the sysctls from fsys, a file system rooted at the
// host's "/" (os.DirFS("/")).
func ReadUsernsFacts(fsys fs.FS) UsernsFacts {
	return UsernsFacts{
		MaxUserNamespaces: readIntFile(fsys, "proc/sys/user/max_user_namespaces"),
		UnprivilegedClone: readIntFile(fsys, "proc/sys/kernel/unprivileged_userns_clone"),
		AppArmorRestrict:  readIntFile(fsys, "proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
	}
}

// readIntFile returns the decimal number in name, or -1 when the file is
// absent, unreadable or holds something else.
func readIntFile(fsys fs.FS, name string) int {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// CloneBlocker names the sysctl that refuses user namespaces to
// unprivileged users, or returns "" when none of them does.
func (u UsernsFacts) CloneBlocker() string {
	switch {
	case u.UnprivilegedClone == 0:
		return sysctlUnprivClone + " is 0"
	case u.MaxUserNamespaces == 0:
		return sysctlMaxUserns + " is 0"
	}
	return ""
}

// CloneFixes returns the commands that let an unprivileged user create a
// user namespace when clone(2) with CLONE_NEWUSER failed with err (an
// errno, possibly wrapped; nil when unknown). It returns nil when the
// facts name no cause a command can remove.
func (u UsernsFacts) CloneFixes(err error) []string {
	var fixes []string
	if u.UnprivilegedClone == 0 {
		fixes = append(fixes, "sudo sysctl -w "+sysctlUnprivClone+"=1")
	}
	switch {
	case u.MaxUserNamespaces == 0:
		fixes = append(fixes, fmt.Sprintf("sudo sysctl -w %s=%d", sysctlMaxUserns, suggestedMaxUserns))
	case errors.Is(err, syscall.ENOSPC) && u.MaxUserNamespaces > 0:
		// ENOSPC: the user (or a parent namespace) already holds
		// max_user_namespaces namespaces (user_namespaces(7)).
		fixes = append(fixes, fmt.Sprintf("sudo sysctl -w %s=%d", sysctlMaxUserns, max(suggestedMaxUserns, 2*u.MaxUserNamespaces)))
	}
	if len(fixes) == 1 {
		return fixes
	}
	if len(fixes) > 1 {
		// Both sysctls block: the user needs both, so offer them as one
		// command rather than as alternatives.
		return []string{strings.Join(fixes, " && ")}
	}
	return nil
}

// RestrictsCapabilities reports whether AppArmor takes the capabilities of
// unprivileged user namespaces away (Ubuntu 23.10+): clone succeeds, but
// mount(2) and friends then fail with EPERM or EACCES.
func (u UsernsFacts) RestrictsCapabilities() bool { return u.AppArmorRestrict == 1 }

// AppArmorFixes returns the two ways around Ubuntu's restriction: a profile
// that allows user namespaces to exe alone, or lifting the restriction for
// every program. exe is the absolute path of the sandbox binary.
func AppArmorFixes(exe string) []string {
	var fixes []string
	if exe != "" && !strings.ContainsAny(exe, " \t\n'\"\\%{}") {
		// abi 4.0 and the userns rule: apparmor.d(5) on Ubuntu 23.10+,
		// the same shape as the profiles Ubuntu ships for bwrap and podman.
		fixes = append(fixes, fmt.Sprintf(
			`printf 'abi <abi/4.0>,\ninclude <tunables/global>\nprofile sandbox %s flags=(unconfined) {\n  userns,\n}\n' | sudo tee /etc/apparmor.d/sandbox && sudo apparmor_parser -r /etc/apparmor.d/sandbox`,
			exe))
	}
	return append(fixes, "sudo sysctl -w "+sysctlAppArmorRestrict+"=0")
}

// errnoName renders the errno inside err as its symbol and text, e.g.
// "EPERM (operation not permitted)", or err's text when it holds none.
func errnoName(err error) string {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return err.Error()
	}
	if name := errnoSymbol(errno); name != "" {
		return fmt.Sprintf("%s (%s)", name, errno.Error())
	}
	return errno.Error()
}

// errnoSymbol is the C name of the errnos the probes meet.
func errnoSymbol(e syscall.Errno) string {
	switch e {
	case syscall.EPERM:
		return "EPERM"
	case syscall.ENOENT:
		return "ENOENT"
	case syscall.EACCES:
		return "EACCES"
	case syscall.EINVAL:
		return "EINVAL"
	case syscall.ENOSPC:
		return "ENOSPC"
	case syscall.ENODEV:
		return "ENODEV"
	case syscall.ENXIO:
		return "ENXIO"
	case syscall.EUSERS:
		return "EUSERS"
	case syscall.ENOSYS:
		return "ENOSYS"
	case syscall.EROFS:
		return "EROFS"
	case syscall.ENOTSUP:
		return "EOPNOTSUPP"
	case syscall.EBUSY:
		return "EBUSY"
	case syscall.ENOMEM:
		return "ENOMEM"
	}
	return ""
}
