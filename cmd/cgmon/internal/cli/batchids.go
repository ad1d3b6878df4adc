package cli

import (
	"hash/maphash"
	"strconv"
)

// lineDefaultID is the id of input line n of a batch that gives none:
// derived from the input alone, so that running a file again gives the
// same ids.
func lineDefaultID(n int) string { return "line-" + strconv.Itoa(n) }

// maxCheckedIDs bounds how many ids a batch remembers to find those that
// repeat (36 bytes each, measured by BenchmarkIDSetMemory: 36 MiB at the
// bound): a co-process that runs for days must not grow without bound.
// Lines after that many are not checked, and the batch says so once.
const maxCheckedIDs = 1 << 20

// idState is what idSet.add found.
type idState int

const (
	// idNew: no earlier line had the id.
	idNew idState = iota
	// idRepeated: an earlier line had it.
	idRepeated
	// idSetFull: the set has just become full; this line and the next
	// are not checked.
	idSetFull
	// idUnchecked: the set was full.
	idUnchecked
)

// idSet remembers the ids of a batch's lines, each as a 64-bit hash with
// the line it was first on. Two different ids that hash alike (about one
// chance in 2^40 among a million ids) would be reported as one: a
// warning, never a line that is not run. The zero value is ready to use.
type idSet struct {
	seed  maphash.Seed
	first map[uint64]int
	full  bool
}

// add records that line n has id and returns the first line that had it
// when one did.
func (s *idSet) add(id string, n int) (int, idState) {
	if s.full {
		return 0, idUnchecked
	}
	if s.first == nil {
		s.seed, s.first = maphash.MakeSeed(), make(map[uint64]int)
	}
	h := maphash.String(s.seed, id)
	if first, ok := s.first[h]; ok {
		return first, idRepeated
	}
	if len(s.first) == maxCheckedIDs {
		s.full, s.first = true, nil
		return 0, idSetFull
	}
	s.first[h] = n
	return 0, idNew
}
