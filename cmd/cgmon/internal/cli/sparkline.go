package cli

import (
	"math"
	"strings"
)

// sparkBlocks are the eight heights of a sparkline, lowest first.
var sparkBlocks = []rune("▁▂▃▄▅▆▇█")

// sparkGap stands for a value that was not measured.
const sparkGap = '·'

// maxSparkWidth is the most characters a sparkline has; longer series are
// folded so that each character stands for a span of samples.
const maxSparkWidth = 60

// sparkline draws values as Unicode block characters scaled from 0 to top:
// 0 is the lowest block and top the highest; NaN, a value not measured,
// is a middle dot (not a space, which a Markdown table cell would trim). A series longer than width is cut into width spans of
// nearly equal length, each drawn as its highest value, so that no peak is
// lost. It returns "" for no values; a top of 0 or less draws every value
// as the lowest block.
func sparkline(values []float64, top float64, width int) string {
	if len(values) == 0 || width < 1 {
		return ""
	}
	values = foldMax(values, width)
	var b strings.Builder
	last := len(sparkBlocks) - 1
	for _, v := range values {
		if math.IsNaN(v) {
			b.WriteRune(sparkGap)
			continue
		}
		i := 0
		if top > 0 && v > 0 {
			// Round to the nearest height; anything above 0 shows at
			// least the second block, so that activity is never drawn
			// as nothing.
			i = int(v/top*float64(last) + 0.5)
			i = max(1, min(i, last))
		}
		b.WriteRune(sparkBlocks[i])
	}
	return b.String()
}

// foldMax returns values cut into at most width spans, each replaced by its
// largest value (NaN when it holds only NaN); values itself when it is
// short enough. Span i covers values[i*n/width : (i+1)*n/width].
func foldMax(values []float64, width int) []float64 {
	n := len(values)
	if n <= width {
		return values
	}
	out := make([]float64, width)
	for i := range out {
		lo, hi := i*n/width, (i+1)*n/width
		m := math.NaN()
		for _, v := range values[lo:hi] {
			if !math.IsNaN(v) && !(v <= m) {
				m = v
			}
		}
		out[i] = m
	}
	return out
}
