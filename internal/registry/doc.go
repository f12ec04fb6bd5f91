// Package registry runs a real OCI distribution registry on loopback for
// the image tests: Debian's docker-registry (distribution v2) with its
// storage in the test's temporary directory, no TLS and no auth (Start),
// and a TCP proxy in front of anything that slows the server-to-client
// direction to a fixed rate (ThrottledProxy), so that a test can kill a
// pull half-way through a layer.
//
// Everything it starts is tied to the test that started it: the registry
// process is killed by its own pid and reaped, the proxy's listener and
// connections are closed, both through t.Cleanup. A machine without
// docker-registry skips the test, or fails it under SANDBOX_TEST_STRICT=1.
//
// Runs in: tests only, on Linux.
package registry
