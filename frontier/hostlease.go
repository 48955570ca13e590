package frontier

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// hostLease is a document of the host_leases collection.
type hostLease struct {
	Host       string    `bson:"_id"`
	Worker     string    `bson:"worker"`
	Until      time.Time `bson:"until"`
	Gen        int64     `bson:"gen"`
	AcquiredAt time.Time `bson:"acquired_at"`
}

// LeaseHost leases host to worker for d (Lease if d is zero) and reports
// whether worker holds it now. A host is leased to one worker at a time,
// across every Frontier on the database, so that per-host politeness holds
// for a whole fleet. The holder calls LeaseHost again to renew (well before
// d ends); a lease that is not renewed expires, and another worker may take
// it. It returns false, with no error, while another worker holds the host.
func (f *Frontier) LeaseHost(ctx context.Context, host, worker string, d time.Duration) (bool, error) {
	if d <= 0 {
		d = f.lease
	}
	mu := f.stripe("h:" + host)
	mu.Lock()
	defer mu.Unlock()
	now := f.now()
	until := now.Add(d).UTC()

	f.mu.Lock()
	h, held := f.hostHeld[host]
	f.mu.Unlock()
	if held && h.worker == worker && h.until.Sub(now) > d/10 {
		// Nobody else may take it before h.until: extend it by _id alone.
		var before hostLease
		err := f.hosts.FindOneAndUpdate(ctx, f.idFilter(host, bson.E{Key: "gen", Value: h.gen}),
			bson.D{{Key: "$set", Value: bson.D{{Key: "until", Value: until}}}},
			options.FindOneAndUpdate().SetReturnDocument(options.Before)).Decode(&before)
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return false, fmt.Errorf("renew lease on host %s: %w", host, err)
		}
		if err == nil && before.Worker == worker && before.Gen == h.gen {
			h.until = until
			f.setHostHeld(host, &h)
			return true, nil
		}
		f.setHostHeld(host, nil)
	}

	var cur hostLease
	err := f.hosts.FindOne(ctx, bson.D{{Key: "_id", Value: host}}).Decode(&cur)
	if errors.Is(err, mongo.ErrNoDocuments) {
		doc := hostLease{Host: host, Worker: worker, Until: until, Gen: 1, AcquiredAt: now.UTC()}
		_, err = f.hosts.InsertOne(ctx, doc)
		if err == nil {
			f.setHostHeld(host, &heldLease{worker: worker, gen: 1, until: until})
			return true, nil
		}
		if !isDup(err) {
			return false, fmt.Errorf("lease host %s: %w", host, err)
		}
		err = f.hosts.FindOne(ctx, bson.D{{Key: "_id", Value: host}}).Decode(&cur)
	}
	if err != nil {
		return false, fmt.Errorf("lease host %s: %w", host, err)
	}
	free := func(l *hostLease) bool { return l.Worker == worker || !l.Until.After(now) }
	if !free(&cur) {
		return false, nil
	}
	gen, ok, _, err := f.winToken(ctx, "h:"+host, "", worker, cur.Gen, func(ctx context.Context) (tokenState, error) {
		var l hostLease
		if err := f.hosts.FindOne(ctx, bson.D{{Key: "_id", Value: host}}).Decode(&l); err != nil {
			return tokenState{}, err
		}
		return tokenState{exists: true, gen: l.Gen, claimable: free(&l)}, nil
	})
	if err != nil {
		return false, fmt.Errorf("lease host %s: %w", host, err)
	}
	if !ok {
		return false, nil
	}
	_, err = f.hosts.UpdateOne(ctx, bson.D{{Key: "_id", Value: host}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "worker", Value: worker}, {Key: "until", Value: until},
		{Key: "gen", Value: gen}, {Key: "acquired_at", Value: now.UTC()},
	}}})
	if err != nil {
		return false, fmt.Errorf("lease host %s: %w", host, err)
	}
	f.setHostHeld(host, &heldLease{worker: worker, gen: gen, until: until})
	return true, nil
}

// ReleaseHost ends worker's lease on host so another worker can take it at
// once. It does nothing if worker does not hold the host (or its lease has
// already expired, when another worker may own it).
func (f *Frontier) ReleaseHost(ctx context.Context, host, worker string) error {
	mu := f.stripe("h:" + host)
	mu.Lock()
	defer mu.Unlock()
	now := f.now()
	f.mu.Lock()
	h, held := f.hostHeld[host]
	f.mu.Unlock()
	if !held || h.worker != worker {
		return nil
	}
	f.setHostHeld(host, nil)
	if !h.until.After(now) {
		return nil
	}
	// Expire it rather than delete it: the generation must keep counting.
	_, err := f.hosts.UpdateOne(ctx, f.idFilter(host, bson.E{Key: "gen", Value: h.gen}),
		bson.D{{Key: "$set", Value: bson.D{{Key: "until", Value: now.UTC()}, {Key: "worker", Value: ""}}}})
	if err != nil {
		return fmt.Errorf("release host %s: %w", host, err)
	}
	return nil
}

func (f *Frontier) setHostHeld(host string, h *heldLease) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h == nil {
		delete(f.hostHeld, host)
		return
	}
	f.hostHeld[host] = *h
}
