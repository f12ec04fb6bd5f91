// Package slirp will give sandboxes user-mode networking (pasta or
// slirp4netns attached to the sandbox's network namespace by pid) and
// published ports. Until then every sandbox has a new network namespace
// with loopback only.
//
// Runs in: parent.
package slirp
