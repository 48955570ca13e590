package commands

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// HardStopWait is how long a command may take to stop after the second
// Ctrl-C before the process exits anyway with status 130. A run it leaves
// behind is marked interrupted by the next `run` or `resume` (its process
// is gone) and its claimed URLs return through their leases.
const HardStopWait = 800 * time.Millisecond

type stopNowKey struct{}

// SignalContext makes SIGINT and SIGTERM a two-stage stop. The first
// cancels the returned context: commands stop cleanly (a run finishes the
// pages in flight and says how many). The second closes the channel that
// stopNow returns (a run cancels its fetches at once), and if the process
// is still there HardStopWait later, or at a third signal, it calls
// exit(130). The returned function releases the signals; call it before
// exiting. main passes os.Exit as exit.
func SignalContext(parent context.Context, exit func(int)) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	now := make(chan struct{})
	ctx = context.WithValue(ctx, stopNowKey{}, (<-chan struct{})(now))
	sig := make(chan os.Signal, 3)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sig:
			cancel()
		case <-done:
			return
		}
		select {
		case <-sig:
			close(now)
		case <-done:
			return
		}
		t := time.NewTimer(HardStopWait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-sig:
		case <-done:
			return
		}
		fmt.Fprintln(os.Stderr, "crawlcache: stopped now; the run is marked interrupted by the next `run` or `resume`, which continues it")
		exit(exitInterrupted)
	}()
	return ctx, func() {
		signal.Stop(sig)
		select {
		case <-done:
		default:
			close(done)
		}
		cancel()
	}
}

// stopNow returns the channel closed by the second Ctrl-C (nil, never
// closed, outside SignalContext).
func stopNow(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(stopNowKey{}).(<-chan struct{})
	return ch
}
