// Package spec defines Spec, the single value that carries every decision
// about one sandbox from the CLI to the child stage.
//
// A Spec is an OCI runtime-spec configuration (process, hostname, mounts in
// order, namespaces, id mappings) plus the few sandbox fields OCI has no
// words for. It is built in the parent, checked once by Validate, and then
// frozen: it travels to the child as JSON and nobody changes it afterwards.
//
// Runs in: anywhere; pure, imports only the standard library and specs-go.
package spec
