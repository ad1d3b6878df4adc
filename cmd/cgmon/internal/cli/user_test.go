package cli

import (
	"os/user"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestParseUser: --user and a batch line's "user" string, numbers and
// names, and what is refused with a message that names the problem.
func TestParseUser(t *testing.T) {
	for _, c := range []struct {
		in   string
		want specs.User
	}{
		{"65534:65534", specs.User{UID: 65534, GID: 65534}},
		{"1000:50", specs.User{UID: 1000, GID: 50}},
		{"0:0", specs.User{}},
	} {
		got, err := parseUser(c.in)
		if err != nil || !reflect.DeepEqual(*got, c.want) {
			t.Errorf("parseUser(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	// Names and a uid alone take the passwd entry's primary group.
	if root, err := user.LookupId("0"); err == nil {
		for _, in := range []string{"root", "0", root.Username + ":0"} {
			got, err := parseUser(in)
			if err != nil || got.UID != 0 || got.GID != 0 {
				t.Errorf("parseUser(%q) = %+v, %v; want uid 0, gid 0", in, got, err)
			}
		}
	}
	for in, msg := range map[string]string{
		"":                 "want USER[:GROUP]",
		":0":               "want USER[:GROUP]",
		"0:":               "want USER[:GROUP]",
		"-1:0":             `no user named "-1"`,
		"4294967295:0":     `no user named "4294967295"`,
		"4294967296:0":     `no user named "4294967296"`,
		"cgmon-no-such:0":  `no user named "cgmon-no-such"`,
		"0:cgmon-no-group": `no group named "cgmon-no-group"`,
		"3999999999":       "uid 3999999999 has no user entry to take a group from: give one, e.g. 3999999999:3999999999",
	} {
		_, err := parseUser(in)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("parseUser(%q): %v, want an error containing %q", in, err, msg)
		}
	}
}

// TestBatchLineUser: "user" in a batch line, as a string or an OCI user
// object with supplementary groups; bad ones reject the line, naming the
// field.
func TestBatchLineUser(t *testing.T) {
	for line, want := range map[string]*specs.User{
		`{"command": ["id"]}`:                                                         nil,
		`{"command": ["id"], "user": null}`:                                           nil,
		`{"command": ["id"], "user": "65534:65534"}`:                                  {UID: 65534, GID: 65534},
		`{"command": ["id"], "user": {"uid": 65534, "gid": 65534}}`:                   {UID: 65534, GID: 65534},
		`{"command": ["id"], "user": {"uid": 1, "gid": 2, "additionalGids": [3, 4]}}`: {UID: 1, GID: 2, AdditionalGids: []uint32{3, 4}},
	} {
		s, _, err := parseBatchLine([]byte(line))
		if err != nil || !reflect.DeepEqual(s.User, want) {
			t.Errorf("%s: user %+v, %v; want %+v", line, s.User, err, want)
		}
	}
	for line, msg := range map[string]string{
		`{"command": ["id"], "user": "x:"}`:                                      `"user" "x:": want USER[:GROUP]`,
		`{"command": ["id"], "user": 65534}`:                                     `"user" must be a string such as "65534:65534" or an object`,
		`{"command": ["id"], "user": {"uid": 65534}}`:                            `"user" needs both "uid" and "gid"`,
		`{"command": ["id"], "user": {"uid": -1, "gid": 0}}`:                     `"user.uid" must be a whole number`,
		`{"command": ["id"], "user": {"uid": 1, "gid": 1, "umask": 18}}`:         `unknown field "umask" in "user"`,
		`{"command": ["id"], "user": {"uid": 1, "gid": 1, "additionalGids": 3}}`: `"user.additionalGids" must be`,
	} {
		_, _, err := parseBatchLine([]byte(line))
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want an error containing %q", line, err, msg)
		}
	}
}
