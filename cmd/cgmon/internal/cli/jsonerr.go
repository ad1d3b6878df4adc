package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// jsonError says what is wrong with a JSON value in the terms of the JSON
// the user wrote: the field and the kind of value it takes ("code_length"
// must be a whole number, not a string), never the Go type it would have
// been decoded into. root is the Go value decoded into (for the types of
// its fields); prefix is the path of that value within the user's JSON,
// e.g. "limits" for the object of a batch line's "limits" field, empty
// for a whole line or file.
func jsonError(err error, root any, prefix string) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		path := strings.TrimPrefix(prefix+"."+te.Field, ".")
		path = strings.TrimSuffix(path, ".")
		got := jsonValueName(te.Value)
		if path == "" {
			return fmt.Sprintf("the JSON value is %s, not an object", got)
		}
		want := jsonKind(te.Type, false)
		if ft := fieldType(reflect.TypeOf(root), te.Field); ft != nil && ft != te.Type && isList(ft) {
			return fmt.Sprintf("%q must be %s: it holds %s", path, jsonKind(ft, false), got)
		}
		return fmt.Sprintf("%q must be %s, not %s", path, want, got)
	case errors.As(err, &se):
		return se.Error()
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON value is cut short"
	case errors.Is(err, io.EOF):
		return "no JSON value"
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if prefix != "" && strings.HasPrefix(msg, "unknown field ") {
		msg += fmt.Sprintf(" in %q", prefix)
	}
	return msg
}

// isList reports whether t (or what it points to) is a slice or array.
func isList(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Slice || t.Kind() == reflect.Array
}

// fieldType returns the type of the field at the dotted JSON path within
// t ("memory.limit"), nil when there is none.
func fieldType(t reflect.Type, path string) reflect.Type {
	for _, name := range strings.Split(path, ".") {
		for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			t = t.Elem()
		}
		if t == nil || t.Kind() != reflect.Struct {
			return nil
		}
		var next reflect.Type
		for i := range t.NumField() {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if tag == name || (tag == "" && strings.EqualFold(f.Name, name)) {
				next = f.Type
				break
			}
		}
		t = next
	}
	return t
}

// jsonFieldError reports whether err is about one field of a JSON
// object (a value of the wrong kind, or an unknown field) rather than
// about the whole value.
func jsonFieldError(err error) bool {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field != ""
	}
	return strings.HasPrefix(err.Error(), "json: unknown field ")
}

// jsonValueName names the JSON value that UnmarshalTypeError.Value
// describes: "an array", "a string", or the number itself ("1.5",
// "-1") where the number did not fit.
func jsonValueName(v string) string {
	if n, ok := strings.CutPrefix(v, "number "); ok {
		return n
	}
	switch v {
	case "array", "object":
		return "an " + v
	case "bool":
		return "true or false"
	case "":
		return "this value"
	}
	return "a " + v
}

// jsonKind names the JSON value that a field decoded into t takes: "a
// string", "a whole number", "an array of strings"; plural, the kind of
// an array's elements.
func jsonKind(t reflect.Type, plural bool) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	pick := func(one, many string) string {
		if plural {
			return many
		}
		return one
	}
	switch t.Kind() {
	case reflect.String:
		return pick("a string", "strings")
	case reflect.Bool:
		return pick("true or false", "true or false values")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return pick("a whole number", "whole numbers")
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return pick("a whole number of 0 or more", "whole numbers of 0 or more")
	case reflect.Float32, reflect.Float64:
		return pick("a number", "numbers")
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return pick("a base64 string", "base64 strings")
		}
		return pick("an array of "+jsonKind(t.Elem(), true), "arrays")
	case reflect.Struct, reflect.Map:
		return pick("an object", "objects")
	}
	return pick("a JSON value", "JSON values")
}
