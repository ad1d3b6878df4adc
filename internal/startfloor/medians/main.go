// Command medians prints the median of each command in a hyperfine JSON
// export and its ratio to the one whose command starts with the given
// prefix: hyperfine's own summary uses means, which one slow run skews.
//
//	medians FILE.json '/usr/bin/time'
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

type export struct {
	Results []struct {
		Command string  `json:"command"`
		Median  float64 `json:"median"`
	} `json:"results"`
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: medians FILE.json BASELINE-PREFIX")
		os.Exit(2)
	}
	b, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var e export
	if err := json.Unmarshal(b, &e); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	base := 0.0
	for _, r := range e.Results {
		if strings.HasPrefix(r.Command, os.Args[2]) {
			base = r.Median
		}
	}
	if base == 0 {
		fmt.Fprintf(os.Stderr, "no command starts with %q\n", os.Args[2])
		os.Exit(1)
	}
	fmt.Println("| command | median | ratio |")
	fmt.Println("|---|---|---|")
	for _, r := range e.Results {
		fmt.Printf("| `%s` | %.2f ms | %.2fx |\n", r.Command, r.Median*1000, r.Median/base)
	}
}
