package store

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// setWALLimits sets the log lengths of checkpoint.go for one test.
func setWALLimits(t *testing.T, soft, hard int) {
	oldSoft, oldHard := walCheckpointFrames, walHardFrames
	walCheckpointFrames, walHardFrames = soft, hard
	t.Cleanup(func() { walCheckpointFrames, walHardFrames = oldSoft, oldHard })
}

// TestCheckpointsLeaveTheWritePath: Direct's writes never checkpoint the
// log on the commit path while it is shorter than the hard limit: the
// checkpointer does, on its own connection, once the log passes its
// length. Past the hard limit the writer checkpoints itself after its
// commit, and again a step later while the log has not restarted, so the
// log never grows much past that limit. Either way every document written is there after
// the store is closed and opened again.
func TestCheckpointsLeaveTheWritePath(t *testing.T) {
	const docs, hard = 400, 48
	for _, tc := range []struct {
		name       string
		soft, hard int
		background bool // the checkpointer, not the writer, does the work
	}{
		{"background", 32, 1 << 30, true},
		// Checkpoints are retried each step while the log has not
		// restarted: a reader may hold the log back a moment.
		{"hard limit", hard, hard, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setWALLimits(t, tc.soft, tc.hard)
			ctx := context.Background()
			dir := t.TempDir()
			s := openDir(t, dir)
			d := DirectOf(s)
			if d == nil {
				t.Fatal("no direct access to an in-process embedded store")
			}
			if err := ensureCollections(ctx, s.Database("w"), "docs"); err != nil {
				t.Fatal(err)
			}
			w, err := d.writeDB("w")
			if err != nil {
				t.Fatal(err)
			}
			body := strings.Repeat("0123456789abcdef", 512) // 8 KB: a few pages per document
			for i := range docs {
				doc := mustRaw(t, bson.D{{Key: "_id", Value: fmt.Sprint(i)}, {Key: "body", Value: body}})
				if err := d.InsertOne(ctx, "w", "docs", doc); err != nil {
					t.Fatalf("insert %d: %v", i, err)
				}
			}
			r, err := openRawConn("file:"+(&url.URL{Path: w.file}).EscapedPath(), false)
			if err != nil {
				t.Fatal(err)
			}
			pageSize, err := r.queryInt("PRAGMA page_size")
			r.close()
			if err != nil {
				t.Fatal(err)
			}
			// The log's file is as long as the longest log written to it
			// (a log that restarts after a checkpoint is written over).
			st, err := os.Stat(w.file + "-wal")
			if err != nil {
				t.Fatal(err)
			}
			frames := st.Size() / (pageSize + 24)
			k := w.ckpt
			if err := s.Close(ctx); err != nil { // stops the checkpointer once its checkpoint is done
				t.Fatal(err)
			}
			if err := k.lastErr.Load(); err != nil {
				t.Errorf("checkpointer failed: %v", *err)
			}
			if tc.background {
				if n := k.inline.Load(); n != 0 {
					t.Errorf("the writer checkpointed %d times below the hard limit", n)
				}
				if k.background.Load() == 0 {
					t.Errorf("the checkpointer never checkpointed a log of %d frames", frames)
				}
			} else {
				if k.inline.Load() == 0 {
					t.Error("the writer never checkpointed past the hard limit")
				}
				// 8 KB documents, one per commit: a handful of pages each;
				// a checkpoint a reader held back is retried a step later.
				if frames > 4*hard {
					t.Errorf("the log reached %d frames; the hard limit is %d", frames, hard)
				}
			}

			s = openDir(t, dir)
			n, err := s.Database("w").Collection("docs").CountDocuments(ctx, bson.D{{Key: "body", Value: body}})
			if err != nil || n != docs {
				t.Errorf("after a reopen: %d documents, %v; want %d", n, err, docs)
			}
		})
	}
}
