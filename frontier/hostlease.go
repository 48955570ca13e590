package frontier

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// Host leases live in a small collection (one document per host), where
// lookups by _id are cheap even on the embedded server. Acquiring one is
// made exclusive by a token insert, "<host>#<gen>" in host_lease_tokens:
// FerretDB runs a conditional update as a read and a separate write, so two
// workers could both "win" a conditional update.

// hostLease is a document of the host_leases collection.
type hostLease struct {
	Host       string    `bson:"_id"`
	Worker     string    `bson:"worker"`
	Until      time.Time `bson:"until"`
	Gen        int64     `bson:"gen"`
	AcquiredAt time.Time `bson:"acquired_at"`
}

// hostRef is a host lease this process holds.
type hostRef struct {
	worker string
	gen    int64
	until  time.Time
}

// LeaseHost leases host to worker for d (Lease if d is zero) and reports
// whether worker holds it now. A host is leased to one worker at a time,
// across every Frontier on the database, so that per-host politeness holds
// for a whole fleet. The holder calls LeaseHost again to renew, well before
// d ends; a lease that is not renewed expires, and another worker may take
// it. It returns false, with no error, while another worker holds the host.
func (f *Frontier) LeaseHost(ctx context.Context, host, worker string, d time.Duration) (bool, error) {
	if d <= 0 {
		d = f.lease
	}
	mu := f.stripe("h:" + host)
	mu.Lock()
	defer mu.Unlock()
	now := f.now().UTC().Truncate(time.Millisecond)
	until := now.Add(d)

	f.mu.Lock()
	h, held := f.hostHeld[host]
	f.mu.Unlock()
	if held && h.worker == worker && h.until.Sub(now) > d/10 {
		// Nobody else may take it before h.until: extend it in place.
		var before hostLease
		raw, err := f.hosts.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: host}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "until", Value: until}}}}, store.FindAndUpdate{})
		if err == nil {
			err = bson.Unmarshal(raw, &before)
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return false, fmt.Errorf("renew lease on host %s: %w", host, err)
		}
		if err == nil && before.Worker == worker && before.Gen == h.gen {
			f.setHostHeld(host, &hostRef{worker: worker, gen: h.gen, until: until})
			return true, nil
		}
		f.setHostHeld(host, nil)
	}

	for range 4 {
		var cur hostLease
		err := getDoc(ctx, f.hosts, host, &cur)
		if errors.Is(err, store.ErrNotFound) {
			err = f.hosts.Insert(ctx, hostLease{Host: host, Worker: worker, Until: until, Gen: 1, AcquiredAt: now})
			if err == nil {
				f.setHostHeld(host, &hostRef{worker: worker, gen: 1, until: until})
				return true, nil
			}
			if isDup(err) {
				continue // someone created it first: look again
			}
		}
		if err != nil {
			return false, fmt.Errorf("lease host %s: %w", host, err)
		}
		if cur.Worker != worker && cur.Until.After(now) {
			return false, nil
		}
		gen, ok, err := f.winHostToken(ctx, host, worker, cur.Gen, now)
		if err != nil {
			return false, fmt.Errorf("lease host %s: %w", host, err)
		}
		if !ok {
			return false, nil
		}
		_, err = f.hosts.UpdateOne(ctx, bson.D{{Key: "_id", Value: host}}, bson.D{{Key: "$set", Value: bson.D{
			{Key: "worker", Value: worker}, {Key: "until", Value: until},
			{Key: "gen", Value: gen}, {Key: "acquired_at", Value: now},
		}}}, false)
		if err != nil {
			return false, fmt.Errorf("lease host %s: %w", host, err)
		}
		f.setHostHeld(host, &hostRef{worker: worker, gen: gen, until: until})
		return true, nil
	}
	return false, nil
}

// winHostToken tries to win generation gen+1 of host's lease. A token whose
// winner never wrote the lease document (it crashed in between) would block
// the generation forever; once it is older than the lease it is skipped.
func (f *Frontier) winHostToken(ctx context.Context, host, worker string, gen int64, now time.Time) (int64, bool, error) {
	for range 3 {
		k := gen + 1
		id := host + "#" + strconv.FormatInt(k, 10)
		err := f.hostTokens.Insert(ctx, bson.D{{Key: "_id", Value: id}, {Key: "worker", Value: worker}, {Key: "at", Value: now}})
		if err == nil {
			return k, true, nil
		}
		if !isDup(err) {
			return 0, false, err
		}
		var cur hostLease
		if err := getDoc(ctx, f.hosts, host, &cur); err != nil {
			return 0, false, err
		}
		if cur.Gen >= k {
			return 0, false, nil // another worker won it
		}
		var t struct {
			At time.Time `bson:"at"`
		}
		if err := getDoc(ctx, f.hostTokens, id, &t); err != nil {
			return 0, false, err
		}
		if t.At.Add(f.lease).After(now) {
			return 0, false, nil // its winner is writing the lease now
		}
		gen = k // orphaned token
	}
	return 0, false, nil
}

// ReleaseHost ends worker's lease on host so that another worker can take it
// at once. It does nothing if worker does not hold the host through this
// Frontier, or if the lease is about to expire (another worker may be taking
// it over).
func (f *Frontier) ReleaseHost(ctx context.Context, host, worker string) error {
	mu := f.stripe("h:" + host)
	mu.Lock()
	defer mu.Unlock()
	now := f.now().UTC().Truncate(time.Millisecond)
	f.mu.Lock()
	h, held := f.hostHeld[host]
	f.mu.Unlock()
	if !held || h.worker != worker {
		return nil
	}
	f.setHostHeld(host, nil)
	if h.until.Sub(now) <= 0 {
		return nil
	}
	// Expire it rather than delete it: the generation must keep counting.
	_, err := f.hosts.UpdateOne(ctx, bson.D{{Key: "_id", Value: host}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "until", Value: now}, {Key: "worker", Value: ""}}}}, false)
	if err != nil {
		return fmt.Errorf("release host %s: %w", host, err)
	}
	return nil
}

func (f *Frontier) setHostHeld(host string, h *hostRef) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h == nil {
		delete(f.hostHeld, host)
		return
	}
	f.hostHeld[host] = *h
}

// getDoc decodes the document with _id id of c into out; an error wrapping
// store.ErrNotFound when there is none.
func getDoc(ctx context.Context, c Collection, id string, out any) error {
	raw, err := c.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := bson.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode %s of %s: %w", id, c.Name(), err)
	}
	return nil
}
