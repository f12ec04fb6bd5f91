// Package rundir finds and opens the user's private run-time directory,
// where sockets and run state live, without trusting a path another user
// could have created first: the directory is opened with O_NOFOLLOW and
// must be a directory owned by the user with no access for anyone else.
// Everything after goes through the open fd.
//
// Runs in: the CLI (parent) and the processes it starts on the host side.
package rundir
