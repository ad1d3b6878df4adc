package cli

import (
	"errors"
	"math"
	"slices"
)

// The Mann-Whitney U test is what benchstat (golang.org/x/perf) uses to say
// whether two sets of benchmark results differ: it assumes no distribution,
// only that the results of each side are independent draws. cgmon's
// compare uses it the same way: two-sided, the statistic counts ties as
// one half, the p-value is exact for small samples and comes from the
// normal approximation (with the tie and continuity corrections) for large
// ones. Two differences from benchstat's package, both towards the exact
// answer: the exact distribution is computed for up to 50 results a side
// with ties as without (it counts the arrangements of the tie groups, as
// Klotz 1966 does; benchstat switches to the approximation above 25 when
// there are ties), and with ties, whose distribution need not be
// symmetric, the two tails are summed rather than one tail doubled.

// uTestExactLimit is the largest sample size for which the exact
// distribution of U is computed.
const uTestExactLimit = 50

// errSamplesEqual is returned when every value of both samples is the same:
// the test has nothing to rank.
var errSamplesEqual = errors.New("all values are equal")

// uTest is the result of a two-sided Mann-Whitney U test.
type uTest struct {
	// U is the smaller of the two U statistics: of all pairs of one value
	// from each sample, the number in which the first sample's value is
	// the larger, ties counting one half.
	U float64
	// P is the two-sided p-value: the probability, if both samples came
	// from one population, of a U at least this far from its mean n1*n2/2.
	P float64
	// Exact is true when P comes from the exact distribution of U rather
	// than the normal approximation.
	Exact bool
}

// mannWhitneyU tests whether x and y come from one population. Neither may
// be empty; when every value is the same it returns errSamplesEqual with P
// 1.
func mannWhitneyU(x, y []float64) (uTest, error) {
	n1, n2 := len(x), len(y)
	if n1 == 0 || n2 == 0 {
		return uTest{P: 1}, errors.New("a sample is empty")
	}
	groups, twoU1 := tieGroups(x, y)
	if len(groups) == 1 {
		return uTest{U: float64(n1*n2) / 2, P: 1}, errSamplesEqual
	}
	twoU := min(twoU1, 2*n1*n2-twoU1)
	res := uTest{U: float64(twoU) / 2}
	if n1 <= uTestExactLimit && n2 <= uTestExactLimit {
		res.Exact = true
		res.P = exactUP(groups, n1, twoU1)
		return res, nil
	}
	res.P = normalUP(groups, n1, n2, res.U)
	return res, nil
}

// tieGroup is a run of equal values in the merged, sorted samples: its
// size and how many of its values are from the first sample.
type tieGroup struct{ size, fromX int }

// tieGroups sorts and merges x and y into groups of equal values and
// returns them with twice U1, the U statistic of x.
func tieGroups(x, y []float64) ([]tieGroup, int) {
	xs, ys := slices.Clone(x), slices.Clone(y)
	slices.Sort(xs)
	slices.Sort(ys)
	var groups []tieGroup
	i, j := 0, 0
	twoU1, yBefore := 0, 0
	for i < len(xs) || j < len(ys) {
		var v float64
		switch {
		case j == len(ys) || i < len(xs) && xs[i] <= ys[j]:
			v = xs[i]
		default:
			v = ys[j]
		}
		g := tieGroup{}
		for i < len(xs) && xs[i] == v {
			i++
			g.fromX++
			g.size++
		}
		ny := 0
		for j < len(ys) && ys[j] == v {
			j++
			ny++
			g.size++
		}
		// Each x value beats every y value of an earlier group and ties
		// with the y values of its own.
		twoU1 += 2*g.fromX*yBefore + g.fromX*ny
		yBefore += ny
		groups = append(groups, g)
	}
	return groups, twoU1
}

// exactUP returns the exact two-sided p-value of an observed 2*U1: the
// probability that 2*U1 lies at least as far from its mean n1*n2 as
// observed, when n1 of the values of the tie groups are drawn for the
// first sample, every choice alike. Without ties the distribution is
// symmetric and this is twice the smaller tail, as benchstat computes it;
// with ties it need not be symmetric, so both tails are summed. It counts
// the choices group by group: ways[k][s] is the number of ways to draw k
// first values from the groups so far with 2*U1 = s.
func exactUP(groups []tieGroup, n1, twoU1 int) float64 {
	total := 0
	for _, g := range groups {
		total += g.size
	}
	n2 := total - n1
	maxS := 2 * n1 * n2
	width := maxS + 1
	ways := make([]float64, (n1+1)*width)
	next := make([]float64, (n1+1)*width)
	ways[0] = 1
	before := 0 // values in earlier groups
	hi := 0     // the largest 2*U1 reached so far
	for _, g := range groups {
		clear(next)
		newHi := hi
		coef := make([]float64, g.size+1)
		for a := range coef {
			coef[a] = binomial(g.size, a)
		}
		for k := 0; k <= min(n1, before); k++ {
			yBefore := before - k
			row := ways[k*width : k*width+hi+1]
			for s, w := range row {
				if w == 0 {
					continue
				}
				for a := 0; a <= g.size && k+a <= n1; a++ {
					if g.size-a > n2-yBefore {
						continue // more second values than there are
					}
					add := 2*a*yBefore + a*(g.size-a)
					next[(k+a)*width+s+add] += w * coef[a]
					newHi = max(newHi, s+add)
				}
			}
		}
		ways, next = next, ways
		before += g.size
		hi = newHi
	}
	row := ways[n1*width : (n1+1)*width]
	mean := n1 * n2 // of 2*U1
	far := abs(twoU1 - mean)
	tails := 0.0
	for s, w := range row {
		if abs(s-mean) >= far {
			tails += w
		}
	}
	return min(1, tails/binomial(total, n1))
}

// abs returns the absolute value of v.
func abs(v int) int { return max(v, -v) }

// binomial returns n choose k as a float64.
func binomial(n, k int) float64 {
	if k < 0 || k > n {
		return 0
	}
	k = min(k, n-k)
	r := 1.0
	for i := 1; i <= k; i++ {
		r = r * float64(n-k+i) / float64(i)
	}
	return math.Round(r)
}

// normalUP is the two-sided p-value of U (the smaller statistic) from the
// normal approximation, with the tie correction of its variance and a
// continuity correction of one half.
func normalUP(groups []tieGroup, n1, n2 int, u float64) float64 {
	n := float64(n1 + n2)
	ties := 0.0
	for _, g := range groups {
		t := float64(g.size)
		ties += t*t*t - t
	}
	mean := float64(n1*n2) / 2
	sd := math.Sqrt(float64(n1*n2) / 12 * ((n + 1) - ties/(n*(n-1))))
	if sd == 0 {
		return 1
	}
	d := u - mean
	switch {
	case d > 0:
		d -= 0.5
	case d < 0:
		d += 0.5
	}
	z := d / sd
	phi := 0.5 * math.Erfc(-z/math.Sqrt2)
	return min(1, 2*min(phi, 1-phi))
}

// minUTestP returns the smallest p-value the test can give for samples of
// n1 and n2 distinct values: both samples wholly apart.
func minUTestP(n1, n2 int) float64 {
	if n1 == 0 || n2 == 0 {
		return 1
	}
	return min(1, 2/binomial(n1+n2, n1))
}
