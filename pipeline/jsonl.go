package pipeline

import (
	"bytes"
	"encoding/json"
)

// NewJSONLSink returns a Sink that writes one JSON object per line to path,
// keys in the same order as MongoDB documents: _id, run_id, job, url, index,
// fetched_at (RFC 3339, UTC), served, then the fields (null when nothing
// matched, an array for All fields).
//
// The file appears at path only on Commit, atomically (rename), and
// replaces the output of an earlier run. Until then the run writes
// <path>.<runID>.partial, flushed and fsynced on every Write. Open with
// resume reads that file back, drops a torn last line and skips items it
// already holds, so the committed file has every item exactly once even
// after a crash and resume. The parent directory is created if needed.
func NewJSONLSink(path string) Sink {
	return &fileSink{path: path, format: jsonlFormat{}}
}

type jsonlFormat struct{}

func (jsonlFormat) header() []byte { return nil }

func (jsonlFormat) encode(buf *bytes.Buffer, it Item) error {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false) // keep <, > and & readable in HTML fields
	buf.WriteByte('{')
	for i, kv := range itemKVs(it) {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := enc.Encode(kv.Key); err != nil {
			return err
		}
		buf.Truncate(buf.Len() - 1) // Encode ends every value with '\n'
		buf.WriteByte(':')
		if err := enc.Encode(kv.Value); err != nil {
			return err
		}
		buf.Truncate(buf.Len() - 1)
	}
	buf.WriteString("}\n")
	return nil
}

func (jsonlFormat) scan(data []byte) ([]string, int64, error) {
	var ids []string
	good := completeLines(data, func(line []byte) bool {
		var rec struct {
			ID string `json:"_id"`
		}
		if json.Unmarshal(line, &rec) != nil || rec.ID == "" {
			return false
		}
		ids = append(ids, rec.ID)
		return true
	})
	return ids, good, nil
}

// itemKVs is the item as ordered key/values, metadata first, the way the
// file sinks write it.
func itemKVs(it Item) []KV {
	kvs := make([]KV, 0, len(reservedKeys)+len(it.Fields))
	kvs = append(kvs,
		KV{"_id", it.ID},
		KV{"run_id", it.RunID},
		KV{"job", it.Job},
		KV{"url", it.URL},
		KV{"index", it.Index},
		KV{"fetched_at", it.FetchedAt.UTC().Format(timeFormat)},
		KV{"served", it.Served},
	)
	return append(kvs, it.Fields...)
}

func (jsonlFormat) firstRun(head []byte) string {
	line, _, ok := bytes.Cut(head, []byte("\n"))
	if !ok {
		return ""
	}
	var rec struct {
		RunID string `json:"run_id"`
	}
	if json.Unmarshal(line, &rec) != nil {
		return ""
	}
	return rec.RunID
}
