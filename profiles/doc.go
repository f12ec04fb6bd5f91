// Package profiles holds the built-in profiles (embedded TOML), decodes
// them strictly, and plans a spec.Spec from a profile plus the user's
// inputs. A profile reads like saved flags: its keys use the flags' words.
//
// Runs in: parent. Pure: the host is read only through the fs.FS given to
// Plan, so tests use fixtures.
package profiles

//go:generate go run mkprofiles.go
