package main

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"strings"
	"syscall"

	"github.com/containers/image/v5/docker"

	"sandbox/image"
	"sandbox/storeclient"
)

// errorAnswer is the JSON of a failure: a kind the CLI explains in words,
// and the facts behind it. The type is storeclient's, so both ends of the
// contract read one definition.
type errorAnswer = storeclient.Error

// answerError writes err as {"error": ...} and returns the exit status.
func answerError(w io.Writer, err error) int {
	json.NewEncoder(w).Encode(struct {
		Error errorAnswer `json:"error"`
	}{classify(err)})
	return exitCode(err)
}

// classify turns the helper's errors into kinds. The kinds are the
// contract with storeclient; the words are cmd/sandbox's.
func classify(err error) errorAnswer {
	a := errorAnswer{Kind: "internal", Message: err.Error()}
	var (
		ue  *usageError
		re  *image.RefError
		nr  *image.NoRegistriesError
		nf  *image.NotFoundError
		le  *image.LayerError
		de  *image.DigestError
		pe  *image.PullError
		ae  *image.AuthError
		nl  *image.NotLoggedInError
		iu  *image.InUseError
		cn  *image.ContainerNotFoundError
		fe  *image.FormatError
		se  *image.StoreError
		ce  *ConfigError
		pth *fs.PathError
		ns  *image.NoSpaceError
	)
	switch {
	case errors.As(err, &ns):
		a.Kind, a.Path, a.Reason = "no-space", ns.Path, ns.Err.Error()
	case errors.As(err, &ue):
		a.Kind = "usage"
	case errors.As(err, &re):
		a.Kind, a.Ref, a.Reason = "reference", re.Ref, re.Reason
	case errors.As(err, &nr):
		a.Kind, a.Ref = "no-registries", nr.Ref
	case errors.As(err, &nf):
		a.Kind, a.Ref = "not-found", nf.Name
	case errors.As(err, &le):
		a.Kind, a.Layer, a.Entry, a.Reason = "layer-rejected", le.Layer, le.Entry, le.Reason
	case errors.As(err, &de):
		a.Kind, a.Expected, a.Actual = "digest-mismatch", de.Expected, de.Actual
	case errors.As(err, &pe):
		a.Kind, a.Ref, a.Tried, a.Cause = "pull", pe.Ref, pe.Tried, cause(pe.Err)
		a.Reason = pe.Err.Error()
	case errors.As(err, &ae):
		a.Kind, a.Registry, a.Cause, a.Reason = "auth", ae.Registry, cause(ae.Err), ae.Err.Error()
	case errors.As(err, &nl):
		a.Kind, a.Registry = "not-logged-in", nl.Registry
	case errors.As(err, &iu):
		a.Kind, a.Ref, a.Tried = "in-use", iu.Name, iu.Containers
	case errors.As(err, &cn):
		a.Kind, a.Ref = "container-not-found", cn.ID
	case errors.As(err, &fe):
		a.Kind, a.Reason = "format", fe.Format
	case errors.As(err, &ce):
		a.Kind, a.Path, a.Reason = "config", ce.Path, ce.Err.Error()
	case errors.As(err, &se):
		a.Kind, a.Path, a.Reason = "store", se.Root, se.Err.Error()
	case errors.As(err, &pth):
		a.Kind, a.Path, a.Reason = "file", pth.Path, pth.Err.Error()
	default:
		if c := cause(err); c != "" {
			a.Kind, a.Cause = "registry", c
		}
	}
	return a
}

// cause names why a registry operation failed, for the CLI to suggest
// the matching fix.
func cause(err error) string {
	var unauth docker.ErrUnauthorizedForCredentials
	var op *net.OpError
	var dns *net.DNSError
	s := err.Error()
	switch {
	case errors.As(err, &unauth), strings.Contains(s, "unauthorized"), strings.Contains(s, "authentication required"):
		return "unauthorized"
	case strings.Contains(s, "server gave HTTP response to HTTPS client"):
		return "http"
	case strings.Contains(s, "x509:") || strings.Contains(s, "tls:"):
		return "tls"
	case errors.Is(err, syscall.ECONNREFUSED), errors.As(err, &dns), errors.As(err, &op):
		return "connection"
	case strings.Contains(s, "manifest unknown"), strings.Contains(s, "name unknown"), strings.Contains(s, "not found"):
		return "not-found"
	}
	return ""
}
