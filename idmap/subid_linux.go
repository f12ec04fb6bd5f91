package idmap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// helperEnv is the whole environment of every program idmap runs: the
// caller's environment (locale, LD_*, IFS) has no business reaching a
// setuid helper, and LC_ALL=C keeps its messages in the words we quote.
var helperEnv = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}

// getsubidsTimeout bounds a getsubids run: with SSSD or LDAP behind it, it
// can hang on the network, and Decide has no context to cancel it by.
const getsubidsTimeout = 10 * time.Second

// LookupSubIDs returns the ranges of kind k delegated to user (or to the
// numeric id) and where they came from: k.File(), or, when that file has no
// entry for the user (or does not exist) and a getsubids program is on
// pathEnv, "getsubids", which asks the subid source of nsswitch.conf(5)
// (SSSD, LDAP). No ranges anywhere is a *NoRangeError; a malformed file is
// a *ParseError.
func LookupSubIDs(k Kind, pathEnv, user string, id uint32) ([]Range, string, error) {
	return lookupSubIDs(k, k.File(), pathEnv, user, id)
}

func lookupSubIDs(k Kind, file, pathEnv, user string, id uint32) ([]Range, string, error) {
	f, err := os.Open(file)
	switch {
	case err == nil:
		ranges, err := ParseSubIDs(f, file, user, id)
		f.Close()
		if err != nil {
			return nil, file, err
		}
		if len(ranges) > 0 {
			return ranges, file, nil
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, file, err
	}
	if prog := lookPath(pathEnv, "getsubids"); prog != "" {
		owner := user
		if owner == "" {
			owner = strconv.FormatUint(uint64(id), 10)
		}
		ranges, err := runGetsubids(prog, k, owner)
		if err != nil {
			return nil, "getsubids", err
		}
		if len(ranges) > 0 {
			return ranges, "getsubids", nil
		}
	}
	return nil, file, &NoRangeError{Kind: k, User: user, ID: id, File: file}
}

// runGetsubids asks getsubids(1) for owner's ranges. getsubids exits 1
// ("Error fetching ranges") when the owner has none, so a plain non-zero
// exit means no ranges rather than a failure.
func runGetsubids(prog string, k Kind, owner string) ([]Range, error) {
	ctx, cancel := context.WithTimeout(context.Background(), getsubidsTimeout)
	defer cancel()
	args := []string{owner}
	if k == GID {
		args = []string{"-g", owner}
	}
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = helperEnv
	cmd.WaitDelay = time.Second
	var stdout bytes.Buffer
	cmd.Stdout = &limitedBuffer{buf: &stdout, max: 1 << 20}
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s %s: %w", prog, owner, ctx.Err())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", prog, owner, err)
	}
	return parseGetsubids(&stdout)
}

// pathDirs returns the absolute directories of a PATH-style list: empty
// and relative elements would resolve against whatever the current
// directory is, which must not choose a setuid helper.
func pathDirs(pathEnv string) []string {
	var out []string
	for _, d := range filepath.SplitList(pathEnv) {
		if d != "" && filepath.IsAbs(d) {
			out = append(out, d)
		}
	}
	return out
}

// lookPath returns the first regular file named name with an execute bit
// in the absolute directories of pathEnv, or "".
func lookPath(pathEnv, name string) string {
	for _, d := range pathDirs(pathEnv) {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// limitedBuffer keeps the first max bytes written to it and silently drops
// the rest, so a chatty program neither grows memory nor blocks on a pipe
// nobody reads.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
