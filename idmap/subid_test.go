package idmap

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestKind(t *testing.T) {
	tests := []struct {
		k                    Kind
		file, helper, string string
	}{
		{UID, "/etc/subuid", "newuidmap", "uid"},
		{GID, "/etc/subgid", "newgidmap", "gid"},
	}
	for _, tt := range tests {
		if got := tt.k.File(); got != tt.file {
			t.Errorf("%v.File() = %q, want %q", tt.k, got, tt.file)
		}
		if got := tt.k.Helper(); got != tt.helper {
			t.Errorf("%v.Helper() = %q, want %q", tt.k, got, tt.helper)
		}
		if got := tt.k.String(); got != tt.string {
			t.Errorf("String() = %q, want %q", got, tt.string)
		}
	}
}

func TestParseSubIDs(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		user    string
		id      uint32
		want    []Range
		errLine int // > 0: want a *ParseError on this line
	}{
		{name: "empty", in: "", user: "ada", id: 1000},
		{name: "by name", in: "ada:100000:65536\n", user: "ada", id: 1000, want: []Range{{100000, 65536}}},
		{name: "by id", in: "1000:100000:65536\n", user: "ada", id: 1000, want: []Range{{100000, 65536}}},
		{name: "no newline at end", in: "ada:100000:65536", user: "ada", id: 1000, want: []Range{{100000, 65536}}},
		{
			name: "several, in file order, others skipped",
			in: "# delegated by ops\n\nbob:165536:65536\nada:300000:10\n  \n1000:100000:65536\n" +
				"  # indented comment\n10000:1:1\n",
			user: "ada", id: 1000,
			want: []Range{{300000, 10}, {100000, 65536}},
		},
		{name: "surrounding blanks", in: "  ada:100000:65536\t\r\n", user: "ada", id: 1000, want: []Range{{100000, 65536}}},
		{name: "count 0 delegates nothing", in: "ada:100000:0\n", user: "ada", id: 1000},
		{name: "empty user matches only the id", in: ":1:2\n", user: "", id: 5, errLine: 1},
		{name: "empty user does not match names", in: "ada:1:2\n", user: "", id: 5},
		{name: "name is not a prefix", in: "adam:1:2\n", user: "ada", id: 5},
		{name: "top of the id space", in: "ada:4294967000:295\n", user: "ada", id: 1, want: []Range{{4294967000, 295}}},
		{name: "past the top", in: "ada:4294967000:296\n", user: "ada", id: 1, errLine: 1},
		{name: "two fields", in: "ada:100000:65536\nbob:100000\n", user: "ada", id: 1000, errLine: 2},
		{name: "four fields", in: "ada:1:2:3\n", user: "ada", id: 1000, errLine: 1},
		{name: "not a number", in: "\n\nada:abc:2\n", user: "ada", id: 1000, errLine: 3},
		{name: "negative", in: "ada:-1:2\n", user: "ada", id: 1000, errLine: 1},
		{name: "too big", in: "ada:1:4294967296\n", user: "ada", id: 1000, errLine: 1},
		{name: "malformed for another user still fails", in: "ada:1:2\nbob:x:y\n", user: "ada", id: 1000, errLine: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSubIDs(strings.NewReader(tt.in), "/etc/subuid", tt.user, tt.id)
			if tt.errLine > 0 {
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("err = %v, want *ParseError", err)
				}
				if pe.File != "/etc/subuid" || pe.Line != tt.errLine {
					t.Errorf("ParseError = %+v, want file /etc/subuid line %d", pe, tt.errLine)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseGetsubids(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Range
		errLine int
	}{
		{name: "none", in: ""},
		{name: "one", in: "0: ada 100000 65536\n", want: []Range{{100000, 65536}}},
		{name: "two", in: "0: ada 100000 65536\n1: ada 300000 10\n", want: []Range{{100000, 65536}, {300000, 10}}},
		{name: "no colon", in: "0 ada 100000 65536\n", errLine: 1},
		{name: "short", in: "0: ada 100000\n", errLine: 1},
		{name: "bad index", in: "x: ada 1 2\n", errLine: 1},
		{name: "bad count", in: "0: ada 1 2\n1: ada 1 z\n", errLine: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseGetsubids(strings.NewReader(tt.in))
			if tt.errLine > 0 {
				var pe *ParseError
				if !errors.As(err, &pe) || pe.File != "getsubids" || pe.Line != tt.errLine {
					t.Fatalf("err = %v, want getsubids ParseError on line %d", err, tt.errLine)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSubIDErrorStrings(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&ParseError{File: "/etc/subuid", Line: 3, Text: "ada:x:1"}, `/etc/subuid line 3: malformed entry "ada:x:1"`},
		{&NoRangeError{Kind: UID, User: "ada", ID: 1000, File: "/etc/subuid"}, `no subordinate uid range for user "ada" (uid 1000) in /etc/subuid`},
		{&NoRangeError{Kind: GID, User: "ada", ID: 100, File: "/etc/subgid"}, `no subordinate gid range for user "ada" (gid 100) in /etc/subgid`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}
