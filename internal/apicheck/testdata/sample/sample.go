// Package sample is the fixture of apicheck's own test.
package sample

// Good is documented.
func Good() {}

func Undocumented() {}

// It is wrong: the comment does not start with the name.
func Wrong() {}

// T is a documented type.
type T struct {
	// Field is documented.
	Field int
	Bare  int
	// Colon: a comment that names the field but is no sentence.
	Colon int
	inner int
}

// Method is documented.
func (T) Method() {}

// The group's comment documents its members.
const (
	GroupA = 1
	GroupB = 2
)

var Loose = 3
