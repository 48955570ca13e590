package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// memWatch samples the process's resident set every 100 ms and, at each
// new peak (5% above the last one written), writes a heap profile to
// prefix+".heap.prof" and a line of the Go runtime's memory statistics to
// stderr, so that a profile shows what the heap held near the peak RSS.
// stop ends it and returns the summary of the peak.
func memWatch(prefix string) (stop func() string) {
	done := make(chan struct{})
	finished := make(chan string)
	go func() {
		var peak int64
		var summary string
		start := time.Now()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				finished <- summary
				return
			case <-t.C:
			}
			rss := currentRSS()
			if rss < peak+peak/20 {
				continue
			}
			peak = rss
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			summary = fmt.Sprintf("at %.1fs rss %d MB: heap in use %d MB, heap idle not released %d MB, stacks %d MB, other runtime %d MB, go sys %d MB, outside the go runtime ~%d MB (of which file-backed %d MB)",
				time.Since(start).Seconds(), rss>>10, ms.HeapInuse>>20, (ms.HeapIdle-ms.HeapReleased)>>20, ms.StackSys>>20,
				(ms.MSpanSys+ms.MCacheSys+ms.BuckHashSys+ms.GCSys+ms.OtherSys)>>20, ms.Sys>>20,
				max(rss<<10-int64(ms.Sys-ms.HeapReleased), 0)>>20, fileRSS()>>10)
			fmt.Fprintf(os.Stderr, "\n    peak so far %s\n", summary)
			f, err := os.Create(prefix + ".heap.prof")
			if err != nil {
				continue
			}
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}()
	return func() string {
		close(done)
		return <-finished
	}
}

// currentRSS reads VmRSS of this process in KiB.
func currentRSS() int64 { return procStatusKB("VmRSS") }

// fileRSS is the resident memory of this process that maps files (its
// executable, mostly), in KiB, from /proc/self/smaps_rollup.
func fileRSS() int64 {
	b, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		return -1
	}
	var rss, anon int64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "Rss:":
			rss = n
		case "Anonymous:":
			anon = n
		}
	}
	return rss - anon
}
