package profiles

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Profile is a decoded profile. Keys are the flags' words.
type Profile struct {
	Name        string   `toml:"-"`
	Description string   `toml:"description"`
	Hostname    string   `toml:"hostname"`
	SystemDirs  []string `toml:"system-dirs"`
	BindWorkdir bool     `toml:"bind-workdir"`
	Volume      []string `toml:"volume"`
	Tmpfs       []string `toml:"tmpfs"`
	EnvPass     []string `toml:"env-pass"`
	Env         []string `toml:"env"`
	MaskedPaths []string `toml:"masked-paths"`
	ReadOnly    []string `toml:"read-only-paths"`
}

//go:embed default.toml
var defaultTOML []byte

//go:embed container.toml
var containerTOML []byte

var builtin = map[string][]byte{
	"default":   defaultTOML,
	"container": containerTOML,
}

// UnknownError is a profile name that does not exist.
type UnknownError struct {
	Name      string
	Available []string
}

func (e *UnknownError) Error() string { return fmt.Sprintf("unknown profile %q", e.Name) }

// DecodeError is a profile that does not parse or has unknown keys.
type DecodeError struct {
	Name string
	Err  error
}

func (e *DecodeError) Error() string { return fmt.Sprintf("profile %s: %v", e.Name, e.Err) }
func (e *DecodeError) Unwrap() error { return e.Err }

// Names lists the built-in profiles.
func Names() []string {
	out := make([]string, 0, len(builtin))
	for n := range builtin {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Load returns the built-in profile called name: decoded ahead
// (zprofiles.go), which keeps TOML off a run's start-up path.
func Load(name string) (*Profile, error) {
	if p := decoded(name); p != nil {
		return p, nil
	}
	return nil, &UnknownError{Name: name, Available: Names()}
}

// DecodeBuiltin decodes the TOML of the built-in profile name, which
// Load has decoded ahead.
func DecodeBuiltin(name string) (*Profile, error) {
	b, ok := builtin[name]
	if !ok {
		return nil, &UnknownError{Name: name, Available: Names()}
	}
	return Decode(name, b)
}

// Decode parses a profile strictly: an unknown key is an error.
func Decode(name string, b []byte) (*Profile, error) {
	var p Profile
	dec := toml.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, &DecodeError{Name: name, Err: tomlError(err)}
	}
	p.Name = name
	return &p, nil
}

// tomlError renders go-toml's errors as one line naming the key and the
// line, without Go type names.
func tomlError(err error) error {
	var sme *toml.StrictMissingError
	if errors.As(err, &sme) && len(sme.Errors) > 0 {
		var keys []string
		for _, e := range sme.Errors {
			row, _ := e.Position()
			keys = append(keys, fmt.Sprintf("%q (line %d)", strings.Join(e.Key(), "."), row))
		}
		return fmt.Errorf("unknown key %s", strings.Join(keys, ", "))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		return fmt.Errorf("line %d: %s", row, de.Error())
	}
	return err
}
