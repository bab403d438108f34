// Command gencorpus writes the benchmark corpus as an mboxrd file.
//
//	go run ./bench/cmd/gencorpus -n 10000 -seed 1 > corpus.mbox
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"

	"decimail/bench"
)

func main() {
	n := flag.Int("n", 10000, "number of messages")
	seed := flag.Uint64("seed", 1, "random seed (same seed, same corpus)")
	out := flag.String("o", "-", "output file (- = stdout)")
	flag.Parse()
	f := os.Stdout
	if *out != "-" {
		var err error
		if f, err = os.Create(*out); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	w := bufio.NewWriterSize(f, 1<<20)
	err := bench.WriteMbox(w, bench.Corpus(*n, *seed))
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
