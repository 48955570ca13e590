package cache

import (
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// HTTPDate is a date header stored as a BSON date, so that Compass and
// mongosh compare and sort it as a date (Entry.LastModified). The zero
// HTTPDate is absent from the entry. The header's own text stays in
// the entry's headers, byte for byte.
//
// It decodes the form earlier releases stored as well, the header's text:
// a valid HTTP-date becomes that date, any other text (or null) the zero
// HTTPDate. Any other BSON type is an error.
type HTTPDate struct{ time.Time }

var (
	_ bson.ValueMarshaler   = HTTPDate{}
	_ bson.ValueUnmarshaler = (*HTTPDate)(nil)
)

// httpDateOf parses the field lines of a date header; the zero HTTPDate
// when they are not exactly one valid HTTP-date (RFC 9110 §5.6.7). ref
// resolves the two-digit year of the obsolete rfc850 form.
func httpDateOf(values []string, ref time.Time) HTTPDate {
	t, ok := parseHTTPDateField(values, ref)
	if !ok {
		return HTTPDate{}
	}
	return HTTPDate{t.UTC()}
}

// MarshalBSONValue stores d as a BSON date (millisecond precision, as
// every BSON date; HTTP-dates have whole seconds).
func (d HTTPDate) MarshalBSONValue() (byte, []byte, error) {
	t, b, err := bson.MarshalValue(d.Time)
	return byte(t), b, err
}

// UnmarshalBSONValue reads a BSON date, or the header text earlier
// releases stored.
func (d *HTTPDate) UnmarshalBSONValue(typ byte, data []byte) error {
	rv := bson.RawValue{Type: bson.Type(typ), Value: data}
	switch rv.Type {
	case bson.TypeDateTime:
		d.Time = rv.Time().UTC()
	case bson.TypeString:
		*d = httpDateOf([]string{rv.StringValue()}, time.Now())
	case bson.TypeNull, bson.TypeUndefined:
		*d = HTTPDate{}
	default:
		return fmt.Errorf("%w: a date header stored as %s", ErrCorrupt, rv.Type)
	}
	return nil
}
