package cache

import (
	"go.mongodb.org/mongo-driver/v2/bson"
)

// decodePage decodes raw into p exactly as bson.Unmarshal does, walking
// the document once instead of through reflection: JudgeHead decodes a
// Page for every page of a re-crawl, and Unmarshal was about 3% of a warm
// replay's CPU. A field of a type the cache does not write (a null, a
// status stored as a double, a date as text...) or a document that does
// not parse leaves the whole decoding to bson.Unmarshal, so the result is
// Unmarshal's in every case (TestDecodePageAsUnmarshal).
func decodePage(raw bson.Raw, p *Page) error {
	*p = Page{}
	if decodePageFast(raw, p) {
		return nil
	}
	*p = Page{}
	return bson.Unmarshal(raw, p)
}

// decodePageFast decodes raw into p when every field it knows has the type
// the cache writes; false otherwise (p is then partly set).
func decodePageFast(raw bson.Raw, p *Page) bool {
	elems, err := raw.Elements()
	if err != nil {
		return false
	}
	for _, e := range elems {
		v := e.Value()
		var ok bool
		switch e.Key() {
		case "_id":
			p.ID, ok = v.StringValueOK()
		case "url":
			p.URL, ok = v.StringValueOK()
		case "status":
			var n int64
			n, ok = intValue(v)
			p.Status = int(n)
		case "validated_at":
			ok = v.Type == bson.TypeDateTime
			if ok {
				p.ValidatedAt = v.Time().UTC()
			}
		case "body_sha256":
			p.BodySHA256, ok = v.StringValueOK()
		case "interval_seconds":
			p.IntervalSeconds, ok = intValue(v)
		case "size":
			p.Size, ok = intValue(v)
		case "etag":
			p.ETag, ok = v.StringValueOK()
		case "last_modified":
			ok = v.Type == bson.TypeDateTime && p.LastModified.UnmarshalBSONValue(byte(v.Type), v.Value) == nil
		default:
			ok = true // a field Page does not have: Unmarshal skips it too
		}
		if !ok {
			return false
		}
	}
	return true
}

// intValue is v as an integer when it is a BSON int32 or int64, the types
// an int field is written as and read from without conversion.
func intValue(v bson.RawValue) (int64, bool) {
	switch v.Type {
	case bson.TypeInt32:
		return int64(v.Int32()), true
	case bson.TypeInt64:
		return v.Int64(), true
	}
	return 0, false
}
