package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// The commands the query front answers (front.go), with the replies
// FerretDB v1.24.2 gives them (internal/handler/msg_find.go, msg_count.go,
// msg_aggregate.go, msg_getmore.go): the same fields in the same order,
// the same batches (101 documents first unless batchSize says otherwise,
// 250 per getMore), the same cursor rules.

// Options a find or count may carry that do not change its result here
// (FerretDB ignores most of them too).
var frontIgnored = map[string]bool{
	"$db": true, "lsid": true, "$clusterTime": true, "$readPreference": true, "readConcern": true,
	"maxTimeMS": true, "apiVersion": true, "apiStrict": true, "apiDeprecationErrors": true,
	"allowDiskUse": true, "hint": true,
}

// find answers a find command: the reply is {cursor: {firstBatch, id,
// ns}, ok: 1.0}.
func (f *front) find(ctx context.Context, coll *frontCollection, cmd bsoncore.Document) (bsoncore.Document, error) {
	q := frontQuery{coll: coll, plan: &frontPlan{}}
	batch, single := int64(101), false
	var proj *frontProjection
	elems, _ := cmd.Elements()
	for _, e := range elems[1:] {
		v := e.Value()
		var ok bool
		switch key := e.Key(); {
		case key == "filter":
			doc, isDoc := v.DocumentOK()
			ok = isDoc && coll.planFilter(q.plan, doc) == nil
		case key == "sort":
			doc, isDoc := v.DocumentOK()
			ok = isDoc && coll.planSort(q.plan, doc) == nil
		case key == "projection":
			doc, isDoc := v.DocumentOK()
			if ok = isDoc; ok {
				var err error
				proj, err = planProjection(doc)
				ok = err == nil
			}
		case key == "batchSize":
			batch, ok = nonNegative(v)
		case key == "singleBatch":
			single, ok = v.BooleanOK()
		case key == "noCursorTimeout":
			noTimeout, isBool := v.BooleanOK()
			ok = isBool && !noTimeout
		default:
			ok = q.option(key, v)
		}
		if !ok {
			return nil, errFrontUnsupported
		}
	}
	docs, _, err := f.files.run(ctx, q, false)
	if err != nil {
		return nil, err
	}
	if proj != nil {
		for i, d := range docs {
			if docs[i], err = proj.apply(d); err != nil {
				return nil, err
			}
		}
	}
	ns := coll.db + "." + coll.name
	first := docs[:min(int64(len(docs)), batch)]
	var id int64
	if !single && int64(len(first)) == batch {
		id = f.cursors.open(ns, docs[len(first):], batch)
	}
	return cursorReply("firstBatch", first, id, ns), nil
}

// count answers a count command: {n: int32, ok: 1.0}.
func (f *front) count(ctx context.Context, coll *frontCollection, cmd bsoncore.Document) (bsoncore.Document, error) {
	q := frontQuery{coll: coll, plan: &frontPlan{}}
	elems, _ := cmd.Elements()
	for _, e := range elems[1:] {
		v := e.Value()
		var ok bool
		switch key := e.Key(); {
		case key == "query":
			doc, isDoc := v.DocumentOK()
			ok = isDoc && coll.planFilter(q.plan, doc) == nil
		default:
			ok = q.option(key, v)
		}
		if !ok {
			return nil, errFrontUnsupported
		}
	}
	_, n, err := f.files.run(ctx, q, true)
	if err != nil {
		return nil, err
	}
	if n > 1<<31-1 {
		return nil, errFrontUnsupported
	}
	b := bsoncore.NewDocumentBuilder().AppendInt32("n", int32(n)).AppendDouble("ok", 1)
	return b.Build(), nil
}

// aggregate answers two pipelines: the one countDocuments sends,
// [{$match: filter}, {$skip: n}?, {$limit: n}?, {$group: {_id: <number>,
// <name>: {$sum: 1}}}], whose result is one document {_id, <name>: int32}
// (none when nothing matches), and a count by a front field's values,
// [{$match: filter}?, {$group: {_id: "$field", <name>: {$sum: 1}}}].
func (f *front) aggregate(ctx context.Context, coll *frontCollection, cmd bsoncore.Document) (bsoncore.Document, error) {
	q := frontQuery{coll: coll, plan: &frontPlan{}}
	var group bsoncore.Document
	batch := int64(101)
	elems, _ := cmd.Elements()
	for _, e := range elems[1:] {
		v := e.Value()
		var ok bool
		switch key := e.Key(); {
		case key == "pipeline":
			arr, isArr := v.ArrayOK()
			ok = isArr
			if ok {
				group, ok = planPipeline(&q, arr)
			}
		case key == "cursor":
			doc, isDoc := v.DocumentOK()
			ok = isDoc && len(doc) == 5
			if n, isBatch := onlyBatchSize(doc); isDoc && isBatch {
				batch, ok = n, true
			}
		default:
			ok = optionIgnored(key, v)
		}
		if !ok {
			return nil, errFrontUnsupported
		}
	}
	if group == nil {
		return nil, errFrontUnsupported
	}
	ns := coll.db + "." + coll.name
	if q.group == nil && batch == 0 {
		return nil, errFrontUnsupported // an empty first batch and a cursor: FerretDB's
	}
	if q.group != nil {
		docs, _, err := f.files.run(ctx, q, false)
		if err != nil {
			return nil, err
		}
		first := docs[:min(int64(len(docs)), batch)]
		var id int64
		if int64(len(first)) == batch {
			id = f.cursors.open(ns, docs[len(first):], batch)
		}
		return cursorReply("firstBatch", first, id, ns), nil
	}
	_, n, err := f.files.run(ctx, q, true)
	if err != nil {
		return nil, err
	}
	if n > 1<<31-1 {
		return nil, errFrontUnsupported
	}
	var docs [][]byte
	if n > 0 {
		elems, _ := group.Elements()
		b := bsoncore.NewDocumentBuilder().AppendValue("_id", elems[0].Value()).AppendInt32(elems[1].Key(), int32(n))
		docs = append(docs, b.Build())
	}
	return cursorReply("firstBatch", docs, 0, ns), nil
}

// option takes an option find and count share (skip, limit) or one both
// may ignore; false: the command is forwarded.
func (q *frontQuery) option(key string, v bsoncore.Value) bool {
	var ok bool
	switch key {
	case "skip":
		q.skip, ok = nonNegative(v)
	case "limit":
		q.limit, ok = nonNegative(v)
	default:
		ok = optionIgnored(key, v)
	}
	return ok
}

// optionIgnored reports whether an option changes nothing in the answer:
// a string comment, or one of frontIgnored.
func optionIgnored(key string, v bsoncore.Value) bool {
	if key == "comment" {
		_, ok := v.StringValueOK()
		return ok
	}
	return frontIgnored[key]
}

// onlyBatchSize reads a cursor document {batchSize: n ≥ 0}.
func onlyBatchSize(doc bsoncore.Document) (int64, bool) {
	elems, err := doc.Elements()
	if err != nil || len(elems) != 1 || elems[0].Key() != "batchSize" {
		return 0, false
	}
	return nonNegative(elems[0].Value())
}

// planPipeline plans q from a count pipeline and returns its $group
// document (q.group set for a count by a field), or nil when the
// pipeline is another.
func planPipeline(q *frontQuery, arr bsoncore.Array) (bsoncore.Document, bool) {
	stages, err := arr.Values()
	if err != nil || len(stages) < 1 {
		return nil, false
	}
	for i, s := range stages {
		doc, ok := s.DocumentOK()
		if !ok {
			return nil, false
		}
		elems, err := doc.Elements()
		if err != nil || len(elems) != 1 {
			return nil, false
		}
		name, v := elems[0].Key(), elems[0].Value()
		last := i == len(stages)-1
		switch {
		case name == "$match" && i == 0 && !last:
			filter, ok := v.DocumentOK()
			if !ok || q.coll.planFilter(q.plan, filter) != nil {
				return nil, false
			}
		case name == "$skip" && !last && q.limit == 0 && q.skip == 0:
			if q.skip, ok = nonNegative(v); !ok {
				return nil, false
			}
		case name == "$limit" && !last && q.limit == 0:
			if q.limit, ok = nonNegative(v); !ok || q.limit == 0 {
				return nil, false
			}
		case name == "$group" && last:
			group, ok := v.DocumentOK()
			if !ok || !q.planGroup(group) {
				return nil, false
			}
			return group, true
		default:
			return nil, false
		}
	}
	return nil, false
}

// planGroup reports {_id: <number> or "$field", <name>: {$sum: 1}} (the
// field a front field, and no $skip or $limit before), and sets q.group
// for a field.
func (q *frontQuery) planGroup(group bsoncore.Document) bool {
	elems, err := group.Elements()
	if err != nil || len(elems) != 2 || elems[0].Key() != "_id" {
		return false
	}
	name := elems[1].Key()
	if name == "" || name[0] == '$' || name == "_id" || strings.ContainsRune(name, '.') {
		return false
	}
	sum, ok := elems[1].Value().DocumentOK()
	if !ok {
		return false
	}
	se, err := sum.Elements()
	if err != nil || len(se) != 1 || se[0].Key() != "$sum" {
		return false
	}
	if one, ok := se[0].Value().Int32OK(); !ok || one != 1 {
		return false
	}
	id := elems[0].Value()
	if _, ok := wholeNumber(id); ok {
		return true
	}
	path, ok := id.StringValueOK()
	if !ok || !strings.HasPrefix(path, "$") || q.skip != 0 || q.limit != 0 {
		return false
	}
	f, ok := q.coll.field(path[1:])
	if !ok {
		return false
	}
	q.group = &frontGroup{field: f, count: name}
	return true
}

// getMore answers a getMore of a front cursor: {cursor: {nextBatch, id,
// ns}, ok: 1.0}, or FerretDB's CursorNotFound when it expired.
func (f *front) getMore(db string, cmd bsoncore.Document) (bsoncore.Document, error) {
	id, ok := cmd.Lookup("getMore").Int64OK()
	if !ok || !isFrontCursor(id) {
		return nil, errFrontUnsupported
	}
	coll, ok := cmd.Lookup("collection").StringValueOK()
	if !ok {
		return nil, errFrontUnsupported
	}
	batch := int64(250)
	if v, err := cmd.LookupErr("batchSize"); err == nil {
		n, ok := nonNegative(v)
		if !ok {
			return nil, errFrontUnsupported
		}
		if n > 0 {
			batch = n
		}
	}
	docs, next, err := f.cursors.next(id, db+"."+coll, batch)
	if err != nil {
		return errorReply(43, "CursorNotFound", err.Error()), nil
	}
	return cursorReply("nextBatch", docs, next, db+"."+coll), nil
}

// killCursors answers a killCursors of front cursors only.
func (f *front) killCursors(db string, cmd bsoncore.Document) (bsoncore.Document, error) {
	arr, ok := cmd.Lookup("cursors").ArrayOK()
	if !ok {
		return nil, errFrontUnsupported
	}
	vals, err := arr.Values()
	if err != nil || len(vals) == 0 {
		return nil, errFrontUnsupported
	}
	var ids []int64
	for _, v := range vals {
		id, ok := v.Int64OK()
		if !ok || !isFrontCursor(id) {
			return nil, errFrontUnsupported
		}
		ids = append(ids, id)
	}
	killed, notFound := f.cursors.kill(ids)
	b := bsoncore.NewDocumentBuilder().
		AppendArray("cursorsKilled", int64Array(killed)).
		AppendArray("cursorsNotFound", int64Array(notFound)).
		AppendArray("cursorsAlive", int64Array(nil)).
		AppendArray("cursorsUnknown", int64Array(nil)).
		AppendDouble("ok", 1)
	return b.Build(), nil
}

func int64Array(ids []int64) bsoncore.Array {
	b := bsoncore.NewArrayBuilder()
	for _, id := range ids {
		b.AppendInt64(id)
	}
	return b.Build()
}

// cursorReply is {cursor: {<batchName>: docs, id, ns}, ok: 1.0}.
func cursorReply(batchName string, docs [][]byte, id int64, ns string) bsoncore.Document {
	idx, b := bsoncore.AppendDocumentStart(nil)
	cidx, b := bsoncore.AppendDocumentElementStart(b, "cursor")
	aidx, b := bsoncore.AppendArrayElementStart(b, batchName)
	for i, d := range docs {
		b = bsoncore.AppendDocumentElement(b, strconv.Itoa(i), d)
	}
	b, _ = bsoncore.AppendArrayEnd(b, aidx)
	b = bsoncore.AppendInt64Element(b, "id", id)
	b = bsoncore.AppendStringElement(b, "ns", ns)
	b, _ = bsoncore.AppendDocumentEnd(b, cidx)
	b = bsoncore.AppendDoubleElement(b, "ok", 1)
	b, _ = bsoncore.AppendDocumentEnd(b, idx)
	return b
}

// errorReply is a command error as FerretDB sends one.
func errorReply(code int32, name, msg string) bsoncore.Document {
	return bsoncore.NewDocumentBuilder().AppendDouble("ok", 0).AppendString("errmsg", msg).
		AppendInt32("code", code).AppendString("codeName", name).Build()
}

// nonNegative reads a whole number ≥ 0 (int32, int64 or whole double).
func nonNegative(v bsoncore.Value) (int64, bool) {
	n, ok := wholeNumber(v)
	return n, ok && n >= 0
}

// Front cursor ids are at least frontCursorBase; FerretDB's are below
// 2^32 (a uint32 counter), so a getMore or killCursors says whose it is.
const frontCursorBase = 1 << 52

func isFrontCursor(id int64) bool { return id >= frontCursorBase }

// frontCursorIdle is how long a cursor nobody reads is kept (MongoDB's
// default cursor timeout); frontMaxCursors and frontMaxCursorBytes bound
// how many are kept and the documents they hold: beyond, the least
// recently read are dropped (their getMore answers CursorNotFound).
const (
	frontCursorIdle     = 10 * time.Minute
	frontMaxCursors     = 1000
	frontMaxCursorBytes = 256 << 20
)

// frontCursors are the open cursors of answered finds: the documents not
// sent yet. Safe for concurrent use.
type frontCursors struct {
	mu    sync.Mutex
	m     map[int64]*frontCursor
	last  int64
	bytes int // held by every cursor
}

type frontCursor struct {
	ns   string
	docs [][]byte
	size int
	used time.Time
}

// open keeps docs for getMore and returns the cursor's id.
func (cs *frontCursors) open(ns string, docs [][]byte, _ int64) int64 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	now := time.Now()
	size := 0
	for _, d := range docs {
		size += len(d)
	}
	for id, c := range cs.m {
		if now.Sub(c.used) > frontCursorIdle {
			cs.drop(id)
		}
	}
	for len(cs.m) > 0 && (len(cs.m) >= frontMaxCursors || cs.bytes+size > frontMaxCursorBytes) {
		var oldest int64
		for id, c := range cs.m {
			if oldest == 0 || c.used.Before(cs.m[oldest].used) {
				oldest = id
			}
		}
		cs.drop(oldest)
	}
	if cs.last == 0 {
		cs.last = frontCursorBase + rand.Int64N(1<<40)
	}
	cs.last++
	cs.m[cs.last] = &frontCursor{ns: ns, docs: docs, size: size, used: now}
	cs.bytes += size
	return cs.last
}

// drop forgets cursor id; cs.mu is held.
func (cs *frontCursors) drop(id int64) {
	if c := cs.m[id]; c != nil {
		cs.bytes -= c.size
		delete(cs.m, id)
	}
}

// next returns up to n documents of cursor id and the id to give the
// client (0 when the batch is short: the cursor is closed).
func (cs *frontCursors) next(id int64, ns string, n int64) ([][]byte, int64, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.m[id]
	if c == nil {
		return nil, 0, fmt.Errorf("cursor id %d not found", id)
	}
	if c.ns != ns {
		return nil, 0, fmt.Errorf("cursor id %d not found", id)
	}
	k := min(int64(len(c.docs)), n)
	batch := c.docs[:k]
	c.docs = c.docs[k:]
	for _, d := range batch {
		c.size -= len(d)
		cs.bytes -= len(d)
	}
	c.used = time.Now()
	if k < n {
		cs.drop(id)
		return batch, 0, nil
	}
	return batch, id, nil
}

// kill forgets the cursors ids.
func (cs *frontCursors) kill(ids []int64) (killed, notFound []int64) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, id := range ids {
		if cs.m[id] != nil {
			cs.drop(id)
			killed = append(killed, id)
		} else {
			notFound = append(notFound, id)
		}
	}
	return killed, notFound
}
