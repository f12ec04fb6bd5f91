// Package idmap decides and writes the user and group id maps of a
// sandbox's user namespace.
//
// It owns three things: finding the subordinate id ranges delegated to the
// caller (/etc/subuid and /etc/subgid, or the getsubids program when the
// ranges live in SSSD or LDAP), planning maps from them (PlanKeepID,
// PlanSingle, ParseMapping, CheckDelegated), and running the setuid helpers
// newuidmap and newgidmap on a child's pid (FindHelpers, Apply). Decide
// puts these together into the choice `sandbox run` and `sandbox info`
// report.
//
// Parse* and Plan* are pure and build on any OS; the helper lookup, Apply
// and Decide are Linux only. Errors are typed values with fields, turned
// into words by cmd/sandbox.
//
// Runs in: parent, in the host user namespace, before the child is told to
// continue.
package idmap
