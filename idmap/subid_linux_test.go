package idmap

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
)

// fakeGetsubids answers like shadow's getsubids(1) for user ada (and uid
// 1000): one uid range, two gid ranges; for anyone else it fails the way
// getsubids does. It records its arguments in args.log.
const fakeGetsubids = `#!/bin/sh
echo "$@" >> "$(dirname "$0")/args.log"
if [ "$1" = -g ]; then
	case "$2" in ada|1000) echo "0: $2 200000 65536"; echo "1: $2 400000 10"; exit 0;; esac
else
	case "$1" in ada|1000) echo "0: $1 100000 65536"; exit 0;; esac
fi
echo "Error fetching ranges" >&2
exit 1
`

func TestLookupSubIDs(t *testing.T) {
	bin := t.TempDir()
	writeExec(t, bin, "getsubids", fakeGetsubids)
	garbage := t.TempDir()
	writeExec(t, garbage, "getsubids", "#!/bin/sh\necho 'ranges: lots'\n")
	notExec := t.TempDir()
	writeFile(t, notExec, "getsubids", fakeGetsubids)
	etc := t.TempDir()
	subuid := writeFile(t, etc, "subuid", "bob:165536:65536\nada:300000:5\n")
	empty := writeFile(t, etc, "empty", "# nobody\n")
	bad := writeFile(t, etc, "bad", "ada:x:1\n")
	missing := filepath.Join(etc, "missing")

	tests := []struct {
		name       string
		kind       Kind
		file, path string
		user       string
		id         uint32
		want       []Range
		source     string
		wantErr    any // *NoRangeError or *ParseError
		args       string
		chdir      bool // run from bin, so a relative PATH entry would find getsubids
	}{
		{name: "file first", kind: UID, file: subuid, path: bin, user: "ada", id: 1000, want: []Range{{300000, 5}}, source: subuid},
		{name: "getsubids when the file has no entry", kind: UID, file: empty, path: bin, user: "ada", id: 1000, want: []Range{{100000, 65536}}, source: "getsubids", args: "ada\n"},
		{name: "getsubids when there is no file", kind: UID, file: missing, path: bin, user: "ada", id: 1000, want: []Range{{100000, 65536}}, source: "getsubids", args: "ada\n"},
		{name: "getsubids -g for gids", kind: GID, file: missing, path: bin, user: "ada", id: 1000, want: []Range{{200000, 65536}, {400000, 10}}, source: "getsubids", args: "-g ada\n"},
		{name: "getsubids by id without a name", kind: UID, file: missing, path: bin, user: "", id: 1000, want: []Range{{100000, 65536}}, source: "getsubids", args: "1000\n"},
		{name: "getsubids has none either", kind: UID, file: empty, path: bin, user: "bob", id: 1001, source: empty, wantErr: &NoRangeError{Kind: UID, User: "bob", ID: 1001, File: empty}, args: "bob\n"},
		{name: "no getsubids", kind: GID, file: empty, path: "", user: "ada", id: 1000, source: empty, wantErr: &NoRangeError{Kind: GID, User: "ada", ID: 1000, File: empty}},
		{name: "relative PATH entries are not searched", kind: UID, file: empty, path: ":.", chdir: true, user: "ada", id: 1000, source: empty, wantErr: &NoRangeError{Kind: UID, User: "ada", ID: 1000, File: empty}},
		{name: "getsubids without execute bit", kind: UID, file: empty, path: notExec, user: "ada", id: 1000, source: empty, wantErr: &NoRangeError{Kind: UID, User: "ada", ID: 1000, File: empty}},
		{name: "malformed file does not fall back", kind: UID, file: bad, path: bin, user: "ada", id: 1000, source: bad, wantErr: &ParseError{File: bad, Line: 1, Text: "ada:x:1"}},
		{name: "malformed getsubids output", kind: UID, file: empty, path: garbage, user: "ada", id: 1000, source: "getsubids", wantErr: &ParseError{File: "getsubids", Line: 1, Text: "ranges: lots"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := filepath.Join(bin, "args.log")
			writeFile(t, bin, "args.log", "")
			if tt.chdir {
				t.Chdir(bin)
			}
			got, source, err := lookupSubIDs(tt.kind, tt.file, tt.path, tt.user, tt.id)
			if source != tt.source {
				t.Errorf("source = %q, want %q", source, tt.source)
			}
			switch want := tt.wantErr.(type) {
			case nil:
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("ranges = %v, want %v", got, tt.want)
				}
			case *NoRangeError:
				var e *NoRangeError
				if !errors.As(err, &e) || *e != *want {
					t.Errorf("err = %#v, want %#v", err, want)
				}
			case *ParseError:
				var e *ParseError
				if !errors.As(err, &e) || *e != *want {
					t.Errorf("err = %#v, want %#v", err, want)
				}
			}
			if args := readString(t, log); args != tt.args {
				t.Errorf("getsubids was run with %q, want %q", args, tt.args)
			}
		})
	}
}

func TestLookupSubIDsSystem(t *testing.T) {
	// The real files and getsubids, for a user nobody delegates to: the
	// answer must be a clean *NoRangeError naming the real file.
	_, _, err := LookupSubIDs(UID, systemPath, "idmap-test-nobody", 4294967000)
	var e *NoRangeError
	if !errors.As(err, &e) || e.File != "/etc/subuid" {
		t.Fatalf("err = %v, want *NoRangeError for /etc/subuid", err)
	}
}
