package image

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/containers/image/v5/docker/reference"
	"github.com/containers/storage"
)

// DefaultRegistries is the search list for short names ("busybox",
// "library/debian") when neither the flag nor the config gives one:
// Docker Hub only, the registry short names have always meant.
var DefaultRegistries = []string{"docker.io"}

// LocalRegistry is the registry part of images that came from no registry
// (import), as podman names them.
const LocalRegistry = "localhost"

// RefError is a reference that cannot be parsed. It is found before any
// network access.
type RefError struct {
	Ref    string
	Reason string
}

func (e *RefError) Error() string {
	return fmt.Sprintf("invalid image reference %q: %s", e.Ref, e.Reason)
}

// NoRegistriesError is a short name with an empty search list.
type NoRegistriesError struct{ Ref string }

func (e *NoRegistriesError) Error() string {
	return fmt.Sprintf("%q names no registry and the search list is empty", e.Ref)
}

// IsShort reports whether ref names no registry: its first component has
// no "." or ":" and is not "localhost" (the rule of the docker reference
// grammar).
func IsShort(ref string) bool {
	first, _, found := strings.Cut(ref, "/")
	if !found {
		return true
	}
	return !strings.ContainsAny(first, ".:") && first != LocalRegistry
}

// Candidates returns the fully qualified, tagged names ref may mean, in
// the order to try them: ref itself when it names a registry, else ref
// under each registry of the search list. Any syntax error is a
// *RefError; it is reported before anything touches the network.
func Candidates(ref string, registries []string) ([]reference.Named, error) {
	if ref == "" {
		return nil, &RefError{Ref: ref, Reason: "empty"}
	}
	if strings.Contains(ref, "://") {
		return nil, &RefError{Ref: ref, Reason: "a reference has no scheme; write REGISTRY/NAME[:TAG]"}
	}
	// Validate the name as written, whatever the search list says.
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		return nil, &RefError{Ref: ref, Reason: refReason(err)}
	}
	if !IsShort(ref) {
		n, err := reference.ParseNormalizedNamed(ref)
		if err != nil {
			return nil, &RefError{Ref: ref, Reason: refReason(err)}
		}
		return []reference.Named{reference.TagNameOnly(n)}, nil
	}
	if len(registries) == 0 {
		return nil, &NoRegistriesError{Ref: ref}
	}
	var out []reference.Named
	for _, r := range registries {
		n, err := reference.ParseNormalizedNamed(r + "/" + ref)
		if err != nil {
			return nil, &RefError{Ref: r + "/" + ref, Reason: refReason(err)}
		}
		out = append(out, reference.TagNameOnly(n))
	}
	return out, nil
}

func refReason(err error) string {
	switch {
	case errors.Is(err, reference.ErrNameContainsUppercase):
		return "repository names must be lowercase"
	case errors.Is(err, reference.ErrNameTooLong):
		return "the name is longer than 255 characters"
	case errors.Is(err, reference.ErrDigestInvalidFormat):
		return "the digest is not ALGORITHM:HEX"
	case errors.Is(err, reference.ErrTagInvalidFormat):
		return "the tag is not [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
	}
	return "not REGISTRY/NAME[:TAG][@DIGEST]"
}

var idPrefix = regexp.MustCompile(`^(sha256:)?[0-9a-f]{3,64}$`)

// lookup finds a local image by id, id prefix, full name, or short name
// (tried under localhost first, then the search list).
func (st *Store) lookup(name string, registries []string) (*storage.Image, error) {
	if idPrefix.MatchString(name) {
		img, err := st.s.Image(strings.TrimPrefix(name, "sha256:"))
		if err == nil {
			return img, nil
		}
		// A full id, or one that is no valid name either, is not looked
		// up as a name.
		if len(name) >= 64 {
			return nil, &NotFoundError{Name: name}
		}
	}
	var cands []reference.Named
	if IsShort(name) {
		c, err := Candidates(name, append([]string{LocalRegistry}, registries...))
		if err != nil {
			return nil, err
		}
		cands = c
	} else {
		c, err := Candidates(name, nil)
		if err != nil {
			return nil, err
		}
		cands = c
	}
	for _, c := range cands {
		img, err := st.s.Image(c.String())
		if err == nil {
			return img, nil
		}
		if !errors.Is(err, storage.ErrImageUnknown) {
			return nil, err
		}
	}
	return nil, &NotFoundError{Name: name}
}
