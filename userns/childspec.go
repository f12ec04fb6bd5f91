package userns

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"sandbox/spec"
)

// childSpec is the part of spec.Spec the child stage reads, in the same
// JSON shape. Decoding only these fields keeps encoding/json from
// building its reflection caches for the whole runtime-spec type graph,
// which costs milliseconds on the start-up path. The parent validated the
// full Spec before sending it.
type childSpec struct {
	OCI struct {
		Process  *specs.Process `json:"process"`
		Hostname string         `json:"hostname"`
		Mounts   []specs.Mount  `json:"mounts"`
		Linux    struct {
			MaskedPaths   []string `json:"maskedPaths"`
			ReadonlyPaths []string `json:"readonlyPaths"`
		} `json:"linux"`
	} `json:"oci"`
	Symlinks    []spec.Symlink `json:"symlinks"`
	Interactive bool           `json:"interactive"`
	Debug       bool           `json:"debug"`
	Seccomp     []byte         `json:"seccomp"`
	Rootfs      *spec.Rootfs   `json:"rootfs"`
}

// newChildSpec takes the child's part of a validated Spec.
func newChildSpec(s *spec.Spec) *childSpec {
	c := &childSpec{Symlinks: s.Symlinks, Interactive: s.Interactive, Debug: s.Debug, Seccomp: s.Seccomp, Rootfs: s.Rootfs}
	c.OCI.Process = s.OCI.Process
	c.OCI.Hostname = s.OCI.Hostname
	c.OCI.Mounts = s.OCI.Mounts
	if s.OCI.Linux != nil {
		c.OCI.Linux.MaskedPaths = s.OCI.Linux.MaskedPaths
		c.OCI.Linux.ReadonlyPaths = s.OCI.Linux.ReadonlyPaths
	}
	return c
}

// EncodeSpec is what the child reads of s, as sent down the spec pipe.
func EncodeSpec(s *spec.Spec) ([]byte, error) {
	return json.Marshal(newChildSpec(s))
}

func decodeChildSpec(r io.Reader) (*childSpec, error) {
	var s childSpec
	if err := json.NewDecoder(r).Decode(&s); err != nil {
		return nil, fmt.Errorf("decode spec: %w", err)
	}
	if s.OCI.Process == nil || len(s.OCI.Process.Args) == 0 {
		return nil, fmt.Errorf("decode spec: no process")
	}
	return &s, nil
}

// prewarmSample touches every type in childSpec, so decoding it builds
// encoding/json's per-type caches.
const prewarmSample = `{"oci":{"process":{"terminal":true,"consoleSize":{"height":1,"width":1},` +
	`"user":{"uid":1,"gid":1,"additionalGids":[1]},"args":["x"],"env":["A=b"],"cwd":"/",` +
	`"capabilities":{"bounding":["x"],"effective":["x"],"inheritable":["x"],"permitted":["x"],"ambient":["x"]},` +
	`"rlimits":[{"type":"x","hard":1,"soft":1}],"noNewPrivileges":true},"hostname":"x",` +
	`"mounts":[{"destination":"/x","type":"x","source":"x","options":["x"]}],` +
	`"linux":{"maskedPaths":["x"],"readonlyPaths":["x"]}},` +
	`"symlinks":[{"target":"x","path":"/x"}],"interactive":true,"debug":true,"seccomp":"AAAA",` +
	`"rootfs":{"lower":["/x"],"upper":"/x","work":"/x","readOnly":true}}`

// prewarmDecoder decodes a sample spec, which takes the one-time cost of
// decoding off the path of an init spawned ahead of its spec.
func prewarmDecoder() {
	decodeChildSpec(strings.NewReader(prewarmSample))
}
