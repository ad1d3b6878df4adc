package cli

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// TestMannWhitneyUKnownValues checks the test against values published
// elsewhere.
func TestMannWhitneyUKnownValues(t *testing.T) {
	// SciPy's documentation of mannwhitneyu (the example of Conover's
	// "Practical Nonparametric Statistics"): U of the first sample 17, so
	// the smaller U is 20-17 = 3; exact two-sided p 0.1111 (= 14/126),
	// asymptotic (continuity-corrected) p 0.11134688653314041.
	males := []float64{19, 22, 16, 29, 24}
	females := []float64{20, 11, 17, 12}
	res, err := mannWhitneyU(males, females)
	if err != nil {
		t.Fatal(err)
	}
	if res.U != 3 || !res.Exact || !near(res.P, 14.0/126, 1e-12) {
		t.Errorf("SciPy example: %+v, want U 3, exact p 0.1111111", res)
	}
	groups, twoU1 := tieGroups(males, females)
	if twoU1 != 34 {
		t.Errorf("2*U1 = %d, want 34", twoU1)
	}
	if p := normalUP(groups, 5, 4, 3); !near(p, 0.11134688653314041, 1e-12) {
		t.Errorf("SciPy example, normal approximation: p %v, want 0.11134688653314041", p)
	}

	// Samples wholly apart give the smallest p-value there is: 2/C(2n, n),
	// the table of benchstat's benchmath (uTestMinP).
	for n, want := range map[int]float64{1: 1, 2: 1.0 / 3, 3: 0.1, 4: 0.02857142857142857, 5: 0.007936507936507936, 6: 0.0021645021645021645, 9: 4.113533525298231e-05} {
		var a, b []float64
		for i := range n {
			a = append(a, float64(i))
			b = append(b, float64(100+i))
		}
		res, err := mannWhitneyU(a, b)
		if err != nil {
			t.Fatal(err)
		}
		if res.U != 0 || !near(res.P, want, want*1e-12) || !near(minUTestP(n, n), want, want*1e-12) {
			t.Errorf("n=%d apart: %+v, min %v; want U 0, p %v", n, res, minUTestP(n, n), want)
		}
	}

	// ClickHouse's test of its mannWhitneyUTest (tests/queries/0_stateless/
	// 01560_mann_whitney.sql): 20 against 20 values with ties, U 223 (so
	// the smaller is 177), two-sided p from the normal approximation with
	// the tie and continuity corrections 0.5426959774289482.
	left := []float64{310, 195, 530, 155, 530, 245, 385, 450, 465, 545, 170, 180, 125, 180, 230, 75, 430, 480, 495, 295}
	right := []float64{116, 171, 176, 421, 111, 326, 481, 111, 346, 441, 261, 411, 206, 521, 456, 446, 296, 51, 426, 261}
	groups, twoU1 = tieGroups(left, right)
	if twoU1 != 446 {
		t.Errorf("ClickHouse example: 2*U1 = %d, want 446", twoU1)
	}
	if p := normalUP(groups, 20, 20, 177); !near(p, 0.5426959774289482, 1e-12) {
		t.Errorf("ClickHouse example, normal approximation: p %.16f, want 0.5426959774289482", p)
	}
	// Its exact p-value (20 a side, so mannWhitneyU computes it) is close.
	res, err = mannWhitneyU(left, right)
	if err != nil || !res.Exact || res.U != 177 || !near(res.P, 0.5427, 0.01) {
		t.Errorf("ClickHouse example, exact: %+v, %v; want U 177, p about 0.54", res, err)
	}
}

// bruteForceP is the exact two-sided p-value by enumeration: every way of
// choosing which len(x) of the pooled values are the first sample, the
// share whose U is at least as far from the mean as the observed one.
func bruteForceP(x, y []float64) float64 {
	pool := append(append([]float64{}, x...), y...)
	n, n1 := len(pool), len(x)
	twoU := func(inX []bool) int {
		s := 0
		for i := range pool {
			for j := range pool {
				if !inX[i] || inX[j] {
					continue
				}
				switch {
				case pool[i] > pool[j]:
					s += 2
				case pool[i] == pool[j]:
					s++
				}
			}
		}
		return s
	}
	obs := make([]bool, n)
	for i := range n1 {
		obs[i] = true
	}
	mean := n1 * (n - n1) // of 2U
	dObs := abs(twoU(obs) - mean)
	hits, total := 0, 0
	for mask := 0; mask < 1<<n; mask++ {
		if popcount(mask) != n1 {
			continue
		}
		inX := make([]bool, n)
		for i := range n {
			inX[i] = mask&(1<<i) != 0
		}
		total++
		if abs(twoU(inX)-mean) >= dObs {
			hits++
		}
	}
	return float64(hits) / float64(total)
}

func popcount(v int) int {
	n := 0
	for ; v != 0; v &= v - 1 {
		n++
	}
	return n
}

// TestMannWhitneyUExactAgainstEnumeration compares the exact p-value,
// ties included, with an enumeration of every arrangement, for random
// samples of up to 7 a side drawn from few values (so with many ties).
func TestMannWhitneyUExactAgainstEnumeration(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 300 {
		n1, n2 := 1+rng.IntN(7), 1+rng.IntN(7)
		levels := 2 + rng.IntN(6)
		draw := func(n int, shift int) []float64 {
			v := make([]float64, n)
			for i := range v {
				v[i] = float64(rng.IntN(levels) + shift*rng.IntN(2))
			}
			return v
		}
		x, y := draw(n1, 0), draw(n2, 2)
		res, err := mannWhitneyU(x, y)
		if errors.Is(err, errSamplesEqual) {
			if res.P != 1 {
				t.Errorf("all equal: p %v, want 1", res.P)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		want := bruteForceP(x, y)
		if !near(res.P, want, 1e-9) {
			t.Errorf("trial %d: x %v y %v: p %v, enumeration %v", trial, x, y, res.P, want)
		}
	}
}

// TestMannWhitneyULargeSamples checks the normal approximation's range
// against the exact distribution at the boundary where it takes over.
func TestMannWhitneyULargeSamples(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float64, uTestExactLimit)
	y := make([]float64, uTestExactLimit)
	for i := range x {
		x[i] = rng.NormFloat64()
		y[i] = rng.NormFloat64() + 0.5
	}
	exact, err := mannWhitneyU(x, y)
	if err != nil || !exact.Exact {
		t.Fatalf("%+v %v", exact, err)
	}
	groups, _ := tieGroups(x, y)
	approx := normalUP(groups, len(x), len(y), exact.U)
	if !near(exact.P, approx, 0.1*exact.P) {
		t.Errorf("at n=%d: exact p %v, normal approximation %v (more than 10%% apart)", uTestExactLimit, exact.P, approx)
	}
	big, err := mannWhitneyU(append(x, 0), y)
	if err != nil || big.Exact {
		t.Errorf("n=%d: %+v, %v; want the normal approximation", uTestExactLimit+1, big, err)
	}
	if _, err := mannWhitneyU(nil, y); err == nil {
		t.Error("an empty sample gave no error")
	}
}
