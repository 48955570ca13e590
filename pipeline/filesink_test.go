package pipeline

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

type fileSinkCase struct {
	name    string
	newSink func(path string) Sink
	ids     func(t *testing.T, data []byte) []string // IDs of the records in a final file
}

var fileSinkCases = []fileSinkCase{
	{
		name:    "jsonl",
		newSink: func(path string) Sink { return NewJSONLSink(path) },
		ids: func(t *testing.T, data []byte) []string {
			t.Helper()
			var ids []string
			for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("line %d is not JSON: %v: %q", i+1, err, line)
				}
				ids = append(ids, rec["_id"].(string))
			}
			return ids
		},
	},
	{
		name:    "csv",
		newSink: func(path string) Sink { return NewCSVSink(path, []string{"title", "tags", "price"}) },
		ids: func(t *testing.T, data []byte) []string {
			t.Helper()
			recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
			if err != nil {
				t.Fatalf("final csv does not parse: %v", err)
			}
			var ids []string
			for _, rec := range recs[1:] {
				ids = append(ids, rec[0])
			}
			return ids
		},
	},
}

// crashModes damage the partial file the way a crash can.
var crashModes = []struct {
	name   string
	damage func(t *testing.T, partial string)
}{
	{"clean stop", func(*testing.T, string) {}},
	{"torn last line", func(t *testing.T, partial string) {
		t.Helper()
		data := mustRead(t, partial)
		// Append half of a record, as a write cut by the crash would.
		last := data[bytes.LastIndexByte(data[:len(data)-1], '\n')+1:]
		appendFile(t, partial, last[:len(last)/2])
	}},
	{"torn inside a quoted multi-line value", func(t *testing.T, partial string) {
		t.Helper()
		data := mustRead(t, partial)
		last := data[bytes.LastIndexByte(data[:len(data)-1], '\n')+1:]
		// Cut just after the embedded newline of "…\nsecond line".
		j := bytes.Index(last, []byte(`second line`))
		if j < 0 {
			t.Fatalf("fixture lost its multi-line value")
		}
		appendFile(t, partial, last[:j])
	}},
	{"only the final newline missing", func(t *testing.T, partial string) {
		t.Helper()
		data := mustRead(t, partial)
		if err := os.Truncate(partial, int64(len(data)-1)); err != nil {
			t.Fatal(err)
		}
	}},
	{"last line cut in the middle", func(t *testing.T, partial string) {
		t.Helper()
		data := mustRead(t, partial)
		// Cut the last record itself: its page was never acknowledged.
		if err := os.Truncate(partial, int64(len(data)-7)); err != nil {
			t.Fatal(err)
		}
	}},
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func page(run string, n, items int) []Item {
	return testItems(run, fmt.Sprintf("https://example.org/p%d", n), items)
}

func TestFileSinkExactlyOnceAcrossCrash(t *testing.T) {
	ctx := context.Background()
	for _, fc := range fileSinkCases {
		for _, cm := range crashModes {
			t.Run(fc.name+"/"+cm.name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "out", "items."+fc.name)
				sink := fc.newSink(path)
				if err := sink.Open(ctx, "run1", false); err != nil {
					t.Fatalf("Open: %v", err)
				}
				for p := range 3 {
					if err := sink.Write(ctx, page("run1", p, 2)); err != nil {
						t.Fatalf("Write page %d: %v", p, err)
					}
				}
				// Crash: the sink is dropped without Commit or Close.
				if _, err := os.Stat(path); !os.IsNotExist(err) {
					t.Fatalf("final file before Commit: got %v, want it absent", err)
				}
				cm.damage(t, partialPath(path, "run1"))

				sink = fc.newSink(path)
				if err := sink.Open(ctx, "run1", true); err != nil {
					t.Fatalf("Open resume: %v", err)
				}
				// Pages 1..4 come again (1 and 2 overlap, 2 maybe torn).
				for p := 1; p < 5; p++ {
					if err := sink.Write(ctx, page("run1", p, 2)); err != nil {
						t.Fatalf("Write page %d after resume: %v", p, err)
					}
				}
				if err := sink.Commit(ctx); err != nil {
					t.Fatalf("Commit: %v", err)
				}
				if err := sink.Close(); err != nil {
					t.Fatalf("Close after Commit: %v", err)
				}

				got := fc.ids(t, mustRead(t, path))
				var want []string
				for p := range 5 {
					for _, it := range page("run1", p, 2) {
						want = append(want, it.ID)
					}
				}
				if !sameSet(got, want) {
					t.Errorf("ids in final file:\n got %v\nwant each of %v exactly once", got, want)
				}
				if _, err := os.Stat(partialPath(path, "run1")); !os.IsNotExist(err) {
					t.Errorf("partial after Commit: got %v, want it renamed away", err)
				}
			})
		}
	}
}

// sameSet reports whether got holds every want exactly once and nothing else.
func sameSet(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	count := map[string]int{}
	for _, id := range want {
		count[id]++
	}
	for _, id := range got {
		if count[id] != 1 {
			return false
		}
		count[id]++
	}
	return true
}

func TestFileSinkLifecycle(t *testing.T) {
	ctx := context.Background()
	for _, fc := range fileSinkCases {
		t.Run(fc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "items."+fc.name)
			if err := os.WriteFile(path, []byte("old output\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			// A stale partial of the same run is discarded without resume.
			if err := os.WriteFile(partialPath(path, "run2"), []byte("garbage\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			sink := fc.newSink(path)
			if err := sink.Write(ctx, page("run2", 0, 1)); !errors.Is(err, ErrNotOpen) {
				t.Errorf("Write before Open: got %v, want ErrNotOpen", err)
			}
			if err := sink.Open(ctx, "../x", false); err == nil {
				t.Errorf("Open with a path in the run id: got nil error")
			}
			if err := sink.Open(ctx, "run2", false); err != nil {
				t.Fatalf("Open: %v", err)
			}
			items := page("run2", 0, 2)
			// Duplicates within one run and one batch are written once.
			if err := sink.Write(ctx, append(items, items[0])); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if err := sink.Write(ctx, items); err != nil {
				t.Fatalf("Write again: %v", err)
			}
			if got := string(mustRead(t, path)); got != "old output\n" {
				t.Errorf("final file before Commit: got %q, want the previous run's", got)
			}
			if err := sink.Commit(ctx); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			if err := sink.Write(ctx, items); !errors.Is(err, ErrNotOpen) {
				t.Errorf("Write after Commit: got %v, want ErrNotOpen", err)
			}
			got := fc.ids(t, mustRead(t, path))
			if want := []string{items[0].ID, items[1].ID}; !reflect.DeepEqual(got, want) {
				t.Errorf("ids: got %v, want %v", got, want)
			}
		})
	}
}

func TestJSONLFormat(t *testing.T) {
	it := testItems("run1", "https://example.org/a?b=1&c=<2>", 1)[0]
	var buf bytes.Buffer
	if err := (jsonlFormat{}).encode(&buf, it); err != nil {
		t.Fatal(err)
	}
	want := `{"_id":"` + it.ID + `","run_id":"run1","job":"books","url":"https://example.org/a?b=1&c=<2>","index":0,` +
		`"fetched_at":"2026-11-27T04:30:00Z","served":"hit","title":"Title 0, \"quoted\"\nsecond line","tags":["a","b"],"price":null}` + "\n"
	if got := buf.String(); got != want {
		t.Errorf("jsonl line:\n got %s\nwant %s", got, want)
	}
}

func TestCSVFormat(t *testing.T) {
	it := testItems("run1", "https://example.org/a", 1)[0]
	f := NewCSVSink("x.csv", []string{"title", "tags", "price", "absent"}).(*fileSink).format
	var buf bytes.Buffer
	buf.Write(f.header())
	if err := f.encode(&buf, it); err != nil {
		t.Fatal(err)
	}
	want := "_id,run_id,job,url,index,fetched_at,served,title,tags,price,absent\n" +
		it.ID + `,run1,books,https://example.org/a,0,2026-11-27T04:30:00Z,hit,"Title 0, ""quoted""` + "\nsecond line\",a | b,,\n"
	if got := buf.String(); got != want {
		t.Errorf("csv:\n got %q\nwant %q", got, want)
	}
}

func TestCSVResumeWithOtherColumns(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "items.csv")
	sink := NewCSVSink(path, []string{"title"})
	if err := sink.Open(ctx, "run1", false); err != nil {
		t.Fatal(err)
	}
	if err := sink.Write(ctx, page("run1", 0, 1)); err != nil {
		t.Fatal(err)
	}
	sink = NewCSVSink(path, []string{"title", "price"})
	err := sink.Open(ctx, "run1", true)
	if err == nil || !strings.Contains(err.Error(), "differ") {
		t.Errorf("resume with other columns: got %v, want an error about the columns", err)
	}
}

func TestCSVTornHeader(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "items.csv")
	if err := os.WriteFile(partialPath(path, "run1"), []byte("_id,run_id,jo"), 0o644); err != nil {
		t.Fatal(err)
	}
	sink := NewCSVSink(path, nil)
	if err := sink.Open(ctx, "run1", true); err != nil {
		t.Fatalf("Open resume over a torn header: %v", err)
	}
	if err := sink.Write(ctx, page("run1", 0, 1)); err != nil {
		t.Fatal(err)
	}
	if err := sink.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Count(string(mustRead(t, path)), "\n"), 2; got != want {
		t.Errorf("lines: got %d, want %d (header and one item)", got, want)
	}
}

// TestFileSinkNeverReplacesCommittedOutput: once Commit renamed run r1's
// file into place, neither Open with resume (a resume of r1 after a crash
// before the commit was recorded) nor Finish may truncate or replace it.
func TestFileSinkNeverReplacesCommittedOutput(t *testing.T) {
	ctx := context.Background()
	for _, fc := range fileSinkCases {
		t.Run(fc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out")
			s := fc.newSink(path)
			if err := s.Open(ctx, "r1", false); err != nil {
				t.Fatal(err)
			}
			want := append(page("r1", 1, 3), page("r1", 2, 2)...)
			if err := s.Write(ctx, want); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			committed := mustRead(t, path)

			again := fc.newSink(path)
			if err := again.Open(ctx, "r1", true); err != nil {
				t.Fatalf("open with resume after the commit: %v", err)
			}
			if err := again.Write(ctx, page("r1", 1, 3)); err != nil {
				t.Fatalf("write after the commit: %v", err)
			}
			if err := again.Commit(ctx); err != nil {
				t.Fatalf("commit again: %v", err)
			}
			if err := again.(Finisher).Finish(ctx, "r1"); err != nil {
				t.Fatalf("finish a commit already done: %v", err)
			}
			if got := mustRead(t, path); !bytes.Equal(got, committed) {
				t.Errorf("committed output changed:\n got %q\nwant %q", got, committed)
			}
			if _, err := os.Stat(partialPath(path, "r1")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a partial file came back after the commit: %v", err)
			}

			// Another run's resume is not fooled by r1's file.
			other := fc.newSink(path)
			if err := other.Open(ctx, "r2", true); err != nil {
				t.Fatal(err)
			}
			_ = other.Close()
			if _, err := os.Stat(partialPath(path, "r2")); err != nil {
				t.Errorf("run r2's resume did not open its own partial file: %v", err)
			}
		})
	}
}

func TestFileSinkFinish(t *testing.T) {
	ctx := context.Background()
	for _, fc := range fileSinkCases {
		t.Run(fc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out")
			s := fc.newSink(path)
			if err := s.Open(ctx, "r1", false); err != nil {
				t.Fatal(err)
			}
			want := page("r1", 1, 4)
			if err := s.Write(ctx, want); err != nil {
				t.Fatal(err)
			}
			_ = s.Close() // the process stopped before its Commit

			f := fc.newSink(path).(Finisher)
			if err := f.Finish(ctx, "r1"); err != nil {
				t.Fatalf("finish: %v", err)
			}
			var ids []string
			for _, it := range want {
				ids = append(ids, it.ID)
			}
			if got := fc.ids(t, mustRead(t, path)); !sameSet(got, ids) {
				t.Errorf("finished output holds %v, want %v", got, ids)
			}
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := f.Finish(ctx, "r1"); !errors.Is(err, ErrOutputMissing) {
				t.Errorf("finish with both files gone: %v, want ErrOutputMissing", err)
			}
		})
	}
}
