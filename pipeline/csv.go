package pipeline

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// CSVListSeparator joins the values of an All field in one CSV cell.
const CSVListSeparator = " | "

// NewCSVSink returns a Sink that writes items to a CSV file at path, with
// the header _id, run_id, job, url, index, fetched_at, served, then
// columns (normally the names of the extract fields, in order). A field
// without a match is an empty cell; an All field's values are joined with
// CSVListSeparator (" | "), so a value that itself contains " | " cannot be
// told apart; use JSONL or MongoDB output for such data. Fields not in
// columns are left out.
//
// Durability and exactly-once are as for NewJSONLSink: the run writes
// <path>.<runID>.partial, fsynced on every Write; Open with resume drops a
// torn last record (one that does not parse, has the wrong number of
// cells or lacks its final newline) and skips items already there; Commit
// renames the file to path. Resuming with other columns is an error.
func NewCSVSink(path string, columns []string) Sink {
	head := append(slices.Clone(reservedKeys), columns...)
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write(head) // a bytes.Buffer does not fail
	w.Flush()
	return &fileSink{path: path, format: csvFormat{columns: slices.Clone(columns), head: head, headLine: b.Bytes()}}
}

type csvFormat struct {
	columns  []string
	head     []string
	headLine []byte
}

func (c csvFormat) header() []byte { return c.headLine }

func (c csvFormat) encode(buf *bytes.Buffer, it Item) error {
	rec := make([]string, 0, len(c.head))
	rec = append(rec, it.ID, it.RunID, it.Job, it.URL, strconv.Itoa(it.Index),
		it.FetchedAt.UTC().Format(timeFormat), it.Served)
	for _, col := range c.columns {
		v, _ := it.Get(col)
		rec = append(rec, csvCell(v))
	}
	w := csv.NewWriter(buf)
	if err := w.Write(rec); err != nil {
		return err
	}
	w.Flush()
	return w.Error()
}

func csvCell(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []string:
		return strings.Join(v, CSVListSeparator)
	default:
		return fmt.Sprint(v)
	}
}

func (c csvFormat) scan(data []byte) ([]string, int64, error) {
	if len(data) == 0 {
		return nil, 0, nil
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1 // checked below, to tell a torn record from a wrong header
	r.ReuseRecord = true
	var ids []string
	var good int64
	for first := true; ; first = false {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		end := r.InputOffset()
		complete := err == nil && data[end-1] == '\n'
		if first {
			if !complete {
				// A header torn before its newline: start over.
				if bytes.HasPrefix(c.headLine, data) {
					return nil, 0, nil
				}
				return nil, 0, fmt.Errorf("first line is not a csv header")
			}
			if !slices.Equal(rec, c.head) {
				return nil, 0, fmt.Errorf("csv columns %q differ from this job's %q", rec, c.head)
			}
			good = end
			continue
		}
		if !complete || len(rec) != len(c.head) || rec[0] == "" {
			break
		}
		ids = append(ids, rec[0])
		good = end
	}
	return ids, good, nil
}

func (c csvFormat) firstRun(head []byte) string {
	r := csv.NewReader(bytes.NewReader(head))
	r.FieldsPerRecord = -1
	if _, err := r.Read(); err != nil { // the header
		return ""
	}
	rec, err := r.Read()
	if err != nil || len(rec) < 2 || r.InputOffset() > int64(len(head)) || head[r.InputOffset()-1] != '\n' {
		return ""
	}
	return rec[1]
}
