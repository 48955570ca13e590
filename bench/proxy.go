package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
	"crawlcache/commands"
)

// proxyChild runs `crawlcache proxy` with args in this (child) process, so
// that its peak RSS is the proxy's own: the embedded store included, the
// bench's origin and clients not.
func proxyChild(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return commands.Run(ctx, append([]string{"crawlcache"}, args...))
}

// proxyOrigin serves /<size>/<name>: <size> bytes with Content-Length,
// cacheable, generated without holding the body.
func proxyOrigin() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		size, _ := strconv.ParseInt(strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")[0], 10, 64)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = io.Copy(w, io.LimitReader(pattern{}, size))
	}))
}

type pattern struct{}

func (pattern) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte('a' + i%26)
	}
	return len(p), nil
}

// proxyRun is one proxy child serving a batch of concurrent downloads.
type proxyRun struct {
	peakMB   float64
	seconds  float64
	stored   int64
	complete int // downloads that got every byte
}

// runProxyLoad starts a proxy child in front of origin and has clients
// download paths[i] through it at once; it returns the child's peak RSS
// and how many responses the proxy stored.
func runProxyLoad(ctx context.Context, origin string, paths []string, size int64, extra ...string) (proxyRun, error) {
	var res proxyRun
	dir, err := os.MkdirTemp("", "crawlcache-bench-proxy-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	addr := ln.Addr().String()
	ln.Close()
	args := append([]string{"--log-level", "warn", "proxy", "--listen", addr, "--upstream", origin, "--data-dir", dir}, extra...)
	cmd, err := spawn(childSpec{Mode: "proxy", Args: args})
	if err != nil {
		return res, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := waitListening(out); err != nil {
		return res, err
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()

	start := time.Now()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: len(paths), DisableCompression: true}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for _, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := download(ctx, client, "http://"+addr+p)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && firstErr == nil:
				firstErr = err
			case err == nil && n == size:
				res.complete++
			}
		}()
	}
	wg.Wait()
	res.seconds = time.Since(start).Seconds()
	res.peakMB = float64(procPeakRSS(cmd.Process.Pid)) / 1024
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	s, err := openStore(ctx, dir)
	if err != nil {
		return res, err
	}
	defer s.Close(context.Background())
	res.stored, err = s.Collection(cache.DefaultDatabase, cache.ResponsesCollection).Count(ctx, bson.D{})
	return res, err
}

// waitListening reads the proxy's banner up to the line that says it
// listens.
func waitListening(out io.Reader) error {
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "crawlcache proxy on ") {
			return nil
		}
	}
	return errors.New("proxy child exited before listening")
}

func download(ctx context.Context, client *http.Client, url string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.Copy(io.Discard, resp.Body)
}

// procPeakRSS reads VmHWM of process pid in KiB (-1 if unknown).
func procPeakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return -1
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// proxyScenarios measure the proxy's peak RSS under concurrent large
// downloads: one body too large to store, different cacheable bodies, and
// one very large body.
func proxyScenarios(ctx context.Context, cfg config) ([]row, error) {
	o := proxyOrigin()
	defer o.Close()
	const budgetMB = 256
	var rows []row

	big := cfg.proxyLarge
	paths := make([]string, cfg.proxyClients)
	for i := range paths {
		paths[i] = fmt.Sprintf("/%d/large", big)
	}
	r, err := runProxyLoad(ctx, o.URL, paths, big)
	if err != nil {
		return nil, fmt.Errorf("proxy, large bodies: %w", err)
	}
	rows = append(rows, row{
		fmt.Sprintf("proxy peak RSS, %d clients downloading one %s body at once (too large to store)", cfg.proxyClients, byteSize(big)),
		fmt.Sprintf("%.0f MB (%d/%d complete in %.0fs, %d stored)", r.peakMB, r.complete, cfg.proxyClients, r.seconds, r.stored),
		"", "", "< 150 MB, not stored", yesNo(r.peakMB < 150 && r.stored == 0 && r.complete == cfg.proxyClients),
	})

	const each = 10 << 20
	for i := range paths {
		paths[i] = fmt.Sprintf("/%d/body-%d", each, i)
	}
	r, err = runProxyLoad(ctx, o.URL, paths, each, "--max-buffer", fmt.Sprintf("%dMiB", budgetMB))
	if err != nil {
		return nil, fmt.Errorf("proxy, cacheable bodies: %w", err)
	}
	rows = append(rows, row{
		fmt.Sprintf("proxy peak RSS, %d clients downloading different %s cacheable bodies at once (--max-buffer %d MiB)", cfg.proxyClients, byteSize(each), budgetMB),
		fmt.Sprintf("%.0f MB (%d/%d complete in %.0fs, %d stored)", r.peakMB, r.complete, cfg.proxyClients, r.seconds, r.stored),
		"", "", fmt.Sprintf("< %d MB (budget + 100 MB)", budgetMB+100), yesNo(r.peakMB < budgetMB+100 && r.complete == cfg.proxyClients),
	})

	if cfg.proxyHuge > 0 {
		r, err = runProxyLoad(ctx, o.URL, []string{fmt.Sprintf("/%d/huge", cfg.proxyHuge)}, cfg.proxyHuge)
		if err != nil {
			return nil, fmt.Errorf("proxy, huge body: %w", err)
		}
		rows = append(rows, row{
			fmt.Sprintf("proxy peak RSS, one %s body", byteSize(cfg.proxyHuge)),
			fmt.Sprintf("%.0f MB (%.0fs, %d stored)", r.peakMB, r.seconds, r.stored),
			"", "", "bounded, not stored", yesNo(r.peakMB < 150 && r.stored == 0 && r.complete == 1),
		})
	}
	return rows, nil
}
