//go:build !linux

package registry

import "syscall"

// sysProcAttr: only Linux has a parent-death signal; elsewhere the cleanup
// is all there is.
func sysProcAttr() *syscall.SysProcAttr { return nil }
