package store

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
)

// Command is one command the client sent to the server, as Options.OnCommand
// sees it: enough to count round trips and to tell a lookup by _id from a
// scan, without the driver's event package.
type Command struct {
	// Name is the command's name: find, insert, update, delete, aggregate,
	// count, getMore, …
	Name string
	// Database and Collection are where it runs; Collection is "" for a
	// command on no collection (buildInfo, listCollections, …).
	Database   string
	Collection string
	// Filter is the command's filter (find, count, distinct: the filter;
	// update and delete: the first statement's; aggregate: a leading
	// $match), nil when it has none. FilterKind classifies it.
	Filter     bson.Raw
	FilterKind FilterKind
}

// FilterKind says what a Command's filter selects by. It matters on the
// embedded server, which uses an index only for _id equality and otherwise
// decodes every document of the collection.
type FilterKind int

const (
	// FilterNone is a command without a filter, or with an empty one.
	FilterNone FilterKind = iota
	// FilterID is a filter on _id alone (equality, $in or a range).
	FilterID
	// FilterOther is any other filter.
	FilterOther
)

// String returns "none", "id" or "other".
func (k FilterKind) String() string {
	switch k {
	case FilterID:
		return "id"
	case FilterOther:
		return "other"
	default:
		return "none"
	}
}

// commandOf describes the driver's started event as a Command.
func commandOf(e *event.CommandStartedEvent) Command {
	c := Command{Name: e.CommandName, Database: e.DatabaseName}
	c.Collection, _ = e.Command.Lookup(e.CommandName).StringValueOK()
	if e.CommandName == "getMore" { // {getMore: <cursor id>, collection: …}
		c.Collection, _ = e.Command.Lookup("collection").StringValueOK()
	}
	c.Filter = filterOf(e.CommandName, e.Command)
	if elems, err := c.Filter.Elements(); err == nil && len(elems) > 0 {
		c.FilterKind = FilterOther
		if len(elems) == 1 && elems[0].Key() == "_id" {
			c.FilterKind = FilterID
		}
	}
	return c
}

// filterOf finds the filter of a command document; nil when it has none.
func filterOf(name string, cmd bson.Raw) bson.Raw {
	doc := func(v bson.RawValue) bson.Raw {
		d, _ := v.DocumentOK()
		return d
	}
	switch name {
	case "find", "findAndModify":
		if f := doc(cmd.Lookup("filter")); f != nil {
			return f
		}
		return doc(cmd.Lookup("query"))
	case "count", "distinct":
		return doc(cmd.Lookup("query"))
	case "update", "delete":
		stmts, ok := cmd.Lookup(name + "s").ArrayOK()
		if !ok {
			return nil
		}
		first, err := stmts.IndexErr(0)
		if err != nil {
			return nil
		}
		return doc(doc(first).Lookup("q"))
	case "aggregate":
		stages, ok := cmd.Lookup("pipeline").ArrayOK()
		if !ok {
			return nil
		}
		first, err := stages.IndexErr(0)
		if err != nil {
			return nil
		}
		return doc(doc(first).Lookup("$match"))
	}
	return nil
}

// monitorOf is the driver's monitor calling opts.OnCommand, nil when it is
// not set.
func monitorOf(opts Options) *event.CommandMonitor {
	if opts.OnCommand == nil {
		return nil
	}
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		opts.OnCommand(commandOf(e))
	}}
}
