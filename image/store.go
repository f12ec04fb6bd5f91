package image

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/containers/image/v5/signature"
	"github.com/containers/image/v5/types"
	"github.com/containers/storage"
)

// Driver is the only graph driver the store uses: kernel overlay, which
// works inside a user namespace since Linux 5.11 and which the run path
// mounts from the layer directories Prepare returns.
const Driver = "overlay"

// Options say where the store lives and how ownership is kept.
type Options struct {
	Root    string // graph root: layers, images, containers
	RunRoot string // locks and mount state; on a tmpfs that is the caller's
	// SingleID is set when the process's user namespace maps only the
	// caller (no subordinate ids): files cannot be given other owners,
	// so the driver ignores chown errors and every file is the caller's.
	SingleID bool
	Log      *slog.Logger
}

// Store is an open image store. Close releases it.
type Store struct {
	s   storage.Store
	log *slog.Logger
	// Notices collects what the operations neutralised, for the caller to
	// show.
	Notices []Notice
}

// Open opens (creating if needed) the store. Concurrent processes may
// open the same store: containers/storage locks every change.
func Open(o Options) (*Store, error) {
	if !filepath.IsAbs(o.Root) || !filepath.IsAbs(o.RunRoot) {
		return nil, fmt.Errorf("open store: root %q and run root %q must be absolute", o.Root, o.RunRoot)
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	so := storage.StoreOptions{
		GraphRoot:       o.Root,
		RunRoot:         o.RunRoot,
		GraphDriverName: Driver,
	}
	if o.SingleID {
		so.GraphDriverOptions = []string{"overlay.ignore_chown_errors=true"}
	}
	s, err := storage.GetStore(so)
	if err != nil {
		return nil, &StoreError{Root: o.Root, Err: err}
	}
	return &Store{s: s, log: log}, nil
}

// Close releases the store; layers mounted by this process are unmounted.
func (st *Store) Close() error {
	_, err := st.s.Shutdown(false)
	return err
}

// StoreError is a store that cannot be opened or used.
type StoreError struct {
	Root string
	Err  error
}

func (e *StoreError) Error() string { return "image store " + e.Root + ": " + e.Err.Error() }
func (e *StoreError) Unwrap() error { return e.Err }

// NotFoundError is a local image name or id that matches no image.
type NotFoundError struct{ Name string }

func (e *NotFoundError) Error() string { return "no image " + e.Name + " in the local store" }

// layerDir is where the overlay driver keeps the files of layer id.
func (st *Store) layerDir(id string) string {
	return filepath.Join(st.s.GraphRoot(), Driver, id, "diff")
}

// policy accepts every image. Signature verification is not implemented
// yet; the host's /etc/containers/policy.json is not consulted so that a
// pull behaves the same on every machine.
func policy() (*signature.PolicyContext, error) {
	return signature.NewPolicyContext(&signature.Policy{
		Default: []signature.PolicyRequirement{signature.NewPRInsecureAcceptAnything()},
	})
}

// systemContext is containers/image's view of the host: only what we set.
// The registries.conf files of the host are not read: short names are
// resolved by Candidates from our own list, never by a file the user did
// not name.
func systemContext(authFile string, tlsVerify bool) *types.SystemContext {
	sc := &types.SystemContext{
		AuthFilePath:                authFile,
		SystemRegistriesConfPath:    os.DevNull,
		SystemRegistriesConfDirPath: os.DevNull,
		ShortNameMode:               &disabledShortNames,
		DockerRegistryUserAgent:     "sandbox",
	}
	if !tlsVerify {
		sc.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
		sc.OCIInsecureSkipTLSVerify = true
	}
	return sc
}

var disabledShortNames = types.ShortNameModeDisabled

// isNotFound tells a missing manifest (try the next registry) from other
// registry failures.
func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "manifest unknown") || strings.Contains(s, "name unknown") ||
		strings.Contains(s, "not found") || errors.Is(err, storage.ErrImageUnknown)
}
