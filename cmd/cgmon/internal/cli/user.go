package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os/user"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// parseUser reads a --user value, or a batch line's "user" string:
// USER[:GROUP], each a number or a name looked up in the user and group
// databases (/etc/passwd and /etc/group, or NSS). Without GROUP the
// user's primary group from its passwd entry is used; a uid without an
// entry needs GROUP, since no group is a safe guess (Docker's is 0, root's
// group). The execution gets no supplementary groups.
func parseUser(s string) (*specs.User, error) {
	name, group, hasGroup := strings.Cut(s, ":")
	if name == "" || (hasGroup && group == "") {
		return nil, errors.New("want USER[:GROUP], e.g. 65534:65534 or nobody")
	}
	u := &specs.User{}
	var entry *user.User
	if id, ok := numericID(name); ok {
		u.UID = id
		if !hasGroup {
			e, err := user.LookupId(name)
			if err != nil {
				return nil, fmt.Errorf("uid %s has no user entry to take a group from: give one, e.g. %s:%s", name, name, name)
			}
			entry = e
		}
	} else {
		e, err := user.Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("no user named %q", name)
		}
		id, ok := numericID(e.Uid)
		if !ok {
			return nil, fmt.Errorf("user %q has uid %q, not a number", name, e.Uid)
		}
		u.UID, entry = id, e
	}
	switch {
	case hasGroup:
		if id, ok := numericID(group); ok {
			u.GID = id
			break
		}
		g, err := user.LookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("no group named %q", group)
		}
		id, ok := numericID(g.Gid)
		if !ok {
			return nil, fmt.Errorf("group %q has gid %q, not a number", group, g.Gid)
		}
		u.GID = id
	default:
		id, ok := numericID(entry.Gid)
		if !ok {
			return nil, fmt.Errorf("user %q has primary gid %q, not a number", entry.Username, entry.Gid)
		}
		u.GID = id
	}
	return u, nil
}

// numericID reads a uid or gid written as a decimal number; the kernel's
// "no id" value, 4294967295, is not one.
func numericID(s string) (uint32, bool) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == math.MaxUint32 {
		return 0, false
	}
	return uint32(n), true
}

// decodeUser reads a batch line's "user": a string as --user takes, or
// an OCI process user object ({"uid": 65534, "gid": 65534,
// "additionalGids": [100]}), for supplementary groups.
func decodeUser(raw json.RawMessage) (*specs.User, error) {
	var str string
	if json.Unmarshal(raw, &str) == nil {
		u, err := parseUser(str)
		if err != nil {
			return nil, fmt.Errorf(`"user" %q: %w`, str, err)
		}
		return u, nil
	}
	if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
		return nil, errors.New(`"user" must be a string such as "65534:65534" or an object such as {"uid": 65534, "gid": 65534}`)
	}
	var obj struct {
		UID            *uint32  `json:"uid"`
		GID            *uint32  `json:"gid"`
		AdditionalGids []uint32 `json:"additionalGids"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&obj); err != nil {
		return nil, errors.New(jsonError(err, obj, "user"))
	}
	if obj.UID == nil || obj.GID == nil {
		return nil, errors.New(`"user" needs both "uid" and "gid"`)
	}
	return &specs.User{UID: *obj.UID, GID: *obj.GID, AdditionalGids: obj.AdditionalGids}, nil
}
